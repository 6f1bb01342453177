"""Dev accuracy on SST-2, AG News or RTE with the default model: prompt tuning, its ablations and the
baselines a team would pick instead, each row trained for N seeds, every row scored by the same
rank-classification scorer.

Tasks (`--task`, default sst2; templates and labels in `benchmarks.common.TASKS`): `sst2` (two labels,
`Review: {text}\nSentiment:`), `agnews` (world, sports, business, sci_tech: `Article: {text}\nTopic:`,
inputs cut at 128 tokens, not 64) and `rte` (pairs, entailment / not_entailment:
`Premise: {text_a}\nHypothesis: {text_b}\nAnswer:`, inputs cut at 256 tokens).

Every (row, seed) trains in its own child process (`--one ROW --seed S`), which writes one record to
`benchmarks/results/quality_runs/<protocol>/<row>-s<seed>.json` (SST-2) or
`quality_runs/<protocol>-<task>/…` (the other tasks): dev accuracy and macro-F1, best step,
steps run, train wall and CPU seconds, peak RSS, bytes per task in storage and in serving memory, the
early-stopping probe curve and the settings; the ensemble row adds each member's dev score beside the
vote's. A rerun skips the records that exist, so an interrupted batch resumes (`--quick`, a smoke run,
always runs afresh; its records are not kept in git). Tables (mean ± sd over seeds), plots and the last
line (one JSON object) are computed from the records.

Protocols: `small` (the README's tables: 60 steps of batch 8, the first 300 dev rows, a 100-row
early-stopping probe carved from train, evaluated every 15 steps, inputs cut to 64 tokens, 3 seeds),
`quick` (`--quick`: 4 steps of batch 4, rows prompt-labels and lora, 40 dev rows, a 16-row probe,
one seed, no plots: about a minute for SST-2 on the shared 2-core CPU, several for AG News and RTE,
whose inputs are longer) and `full` (300 steps of 16, all of dev, a 500-row probe, one seed).

    python benchmarks/quality.py --protocol small --seeds 3 --rows ablation,vocab-gap,main
    python benchmarks/quality.py --protocol small --seeds 3 --task agnews --rows tasks
    python benchmarks/quality.py --protocol small --report   # tables and plots from the records only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import TASKS
from benchmarks.quality_rows import PROTOCOLS, ROWS

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = {
    "ablation": [
        "prompt-labels",
        "prompt-len1",
        "prompt-len5",
        "prompt-len100",
        "prompt-len150",
        "prompt-random",
        "prompt-vocab",
        "prompt-text",
    ],
    "vocab-gap": [
        "softserve-vocab-pool-adafactor0.3",
        "softserve-vocab-whole-adafactor0.3",
        "peft-vocab-adafactor0.3",
    ],
    "main": [
        "design-0shot",
        "prompt-labels",
        "peft-vocab-adafactor0.3",
        "prefix",
        "ptuning",
        "lora",
        "full-ft",
        "ensemble",
    ],
    # The rows every task gets (issue 21): no training, prompt tuning, its ensemble, and LoRA.
    "tasks": ["design-0shot", "prompt-labels", "ensemble", "lora"],
}
QUICK_ROWS = "prompt-labels,lora"


def expand(rows: str) -> list[str]:
    """Row names and group names (ablation, vocab-gap, main, tasks) → row names, in order, without
    repeats."""
    names: list[str] = []
    for item in rows.split(","):
        for name in GROUPS.get(item, [item]):
            if name not in ROWS:
                raise SystemExit(
                    f"unknown row {name!r}; rows: {', '.join(ROWS)}; groups: {', '.join(GROUPS)}"
                )
            if name not in names:
                names.append(name)
    return names


def record_path(protocol: str, row: str, seed: int, task: str = "sst2", root: Path = RESULTS) -> Path:
    from benchmarks.quality_report import run_dir

    return run_dir(protocol, task, root) / f"{row}-s{seed}.json"


def write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)  # atomic: a killed child leaves no half record for a rerun to skip


def run_child(protocol: str, task: str, row: str, seed: int, threads: int, log) -> bool:
    """One row × seed in a fresh process; True when its record was written."""
    command = [sys.executable, __file__, "--protocol", protocol, "--task", task, "--one", row]
    command += ["--seed", str(seed), "--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=log, stderr=log, check=False)
    ok = done.returncode == 0 and record_path(protocol, row, seed, task).is_file()
    status = "ok" if ok else f"FAILED (exit {done.returncode})"
    print(
        f"[{time.strftime('%H:%M:%S')}] {task} {row} seed {seed}: {status} in "
        f"{time.perf_counter() - started:.0f}s",
        flush=True,
    )
    return ok


def child(protocol: str, task: str, row: str, seed: int, threads: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    from benchmarks.quality_rows import run_row

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    record = run_row(PROTOCOLS[protocol], row, seed, task)
    write_record(record_path(protocol, row, seed, task), record)
    print(
        f"{row} seed {seed}: dev acc {record['dev_accuracy']:.4f}  f1 {record['dev_macro_f1']:.4f}  "
        f"best step {record['best_step']}  train {record['train_wall_s']:.0f}s wall / "
        f"{record['train_cpu_s']:.0f}s CPU  peak RSS {record['peak_rss_mb']:.0f} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="small")
    parser.add_argument("--task", choices=list(TASKS), default="sst2", help="the shared dataset")
    parser.add_argument("--quick", action="store_true", help=f"the quick protocol, rows {QUICK_ROWS}")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per trained row")
    parser.add_argument("--rows", default=None, help=f"rows or groups ({', '.join(GROUPS)}), comma-separated")
    parser.add_argument("--report", action="store_true", help="no training: tables and plots from records")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per child (default 1: on a shared CPU a second thread mostly spins)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child: train one row for --seed
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--norms", action="store_true", help=argparse.SUPPRESS)  # the child: init norms
    args = parser.parse_args()
    protocol = "quick" if args.quick else args.protocol
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    task = args.task
    if args.one:
        child(protocol, task, args.one, args.seed, args.threads)
        return
    from benchmarks.quality_report import run_dir

    if args.norms:
        from benchmarks.quality_report import write_norms

        write_norms(run_dir(protocol, task) / "norms.json", seeds=range(args.seeds or 3), task=task)
        return
    rows = expand(args.rows or (QUICK_ROWS if args.quick else "ablation,vocab-gap,main"))
    seeds = args.seeds or PROTOCOLS[protocol].seeds
    log_path = run_dir(protocol, task) / "children.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not args.report:
        # Seed-major: an interrupted batch still has seed 0 of every row.
        todo = [(r, s) for s in range(seeds) for r in rows if ROWS[r].trained or s == 0]
        if protocol != "quick":  # the quick protocol is a smoke run of the code: it always runs afresh
            todo = [(r, s) for r, s in todo if not record_path(protocol, r, s, task).is_file()]
        print(f"{len(todo)} runs to do ({task}, {protocol}); child output in {log_path}", flush=True)
        with log_path.open("a") as log:
            for row, seed in todo:
                run_child(protocol, task, row, seed, args.threads, log)
            if "vocab-gap" in (args.rows or "") and not (log_path.parent / "norms.json").is_file():
                norms = [sys.executable, __file__, "--protocol", protocol, "--task", task, "--norms"]
                subprocess.run(norms, check=False)
    from benchmarks.quality_report import report

    summary = report(protocol, rows, seeds, plots_=not (args.no_plots or args.quick), task=task)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
