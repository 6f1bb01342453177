"""Rows/s of one forward pass whose rows use many distinct prompts, in one process.

For each prompt count n, the same B rows (real SST-2 inputs, rank classification) are scored three
ways: mixed (one forward pass, row i behind prompt i mod n), single (one forward pass, every row
behind one prompt: the limit, ratio 1.0) and grouped (one forward pass per prompt over its rows, as
PEFT must since a PEFT model holds one active prompt). `--quick`: B=64 and one repeat, so prompt counts
1, 16 and 64 (a 256-row batch scores at about 8 rows/s on the 2-core CPU: ten passes of it were 7 minutes).
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

from benchmarks.common import SST2_TEMPLATE, dataset_path

PROMPT_COUNTS = (1, 16, 64, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B=64, one repeat")
    parser.add_argument("--rows", type=int, default=None, help="rows per batch (B; 256, --quick 64)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--base-model", default=None, help="default: the default model")
    parser.add_argument("--device", default=None)
    parser.add_argument("--bf16", action="store_true", help="run the frozen model in bfloat16")
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

    from workers.engine.base_model import DEFAULT_MODEL_ID, load_base_model
    from workers.engine.batching import PromptSet
    from workers.engine.data import read_rows, to_examples
    from workers.engine.encoding import TaskEncoder
    from workers.engine.scoring import class_logprobs
    from workers.engine.task import TaskSpec

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    repeats = args.repeats or (1 if args.quick else 3)
    rows = args.rows or (64 if args.quick else 256)
    fm = load_base_model(args.base_model or DEFAULT_MODEL_ID, args.device)
    if args.bf16:
        fm.model.to(torch.bfloat16)
    spec = TaskSpec(task_type="classification", template=SST2_TEMPLATE, labels=["negative", "positive"])
    encoder = TaskEncoder(fm, spec, max_input_tokens=48)
    examples = to_examples(read_rows(dataset_path("sst2", "dev")), SST2_TEMPLATE, "label")[:rows]
    inputs = [encoder.input_ids(ex.fields) for ex in examples]
    classes = [encoder.class_targets] * len(inputs)
    gen = torch.Generator().manual_seed(0)
    bank = [
        torch.randn(args.prompt_length, fm.embed_dim, generator=gen) * 0.5 for _ in range(max(PROMPT_COUNTS))
    ]

    def forward(prompt_list, rows, row_inputs) -> None:
        prompts = PromptSet.from_list(prompt_list, fm.embed_dim)
        class_logprobs(fm, prompts, rows, row_inputs, classes[: len(row_inputs)])

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

    timed(lambda: forward(bank[:1], torch.zeros(len(inputs), dtype=torch.long), inputs))  # warm-up
    single = timed(lambda: forward(bank[:1], torch.zeros(len(inputs), dtype=torch.long), inputs))
    vs_single, vs_grouped, table = {}, {}, []
    for count in PROMPT_COUNTS:
        if count > len(inputs):
            continue
        assignment = torch.arange(len(inputs)) % count
        mixed = timed(lambda a=assignment, c=count: forward(bank[:c], a, inputs))

        def grouped(c=count, a=assignment) -> None:
            for k in range(c):
                members = [i for i in range(len(inputs)) if int(a[i]) == k]
                forward([bank[k]], torch.zeros(len(members), dtype=torch.long), [inputs[i] for i in members])

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
    print(
        json.dumps(
            {
                "vs_single": vs_single,
                "vs_grouped": vs_grouped,
                "rows": len(inputs),
                "single_rows_per_s": round(single, 1),
                "device": str(fm.device),
                "dtype": str(fm.dtype),
                "repeats": repeats,
                "threads": torch.get_num_threads(),
                "clock": args.clock,
            }
        )
    )


if __name__ == "__main__":
    main()
