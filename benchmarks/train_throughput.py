"""Training tokens/s and peak memory: Softserve prompt tuning vs PEFT PromptTuning, one process.

Same frozen default model, same SST-2 rows, same batch size and prompt length, fp32 on the CPU.
Tokens are real (unpadded) tokens incl. the prompt, so padding a method wastes counts against it.
Softserve's dev evaluations are excluded from its time. Then Softserve again at `--precision auto` (the
default: bf16 autocast where the device runs bf16 natively) against its fp32 run.

Last, a K=5 bank (an ensemble's members trained in the same steps) against the same five members trained
one after another, fp32, the same batches either way. One untimed bank step first (first-call allocations
for the shapes both sides then use), then `--rounds` rounds in alternating order (bank first, then
sequential first), so neither side always runs on the warmer or the quieter machine; the figure is the
median of the rounds' ratios, each round's ratio printed beside it. On a CPU a bank step runs the members'
rows in micro-batches of one member's batch size (trainer._length_sorted_chunks): the same arithmetic as the
sequential runs, so the ratio measures the bank's overhead (about 1.0 is the expected figure); on a GPU the
whole bank is one forward and the ratio is its gain. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import SST2_TEMPLATE, PeakRss, dataset_path, peft_prompt_model, train_peft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="8 steps, a 2-step bank in 2 rounds (6 min 45 s with --threads 1 on the shared 2-core CPU)",
    )
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows", type=int, default=4000, help="training rows drawn from SST-2")
    parser.add_argument("--rounds", type=int, default=None, help="bank/sequential rounds (2 quick, 3 full)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's, one per core). On a CPU other jobs share, 1: a second thread "
        "waits at every barrier for a core that another process holds",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from transformers.optimization import Adafactor
    from transformers.utils import logging as hf_logging

    from common.task import TaskSpec
    from workers.engine.base_model import load_base_model
    from workers.engine.inference.encoding import TaskEncoder
    from workers.engine.methods.prompt_tuning import SoftPrompt, init_prompt
    from workers.engine.precision import resolved_precision
    from workers.engine.training.bank import Member
    from workers.engine.training.config import TrainConfig
    from workers.engine.training.data import read_rows, to_examples
    from workers.engine.training.trainer import train_bank, train_prompt

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    steps = args.steps or (8 if args.quick else 40)
    fm = load_base_model()
    spec = TaskSpec(task_type="classification", template=SST2_TEMPLATE, labels=["negative", "positive"])
    train = to_examples(read_rows(dataset_path("sst2", "train")), SST2_TEMPLATE, "label")[: args.rows]
    probe = train[:4]

    def adafactor(params):
        return Adafactor(
            params, lr=0.3, scale_parameter=False, relative_step=False, warmup_init=False, weight_decay=1e-5
        )

    encoder = TaskEncoder(fm, spec)
    inputs, targets = encoder.encode(train)
    # Warm-up so neither side pays for first-call allocations.
    warm = peft_prompt_model(fm, "SAMPLE_VOCAB")
    train_peft(warm, fm, inputs, targets, 1, args.batch_size, adafactor)

    sampler = PeakRss()
    with sampler.measure():
        start_rss = sampler._process.memory_info().rss / 2**20
        model = peft_prompt_model(fm, "SAMPLE_VOCAB")
        peft = train_peft(model, fm, inputs, targets, steps, args.batch_size, adafactor)
    peft_peak, peft_delta = sampler.peak_mb, sampler.peak_mb - start_rss

    sampler = PeakRss()
    with sampler.measure():
        start_rss = sampler._process.memory_info().rss / 2**20
        config = TrainConfig(
            prompt_length=20,
            init="vocab",
            batch_size=args.batch_size,
            steps=steps,
            eval_every=10**9,
            dev_eval_limit=len(probe),
            precision="fp32",  # PEFT's loop is fp32
        )
        result = train_prompt(fm, spec, train, probe, config, init_prompt(fm, 20, "vocab"))
    ours_peak, ours_delta = sampler.peak_mb, sampler.peak_mb - start_rss
    auto_config = replace(config, precision="auto")
    auto = train_prompt(fm, spec, train, probe, auto_config, init_prompt(fm, 20, "vocab"))
    auto_precision = resolved_precision("auto", fm.device)

    # A K=5 bank (an ensemble's members in the same batches) against 5 sequential single-prompt runs.
    members, bank_steps, rounds = 5, max(2, steps // 4), args.rounds or (2 if args.quick else 3)
    bank_config = TrainConfig(
        prompt_length=20,
        init="vocab",
        batch_size=args.batch_size,
        steps=bank_steps,
        eval_every=10**9,
        dev_eval_limit=len(probe),
        precision="fp32",
    )

    def member(k: int) -> Member:
        return Member(spec, train, probe, SoftPrompt(init_prompt(fm, 20, "vocab", seed=k)), seed=k)

    def bank() -> tuple[float, float]:
        """Wall s of the bank's steps (its dev evaluations excluded), and the process's CPU s."""
        cpu = time.process_time()
        result = train_bank(fm, [member(k) for k in range(members)], bank_config)[0]
        return result.train_seconds - result.eval_seconds, time.process_time() - cpu

    def sequential() -> tuple[float, float]:
        wall, cpu = 0.0, time.process_time()
        for k in range(members):
            alone = train_bank(fm, [member(k)], bank_config)[0]
            wall += alone.train_seconds - alone.eval_seconds
        return wall, time.process_time() - cpu

    train_bank(fm, [member(k) for k in range(members)], replace(bank_config, steps=1))  # warm-up
    timed: list[dict[str, float]] = []
    for round_ in range(rounds):
        if round_ % 2 == 0:
            (bank_s, bank_cpu), (seq_s, seq_cpu) = bank(), sequential()
        else:
            (seq_s, seq_cpu), (bank_s, bank_cpu) = sequential(), bank()
        timed.append(
            {"bank_s": bank_s, "sequential_s": seq_s, "bank_cpu_s": bank_cpu, "sequential_cpu_s": seq_cpu}
        )
    round_ratios = [t["sequential_s"] / t["bank_s"] for t in timed]
    bank_ratio = statistics.median(round_ratios)
    # CPU s include what both sides do alike outside the steps (encoding each member's rows, its last
    # probe evaluation): a steadier figure on a shared machine than wall time, pulled towards 1.
    cpu_ratio = statistics.median(t["sequential_cpu_s"] / t["bank_cpu_s"] for t in timed)
    bank_seconds = statistics.median(t["bank_s"] for t in timed)
    sequential_seconds = statistics.median(t["sequential_s"] for t in timed)

    ratio = result.tokens_per_s / peft["tokens_per_s"]
    print(f"{'':<12}{'tokens/s':>10}{'s/step':>9}{'peak RSS MB':>13}{'+MB in phase':>14}")
    ours_step_s = (result.train_seconds - result.eval_seconds) / steps
    peft_step_s = peft["seconds"] / steps
    print(
        f"{'Softserve':<12}{result.tokens_per_s:>10.1f}{ours_step_s:>9.2f}{ours_peak:>13.0f}{ours_delta:>14.0f}"
    )
    print(
        f"{'PEFT':<12}{peft['tokens_per_s']:>10.1f}{peft_step_s:>9.2f}{peft_peak:>13.0f}{peft_delta:>14.0f}"
    )
    print(
        f"Softserve at --precision auto ({auto_precision}): {auto.tokens_per_s:.1f} tokens/s, "
        f"{auto.tokens_per_s / result.tokens_per_s:.2f}x its fp32 run"
    )
    for i, t in enumerate(timed):
        first = "bank first" if i % 2 == 0 else "sequential first"
        print(
            f"round {i + 1} ({first}): K={members} bank, {bank_steps} steps: {t['bank_s']:.1f}s; {members} "
            f"sequential runs: {t['sequential_s']:.1f}s; {t['sequential_s'] / t['bank_s']:.2f}x "
            f"(CPU {t['bank_cpu_s']:.1f} vs {t['sequential_cpu_s']:.1f} s)"
        )
    print(f"bank vs sequential, median of {rounds} rounds: {bank_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU")
    print(
        json.dumps(
            {
                "tokens_per_s": round(result.tokens_per_s, 1),
                "peft_tokens_per_s": round(peft["tokens_per_s"], 1),
                "ratio": round(ratio, 3),
                "peak_rss_mb": round(ours_peak),
                "peft_peak_rss_mb": round(peft_peak),
                "rss_delta_mb": round(ours_delta),
                "peft_rss_delta_mb": round(peft_delta),
                "steps": steps,
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                # The machine's 1-minute load average at the start and the end: figures from a box whose
                # load is above its core count measure the other jobs as much as this one.
                "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
                "bank_k5_seconds": round(bank_seconds, 1),
                "sequential_k5_seconds": round(sequential_seconds, 1),
                "bank_vs_sequential": round(bank_ratio, 3),
                "bank_vs_sequential_rounds": [round(r, 3) for r in round_ratios],
                "bank_vs_sequential_cpu": round(cpu_ratio, 3),
                "bank_steps": bank_steps,
                "auto_precision": auto_precision,
                "auto_tokens_per_s": round(auto.tokens_per_s, 1),
                "auto_vs_fp32": round(auto.tokens_per_s / result.tokens_per_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
