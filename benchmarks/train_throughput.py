"""Training tokens/s and peak memory: Softserve prompt tuning vs PEFT PromptTuning, one process.

Same frozen default model, same SST-2 rows, same batch size and prompt length, fp32 on the CPU.
Tokens are real (unpadded) tokens incl. the prompt, so padding a method wastes counts against it.
Softserve's dev evaluations are excluded from its time. Then Softserve again at `--precision auto` (the
default: bf16 autocast where the device runs bf16 natively) against its fp32 run. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import SST2_TEMPLATE, PeakRss, dataset_path, peft_prompt_model, train_peft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of a minute or two")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows", type=int, default=4000, help="training rows drawn from SST-2")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from transformers.optimization import Adafactor
    from transformers.utils import logging as hf_logging

    from workers.engine.base_model import load_base_model
    from workers.engine.data import read_rows, to_examples
    from workers.engine.encoding import TaskEncoder
    from workers.engine.precision import resolved_precision
    from workers.engine.prompt_tuning import SoftPrompt, init_prompt
    from workers.engine.task import TaskSpec
    from workers.engine.trainer import Member, TrainConfig, train_bank, train_prompt

    hf_logging.set_verbosity_error()
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
    members, bank_steps = 5, max(2, steps // 4)
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

    banked = train_bank(fm, [member(k) for k in range(members)], bank_config)
    bank_seconds = banked[0].train_seconds - banked[0].eval_seconds
    sequential_seconds = 0.0
    for k in range(members):
        alone = train_bank(fm, [member(k)], bank_config)[0]
        sequential_seconds += alone.train_seconds - alone.eval_seconds
    bank_ratio = sequential_seconds / bank_seconds

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
    print(
        f"K={members} bank, {bank_steps} steps: {bank_seconds:.1f}s; {members} sequential runs: "
        f"{sequential_seconds:.1f}s; bank speed-up {bank_ratio:.2f}x"
    )
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
                "bank_k5_seconds": round(bank_seconds, 1),
                "sequential_k5_seconds": round(sequential_seconds, 1),
                "bank_vs_sequential": round(bank_ratio, 3),
                "auto_precision": auto_precision,
                "auto_tokens_per_s": round(auto.tokens_per_s, 1),
                "auto_vs_fp32": round(auto.tokens_per_s / result.tokens_per_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
