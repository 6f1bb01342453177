"""The embedded default: no Redis, the batching loop runs in this process, artifacts in a local folder."""

from __future__ import annotations

import pytest

from tests.serving.helpers import SENTIMENT, engine_output, make_artifact, publish, same_output
from workers import storage
from workers.serving import local

pytestmark = pytest.mark.django_db


@pytest.fixture
def embedded(settings, monkeypatch, tmp_path, tiny_model_dirs):
    settings.SERVING_REDIS_URL = ""
    settings.SOFTSERVE_BASE_MODELS = [str(tiny_model_dirs["llama"])]
    for name in ("S3_ENDPOINT_URL", "S3_USE_AWS", "SERVING_REDIS_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORAGE_DIR", str(tmp_path / "storage"))
    storage.default_store.cache_clear()
    local.close_pools()
    yield storage.default_store()
    local.close_pools()
    storage.default_store.cache_clear()


def test_predict_runs_in_process_without_redis(embedded, acme, tiny_models, tiny_model_dirs):
    fm = tiny_models["llama"]
    artifact = make_artifact(fm, SENTIMENT, members=2, seed=4)
    publish(embedded, acme.tenant, "sentiment", artifact, str(tiny_model_dirs["llama"]))
    texts = ["fine", "a long and rather dull film"]
    response = acme.client.post("/api/v1/prompts/sentiment:predict", {"inputs": texts}, format="json")
    assert response.status_code == 200, response.content
    for text, out in zip(texts, response.json()["outputs"], strict=True):
        assert same_output(out, engine_output(fm, artifact, {"text": text}))
    assert list(local._pools) == [str(tiny_model_dirs["llama"])]  # the loop really ran here
