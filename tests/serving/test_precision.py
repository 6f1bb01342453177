"""Scoring at training's precision policy: bf16 autocast picks the labels fp32 picks, on held rows.

The serving pool, evaluation jobs and the CLI score under `auto` (bf16 where the device runs it natively,
as training does); this checks on the real model and real rows that the labels stay those of fp32.
"""

import pytest

from benchmarks.common import TASKS
from common.task import TaskSpec
from tests.conftest import shared_dataset
from workers.engine.base_model import load_base_model
from workers.engine.inference.design import design_prompt
from workers.engine.inference.predict import predict
from workers.engine.training.data import read_rows, to_examples

pytestmark = pytest.mark.real_model

ROWS = 40


@pytest.fixture(scope="module")
def fm():
    return load_base_model()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_bf16_labels_agree_with_fp32_on_held_rows(fm, task):
    template, labels = TASKS[task].template, list(TASKS[task].labels)
    spec = TaskSpec("classification", template, labels)
    examples = to_examples(read_rows(shared_dataset(task, "dev")), template, "label")[:ROWS]
    prompt = design_prompt(fm, spec, [])
    rows = [ex.fields for ex in examples]
    exact = predict(fm, prompt, rows, precision="fp32")
    fast = predict(fm, prompt, rows, precision="bf16")
    agree = sum(a["label"] == b["label"] for a, b in zip(exact, fast, strict=True)) / len(rows)
    # Labels flip only where fp32's two best labels are within bf16's rounding of each other.
    assert agree >= 0.9, (task, agree)
    drift = max(
        abs(a["scores"][label] - b["scores"][label])
        for a, b in zip(exact, fast, strict=True)
        for label in labels
    )
    assert drift < 0.1, (task, drift)
