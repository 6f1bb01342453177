"""The README's 15-minute SST-2 command, run as written, scored on dev rows its training never saw.

The command is read from README.md ("The engine from the shell"), not copied here, so the figure is the
one a new user gets. Its `--dev` (early stopping) is pointed at the first half of the shared SST-2 dev
split and the trained prompt is scored on the second half, which training never sees (the issue's
held-out set lives outside ../shared; this half is its proxy). Each seed is its own `softserve-engine`
process. Baseline: the README's prompt-design command (`baseline`, 0-shot) on the same rows.
Target: every seed ≥ 88%, on the whole held-out half and on its whole sentences (the rows that end like
a sentence: GLUE's own dev set holds whole sentences only, while the shared rows come from GLUE's train
split, where many rows are short phrases).
`--quick`: a 30-second budget, a 100-row probe, 200 rows in each half, one seed.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import dataset_path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = [sys.executable, "-m", "workers.engine.cli"]
TARGET_ACCURACY = 0.88


def readme_command(name: str) -> list[str]:
    """The arguments of the README's `softserve-engine NAME …` line (continuations joined)."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    match = re.search(rf"^softserve-engine {name} (.+)$", text, re.MULTILINE)
    if not match:
        raise SystemExit(f"README.md has no `softserve-engine {name}` command")
    shared = str(dataset_path("sst2", "train").parent)  # the README's D=../shared/datasets/sst2
    return [a.replace("$D", shared) for a in shlex.split(match.group(1).split("#")[0])]


def set_option(args: list[str], option: str, value: str) -> list[str]:
    """`args` with `option`'s value replaced (or appended when absent)."""
    if option in args:
        at = args.index(option)
        return [*args[: at + 1], value, *args[at + 2 :]]
    return [*args, option, value]


# A whole sentence: five words or more, ending in ., ! or ? (SST-2's tokenised text may close a quote after).
WHOLE_SENTENCE = re.compile(r"^(\S+\s+){4,}.*[.!?][\s'\"`]*$")


def whole_sentences(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if WHOLE_SENTENCE.match(row["text"].strip())]


def split_dev(folder: Path, rows_each: int | None) -> tuple[Path, Path, Path]:
    """The shared dev split's first half (early stopping), second half (scored) and the second half's
    whole sentences, as CSV files of at most `rows_each` rows (the sentences: of the scored rows)."""
    with dataset_path("sst2", "dev").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        fields = reader.fieldnames or []
    half = len(rows) // 2
    paths = []
    scored = rows[half:][:rows_each]
    for name, part in (
        ("stop", rows[:half][:rows_each]),
        ("scored", scored),
        ("sentences", whole_sentences(scored)),
    ):
        path = folder / f"dev-{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(part)
        paths.append(path)
    return paths[0], paths[1], paths[2]


def run_engine(args: list[str]) -> dict:
    """One `softserve-engine` process (progress passes through to stderr); its last JSON line."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [*ENGINE, *args, "--json"], cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"softserve-engine {args[0]} exited {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 s budget, 200 rows per dev half, one seed")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 2; quick 1)")
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 2)
    folder = Path(tempfile.mkdtemp(prefix="softserve-readme-"))
    stop_rows, scored_rows, sentence_rows = split_dev(folder, 200 if args.quick else None)
    train = set_option(readme_command("train"), "--dev", str(stop_rows))
    if args.quick:  # a minute of training, a small early-stopping probe
        train = set_option(set_option(train, "--max-minutes", "0.5"), "--dev-eval-limit", "100")
    print("README train command:", shlex.join(["softserve-engine", "train", *train]), file=sys.stderr)
    design = readme_command("baseline")
    design = set_option(design, "--data", str(scored_rows))
    design = set_option(design, "--shots", "0")
    baseline = run_engine(["baseline", *design])["accuracy"]
    baseline_sentences = run_engine(["baseline", *set_option(design, "--data", str(sentence_rows))])[
        "accuracy"
    ]
    runs = []
    for seed in range(seeds):
        out = folder / f"seed{seed}.safetensors"
        started = time.monotonic()
        seeded = set_option(set_option(train, "--out", str(out)), "--seed", str(seed))
        trained = run_engine(["train", *seeded])
        minutes = (time.monotonic() - started) / 60
        scored = run_engine(["eval", "--prompt", str(out), "--data", str(scored_rows)])
        sentences = run_engine(["eval", "--prompt", str(out), "--data", str(sentence_rows)])
        runs.append(
            {
                "seed": seed,
                "accuracy": scored["accuracy"],
                "macro_f1": scored["macro_f1"],
                "sentences_accuracy": sentences["accuracy"],
                "steps_run": trained["steps_run"],
                "best_step": trained["best_step"],
                "stop_reason": trained["stop_reason"],
                "train_minutes": round(minutes, 2),
                "load_1m": round(os.getloadavg()[0], 1),
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    accuracies = [run["accuracy"] for run in runs]
    on_sentences = [run["sentences_accuracy"] for run in runs]
    mean = sum(accuracies) / len(accuracies)
    sd = (sum((a - mean) ** 2 for a in accuracies) / max(1, len(accuracies) - 1)) ** 0.5
    print(
        json.dumps(
            {
                "command": shlex.join(["softserve-engine", "train", *train]),
                "scored_rows": sum(1 for _ in scored_rows.open()) - 1,
                "design_0shot_acc": baseline,
                "runs": runs,
                "mean_acc": round(mean, 4),
                "sd_acc": round(sd, 4),
                "min_acc": min(accuracies),
                "sentence_rows": sum(1 for _ in sentence_rows.open()) - 1,
                "sentences_design_0shot_acc": baseline_sentences,
                "sentences_mean_acc": round(sum(on_sentences) / len(on_sentences), 4),
                "sentences_min_acc": min(on_sentences),
                "target": TARGET_ACCURACY,
                "target_met": min(accuracies) >= TARGET_ACCURACY and min(on_sentences) >= TARGET_ACCURACY,
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
