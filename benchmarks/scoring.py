"""Rows/s of rank classification with real multi-token labels, in one process.

On the shared AG News (four topics; `sci_tech` is three tokens) and RTE (sentence pairs;
`not_entailment` several tokens), the same rows behind one 20-vector prompt are scored three ways:
- **one pass** (the engine's `class_logprobs`): the input once, multi-token labels continued from its
  cached key/value states;
- **per label** (`class_logprobs_expanded`, how scoring ran before): the input repeated once per label;
- **single-token labels**: the same rows relabelled with one-token words, which needs one pass and
  nothing after it (the ceiling for any label set).
Each is also set against the machine's measured limit: one forward pass over the input tokens at the
matmul FLOP/s measured in the same run. Batches are length-sorted as `predict` cuts them.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import TASKS, dataset_path

# The tasks' templates and labels are the benchmarks' own (benchmarks.common.TASKS); here only the one-token
# words each label is relabelled with for the single-token ceiling.
SINGLE_TOKEN_WORDS = {
    "agnews": {"world": "world", "sports": "sports", "business": "business", "sci_tech": "science"},
    "rte": {"entailment": "yes", "not_entailment": "no"},
}
TARGETS = {"real_vs_single": 0.85, "agnews_speedup": 3.0}


def _batches(inputs: list[list[int]], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _rows_per_s(scorers: dict, batches, inputs, classes: dict, repeats: int, clock) -> dict[str, float]:
    """Rows/s of each scorer over every batch, `repeats` sweeps after one untimed batch each, by `clock`.

    The scorers take turns batch by batch, so a machine that gets busier or quieter during the run
    slows them alike and their ratios stay fair.
    """
    seconds = dict.fromkeys(scorers, 0.0)
    for name, score in scorers.items():
        score([inputs[i] for i in batches[0]], [classes[name][i] for i in batches[0]])
    for _ in range(repeats):
        for batch in batches:
            for name, score in scorers.items():
                started = clock()
                score([inputs[i] for i in batch], [classes[name][i] for i in batch])
                seconds[name] += clock() - started
    return {name: repeats * len(inputs) / spent for name, spent in seconds.items()}


def _matmul_flops(fm, precision: str, clock, size: int = 1024) -> float:
    """FLOP/s of a (size × E) @ (E × 4E) matmul, the shape of the model's MLP, under `precision`, by
    `clock` (the one the scorers are timed by)."""
    import torch

    from workers.engine.precision import autocast

    a = torch.randn(size, fm.embed_dim, device=fm.device)
    b = torch.randn(fm.embed_dim, 4 * fm.embed_dim, device=fm.device)
    with torch.no_grad(), autocast(fm.device, precision):
        a @ b
        reps, started = 0, clock()
        while clock() - started < 2.0:
            a @ b
            reps += 1
    return 2 * size * fm.embed_dim * 4 * fm.embed_dim * reps / (clock() - started)


def _forward_flops(fm, positions: int, rows: int) -> float:
    """FLOPs of one forward pass over `positions` input positions in `rows` rows: 2 per weight per
    position through the transformer, and the LM head at each row's last position (attention's own
    products are left out: they make the limit higher, never lower)."""
    embedding = fm.model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in fm.decoder_body().parameters()) - embedding
    return 2.0 * body * positions + 2.0 * embedding * rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows, one sweep: about two minutes")
    parser.add_argument("--rows", type=int, default=None, help="rows per task (default 256; quick 48)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--precision", default="auto", help="auto (the serving default), fp32 or bf16")
    parser.add_argument("--base-model", default=None, help="default: the default model")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core box a second thread waits on the scheduler at "
        "every small op, which swamps the label continuations' few positions; 0 keeps torch's default)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from transformers.utils import logging as hf_logging

    from common.task import TaskSpec
    from workers.engine.base_model import DEFAULT_MODEL_ID, load_base_model
    from workers.engine.inference.batching import PromptSet
    from workers.engine.inference.encoding import TaskEncoder
    from workers.engine.inference.scoring import class_logprobs, class_logprobs_expanded
    from workers.engine.precision import autocast, resolved_precision
    from workers.engine.training.data import read_rows, to_examples

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    # One thread: its own CPU seconds, which a shared box's other work does not stretch (wall time there
    # is partly waiting for a core). More threads: wall time, the only clock that counts them all.
    single_thread = torch.get_num_threads() == 1
    clock = time.thread_time if single_thread else time.perf_counter
    rows = args.rows or (48 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 3)
    fm = load_base_model(args.base_model or DEFAULT_MODEL_ID, args.device)
    precision = resolved_precision(args.precision, fm.device)
    vectors = torch.randn(args.prompt_length, fm.embed_dim, generator=torch.Generator().manual_seed(0)) * 0.5
    prompts = PromptSet.from_list([vectors], fm.embed_dim)
    flops = _matmul_flops(fm, precision, clock)

    def scorer(fn):
        def score(inputs, classes):
            with torch.no_grad(), autocast(fm.device, precision):
                fn(fm, prompts, torch.zeros(len(inputs), dtype=torch.long), inputs, classes)

        return score

    report: dict = {
        "precision": precision,
        "threads": torch.get_num_threads(),
        "clock": "thread CPU seconds" if single_thread else "wall seconds",
        "matmul_gflops": round(flops / 1e9, 1),
        "rows": rows,
    }
    for task, words in SINGLE_TOKEN_WORDS.items():
        template, labels = TASKS[task].template, list(TASKS[task].labels)
        real = TaskSpec("classification", template, labels)
        single = TaskSpec("classification", template, labels, verbalizer=words)
        real_encoder, single_encoder = TaskEncoder(fm, real), TaskEncoder(fm, single)
        if any(len(t) != 1 for t in single_encoder.class_targets):
            raise SystemExit(f"{task}: the relabelled words are not one token each in {fm.model_id}")
        examples = to_examples(read_rows(dataset_path(task, "dev")), template, "label")[:rows]
        inputs = [real_encoder.input_ids(ex.fields) for ex in examples]
        batches = _batches(inputs, args.batch_size)
        classes = {
            "one_pass": [real_encoder.class_targets] * len(inputs),
            "per_label": [real_encoder.class_targets] * len(inputs),
            "single_token": [single_encoder.class_targets] * len(inputs),
        }
        scorers = {
            "one_pass": scorer(class_logprobs),
            "per_label": scorer(class_logprobs_expanded),
            "single_token": scorer(class_logprobs),
        }
        rates = _rows_per_s(scorers, batches, inputs, classes, repeats, clock)
        one_pass, per_label, single_rate = rates["one_pass"], rates["per_label"], rates["single_token"]
        # The limit: the padded input positions of these very batches, at the measured FLOP/s.
        positions = sum(len(b) * (args.prompt_length + max(len(inputs[i]) for i in b)) for b in batches)
        limit = flops / (_forward_flops(fm, positions, len(inputs)) / len(inputs))
        report[task] = {
            "label_tokens": [len(t) for t in real_encoder.class_targets],
            "mean_input_tokens": round(statistics.mean(len(i) for i in inputs), 1),
            "one_pass_rows_per_s": round(one_pass, 2),
            "per_label_rows_per_s": round(per_label, 2),
            "single_token_rows_per_s": round(single_rate, 2),
            "limit_rows_per_s": round(limit, 2),
            "one_pass_vs_per_label": round(one_pass / per_label, 2),
            "real_vs_single": round(one_pass / single_rate, 3),
            "share_of_limit": round(one_pass / limit, 3),
        }
        print(task, json.dumps(report[task]), file=sys.stderr)
    report["targets"] = TARGETS
    report["target_met"] = all(
        report[task]["real_vs_single"] >= TARGETS["real_vs_single"] for task in SINGLE_TOKEN_WORDS
    ) and (report["agnews"]["one_pass_vs_per_label"] >= TARGETS["agnews_speedup"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
