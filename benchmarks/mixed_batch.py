"""Rows/s of one forward pass whose rows use many distinct prompts, in one process.

For each prompt count n, the same B rows are scored (rank classification) three ways: mixed (one
forward pass, row i behind prompt i mod n), single (one forward pass, every row behind one prompt: the
limit, ratio 1.0) and grouped (one forward pass per prompt over its rows, as PEFT must since a PEFT
model holds one active prompt). Two row sets, each on its own: `sst2` (real SST-2 inputs, two one-token
labels) and `multi` (AG News, RTE and SST-2 rows in turn, each with its own task's labels: four topics
with the three-token `sci_tech`, pairs with the multi-token `not_entailment`, sentiment), so that one
batch mixes tasks, label sets and label lengths as the serving pool's batches do.
`--quick`: B=64 and one repeat, so prompt counts 1, 16 and 64 (a 256-row SST-2 batch scores at about
8 rows/s on the 2-core CPU: ten passes of it were 7 minutes). Last line: one JSON object.
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

PROMPT_COUNTS = (1, 16, 64, 256)
ROW_SETS = {"sst2": ("sst2",), "multi": ("agnews", "rte", "sst2")}
# Inputs keep their last N tokens: SST-2's rows fit in 48; news articles and sentence pairs are longer.
MAX_INPUT_TOKENS = {"sst2": 48, "agnews": 128, "rte": 128}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B=64, one repeat")
    parser.add_argument("--rows", type=int, default=None, help="rows per batch (B; 256, --quick 64)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--base-model", default=None, help="default: the default model")
    parser.add_argument("--device", default=None)
    parser.add_argument("--bf16", action="store_true", help="run the frozen model in bfloat16")
    parser.add_argument("--row-sets", default="sst2,multi", help=f"comma-separated, of {', '.join(ROW_SETS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU seconds, for a single-threaded run on a CPU other jobs share "
        "(wall time there is mostly waiting for a core)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from transformers.utils import logging as hf_logging

    from common.task import TaskSpec
    from workers.engine.base_model import DEFAULT_MODEL_ID, load_base_model
    from workers.engine.inference.encoding import TaskEncoder
    from workers.engine.training.data import read_rows, to_examples

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    repeats = args.repeats or (1 if args.quick else 3)
    rows = args.rows or (64 if args.quick else 256)
    fm = load_base_model(args.base_model or DEFAULT_MODEL_ID, args.device)
    if args.bf16:
        fm.model.to(torch.bfloat16)
    gen = torch.Generator().manual_seed(0)
    bank = [
        torch.randn(args.prompt_length, fm.embed_dim, generator=gen) * 0.5 for _ in range(max(PROMPT_COUNTS))
    ]
    per_task: dict[str, tuple[list, list]] = {}
    for name in {task for row_set in ROW_SETS.values() for task in row_set}:
        task = TASKS[name]
        spec = TaskSpec("classification", task.template, list(task.labels))
        encoder = TaskEncoder(fm, spec, max_input_tokens=MAX_INPUT_TOKENS[name])
        examples = to_examples(read_rows(dataset_path(name, "dev")), task.template, "label")[:rows]
        per_task[name] = ([encoder.input_ids(ex.fields) for ex in examples], encoder.class_targets)
    report: dict = {
        "rows": rows,
        "device": str(fm.device),
        "dtype": str(fm.dtype),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
    }
    for row_set in args.row_sets.split(","):
        tasks = ROW_SETS[row_set]
        # Row i comes from task i mod len(tasks): a batch mixes the tasks evenly.
        picks = [(tasks[i % len(tasks)], i // len(tasks)) for i in range(rows)]
        inputs = [per_task[task][0][k] for task, k in picks]
        classes = [per_task[task][1] for task, _ in picks]
        print(f"row set {row_set}: {', '.join(tasks)}", file=sys.stderr, flush=True)
        report[row_set] = _measure(fm, bank, inputs, classes, repeats, clock)
    print(json.dumps(report))


def _measure(fm, bank, inputs: list, classes: list, repeats: int, clock) -> dict:
    """Mixed, single and grouped rows/s over one row set, and the table of them."""
    import torch

    from workers.engine.inference.batching import PromptSet
    from workers.engine.inference.scoring import class_logprobs

    def forward(prompt_list, assignment, rows: list[int]) -> None:
        prompts = PromptSet.from_list(prompt_list, fm.embed_dim)
        class_logprobs(fm, prompts, assignment, [inputs[i] for i in rows], [classes[i] for i in rows])

    def timed(fn) -> float:
        times = []
        for _ in range(repeats):
            started = clock()
            with torch.no_grad():
                fn()
            if fm.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(clock() - started)
        return len(inputs) / statistics.median(times)  # rows/s

    every = list(range(len(inputs)))
    one_prompt = torch.zeros(len(inputs), dtype=torch.long)
    timed(lambda: forward(bank[:1], one_prompt, every))  # warm-up
    single = timed(lambda: forward(bank[:1], one_prompt, every))
    vs_single, vs_grouped, table = {}, {}, []
    for count in PROMPT_COUNTS:
        if count > len(inputs):
            continue
        assignment = torch.arange(len(inputs)) % count
        mixed = timed(lambda a=assignment, c=count: forward(bank[:c], a, every))

        def grouped(c=count, a=assignment) -> None:
            for k in range(c):
                members = [i for i in every if int(a[i]) == k]
                forward([bank[k]], torch.zeros(len(members), dtype=torch.long), members)

        group_rps = timed(grouped)
        vs_single[str(count)] = round(mixed / single, 3)
        vs_grouped[str(count)] = round(mixed / group_rps, 3)
        table.append((count, mixed, single, group_rps))
        print(
            f"{count:>4} prompts: mixed {mixed:8.1f} rows/s  single {single:8.1f}  grouped {group_rps:8.1f}",
            file=sys.stderr,
            flush=True,
        )
    header = ("prompts", 8), ("mixed rows/s", 14), ("single", 10), ("grouped", 10), ("vs single", 11)
    print("\n" + "".join(f"{name:>{width}}" for name, width in header) + f"{'vs grouped':>12}")
    for count, mixed, single_rps, group_rps in table:
        print(
            f"{count:>8}{mixed:>14.1f}{single_rps:>10.1f}{group_rps:>10.1f}"
            f"{mixed / single_rps:>11.3f}{mixed / group_rps:>12.3f}"
        )
    return {
        "vs_single": vs_single,
        "vs_grouped": vs_grouped,
        "single_rows_per_s": round(single, 1),
        "mean_input_tokens": round(statistics.mean(len(i) for i in inputs), 1),
    }


if __name__ == "__main__":
    main()
