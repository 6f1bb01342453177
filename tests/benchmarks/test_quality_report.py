"""The quality benchmark's aggregation: mean ± sd over seeds and the tables built from per-seed records."""

from __future__ import annotations

import json

import pytest

from benchmarks.quality import expand
from benchmarks.quality_report import (
    dev_majority_class,
    fmt_pct,
    load_records,
    main_table,
    majority_class,
    mean_sd,
    summarise,
)


def record(row: str, seed: int, acc: float, **extra) -> dict:
    return {
        "row": row,
        "seed": seed,
        "dev_accuracy": acc,
        "dev_macro_f1": acc - 0.01,
        "train_wall_s": 100.0 + seed,
        "train_cpu_s": 150.0,
        "peak_rss_mb": 1500.0,
        "best_step": 60,
        "storage_bytes": 46080,
        "serving_bytes": 46080,
        "curve": [[15, 30.0, acc]],
        **extra,
    }


def test_mean_and_sample_sd():
    mean, sd = mean_sd([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9)
    assert sd == pytest.approx(0.1)  # sample sd (n - 1), not population
    assert mean_sd([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_sd([])


def test_percent_format():
    assert fmt_pct([0.8, 0.9, 1.0]) == "90.0 ± 10.0"
    assert fmt_pct([0.8774]) == "87.7"
    assert fmt_pct([]) == "—"


def test_records_grouped_by_row_and_sorted_by_seed(tmp_path):
    folder = tmp_path / "quality_runs" / "small"
    folder.mkdir(parents=True)
    for seed, acc in [(2, 0.7), (0, 0.9), (1, 0.8)]:
        (folder / f"prompt-labels-s{seed}.json").write_text(json.dumps(record("prompt-labels", seed, acc)))
    (folder / "norms.json").write_text("{}")  # not a run record
    records = load_records("small", tmp_path)
    assert list(records) == ["prompt-labels"]
    assert [r["seed"] for r in records["prompt-labels"]] == [0, 1, 2]
    summary = summarise(records["prompt-labels"])
    assert summary["dev_accuracy"] == pytest.approx(0.8)
    assert summary["dev_accuracy_sd"] == pytest.approx(0.1)
    assert summary["per_seed_accuracy"] == [0.9, 0.8, 0.7]
    assert summary["train_wall_s"] == pytest.approx(101.0)


def test_main_table_marks_missing_seeds_and_rows():
    records = {"prompt-labels": [record("prompt-labels", 0, 0.9), record("prompt-labels", 1, 0.8)]}
    text = main_table(records, ["prompt-labels", "lora"], seeds=3)
    lines = text.splitlines()
    assert "85.0 ± 7.1" in lines[2] and "| 2/3 |" in lines[2] and "46.1 kB" in lines[2]
    assert lines[3].count("—") >= 7  # no LoRA records yet


def test_groups_expand_in_order_without_repeats():
    names = expand("ablation,main")
    assert names[0] == "prompt-labels" and names.count("prompt-labels") == 1
    assert names[-2:] == ["full-ft", "ensemble"]
    assert expand("tasks") == ["design-0shot", "prompt-labels", "ensemble", "lora"]
    with pytest.raises(SystemExit):
        expand("nonsense")


def test_majority_class_scores_a_constant_answer():
    floor = majority_class(["a", "a", "b", "c"], n_labels=3)
    assert floor["label"] == "a" and floor["rows"] == 4
    assert floor["accuracy"] == 0.5
    # F1 of "a": precision 0.5, recall 1 → 2/3; "b" and "c" score 0; the mean over 3 labels.
    assert floor["macro_f1"] == pytest.approx(2 / 9, abs=1e-4)


@pytest.mark.parametrize(
    ("task", "label", "rows", "accuracy"),
    [("rte", "entailment", 250, 0.548), ("agnews", "business", 300, 0.28)],
)
def test_the_dev_floor_is_counted_on_the_rows_the_protocol_scores(task, label, rows, accuracy):
    # The shared dev splits: RTE's 250 rows hold 137 entailment; AG News' first 300 hold 84 business.
    floor = dev_majority_class("small", task)
    assert (floor["label"], floor["rows"], floor["accuracy"]) == (label, rows, accuracy)
