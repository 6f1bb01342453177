"""The quality benchmark's rows end to end on a tiny model: train, record, report, for every task.

`quality.py --rows ensemble` once trained for 20 minutes and then failed in the report with
`TypeError: must be real number, not list` (an ensemble's best step is one per member); these run the
same record and report path on a tiny Llama in seconds.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.quality import expand, record_path, write_record
from benchmarks.quality_report import load_records, report, run_dir
from benchmarks.quality_rows import Protocol, run_row

TINY = Protocol(
    steps=2,
    batch_size=2,
    dev_rows=6,
    probe_rows=4,
    eval_every=1,
    max_input_tokens=24,
    seeds=2,
    train_rows=200,
)


@pytest.fixture
def llama(tiny_model_dirs):
    """A tiny Llama of this test's own: the LoRA row injects its layers into the model in place (in
    quality.py every row has a process of its own), so the session's shared tiny models stay clean."""
    from workers.engine.base_model import load_base_model

    return load_base_model(str(tiny_model_dirs["llama"]))


def test_the_ensemble_row_records_each_member_beside_the_vote_and_reports(llama, tmp_path, capsys):
    for seed in (0, 1):
        record = run_row(TINY, "ensemble", seed, "sst2", fm=llama)
        write_record(record_path("small", "ensemble", seed, "sst2", tmp_path), record)
    # The report first, as quality.py runs it after the training: where the TypeError was raised.
    summary = report("small", ["ensemble"], seeds=2, plots_=False, root=tmp_path)
    out = capsys.readouterr().out
    records = load_records("small", tmp_path)["ensemble"]
    assert [r["seed"] for r in records] == [0, 1]
    for r in records:
        members = r["members"]
        # Row seed s trains members 5s .. 5s+4: the two seeds share no member.
        assert [m["seed"] for m in members] == [5 * r["seed"] + k for k in range(5)]
        assert all(0.0 <= m["dev_accuracy"] <= 1.0 and 1 <= m["best_step"] <= 2 for m in members)
        assert r["best_step"] == pytest.approx(sum(m["best_step"] for m in members) / 5, abs=0.05)
        assert r["dev_n"] == 6 and r["storage_bytes"] == 5 * 20 * llama.embed_dim * 4
    assert "the ensemble against its members" in out
    assert "beats best member in" in out  # the mean row over the two seeds
    first = records[0]
    accs = ", ".join(f"{100 * m['dev_accuracy']:.1f}" for m in first["members"])
    assert f"| 0 | 0, 1, 2, 3, 4 | {accs} |" in out
    best = max(m["dev_accuracy"] for m in first["members"])
    assert f"{100 * (first['dev_accuracy'] - best):+.1f}" in out
    assert summary["ensemble"]["seeds"] == [0, 1]
    assert 0.0 <= summary["ensemble"]["best_member_accuracy"] <= 1.0
    json.dumps(summary)  # the last line of quality.py


@pytest.mark.parametrize("task", ["agnews", "rte"])
def test_each_task_runs_every_row_kind_and_keeps_its_records_apart(llama, tmp_path, task, capsys):
    labels = {"agnews": {"world", "sports", "business", "sci_tech"}, "rte": {"entailment", "not_entailment"}}
    for row in ("design-0shot", "prompt-labels", "prompt-text", "lora"):
        record = run_row(TINY, row, 0, task, fm=llama)
        assert record["task"] == task and record["dev_n"] == 6
        # A task with longer rows than the protocol's cut raises it (AG News 128, RTE 256 tokens).
        assert record["max_input_tokens"] == {"agnews": 128, "rte": 256}[task]
        write_record(record_path("small", row, 0, task, tmp_path), record)
    assert run_dir("small", task, tmp_path).name == f"small-{task}"
    assert load_records("small", tmp_path) == {}  # SST-2's folder is untouched
    records = load_records("small", tmp_path, task)
    assert set(records) == {"design-0shot", "prompt-labels", "prompt-text", "lora"}
    config = records["prompt-labels"][0]["resolved_config"]
    assert config["max_input_tokens"] == records["prompt-labels"][0]["max_input_tokens"]
    from benchmarks.common import TASKS

    assert records["prompt-text"][0]["resolved_config"]["init_text"] == TASKS[task].text_init
    summary = report("small", expand("tasks"), seeds=1, plots_=False, root=tmp_path, task=task)
    assert summary["task"] == task and "ensemble" not in summary  # no ensemble record for this task
    out = capsys.readouterr().out
    assert {"agnews": "AG News", "rte": "RTE"}[task] in out
    assert summary["majority_class"]["label"] in labels[task]
    assert f"The majority class, no model (always `{summary['majority_class']['label']}`)" in out
    assert set(TASKS[task].labels) == labels[task]
