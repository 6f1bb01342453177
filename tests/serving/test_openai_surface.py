"""The OpenAI surface: `GET /api/v1/models` (and one model) in OpenAI's list shape, and `usage` token
counts on every completion, through a real serving worker process (tiny GPT-2) on Redis and S3, called
over plain HTTP the way an OpenAI client calls it (the `openai` package is not installed here)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from softserve.prompts.models import Alias, PromptVersion
from softserve.tenancy.models import ApiKey
from tests.prompts.test_registry_api import ready_version
from tests.serving.helpers import (
    ANSWER,
    REDIS_URL,
    SENTIMENT,
    make_artifact,
    publish,
    serving_pool,
)
from tests.teams import bearer, make_prompt
from workers.engine.inference.predict import LoadedPrompt

pytestmark = pytest.mark.django_db


def test_models_list_and_detail_in_openais_shape(acme, globex):
    make_prompt(acme)
    v1 = ready_version(acme.tenant, "sentiment", 1)
    ready_version(acme.tenant, "sentiment", 2)
    PromptVersion.objects.create(tenant=acme.tenant, prompt=v1.prompt, number=3, method="prompt")  # pending
    Alias.objects.create(tenant=acme.tenant, prompt=v1.prompt, name="production", version=v1)
    make_prompt(globex, name="secret-prompt")
    ready_version(globex.tenant, "secret-prompt", 1)
    listed = acme.client.get("/api/v1/models")
    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["sentiment@production", "sentiment@2", "sentiment@1"]
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by"}
        assert model["object"] == "model" and model["owned_by"] == "acme" and model["created"] > 0
    one = acme.client.get("/api/v1/models/sentiment@production")
    assert one.status_code == 200 and one.json() == body["data"][0]
    assert acme.client.get("/api/v1/models/sentiment%402").json()["id"] == "sentiment@2"
    for unknown in ("sentiment@3", "sentiment@staging", "sentiment", "secret-prompt@1", "nope@1", "@1"):
        answer = acme.client.get(f"/api/v1/models/{unknown}")
        assert answer.status_code == 404, (unknown, answer.content)
    # Another team sees only its own names, never these.
    theirs = globex.client.get("/api/v1/models").json()["data"]
    assert [m["id"] for m in theirs] == ["secret-prompt@1"]
    assert globex.client.get("/api/v1/models/sentiment@production").status_code == 404
    # The key an OpenAI client holds may only predict: it lists the models too; a write-only key does not.
    _, predict_only = ApiKey.mint(acme.tenant, "p", ["predict"], created_by=acme.owner)
    _, read_only = ApiKey.mint(acme.tenant, "r", ["read"], created_by=acme.owner)
    _, write_only = ApiKey.mint(acme.tenant, "w", ["write"], created_by=acme.owner)
    assert bearer(predict_only).get("/api/v1/models").json() == body
    assert bearer(read_only).get("/api/v1/models/sentiment@1").status_code == 200
    refused = bearer(write_only).get("/api/v1/models")
    assert refused.status_code == 403 and "read or predict" in refused.json()["error"]["message"]


@pytest.fixture(scope="module")
def one_worker(tiny_model_dirs, s3_endpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("serving-logs")
    with serving_pool(tiny_model_dirs["gpt2"], s3_endpoint, logs) as store:
        yield store, tiny_model_dirs["gpt2"]


def _call(base: str, key: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One request as an OpenAI client sends it: JSON, `Authorization: Bearer <key>`."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base}/api/v1/{path}",
        data=data,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.django_db(transaction=True)
def test_completions_report_token_usage_over_http(one_worker, live_server, settings, acme, tiny_models):
    store, model_dir = one_worker
    settings.SERVING_REDIS_URL = REDIS_URL
    settings.SOFTSERVE_BASE_MODELS = [str(model_dir)]
    fm = tiny_models["gpt2"]
    sentiment = make_artifact(fm, SENTIMENT, seed=1)
    answer = make_artifact(fm, ANSWER, seed=3)
    publish(store, acme.tenant, "sentiment", sentiment, str(model_dir))
    publish(store, acme.tenant, "answer", answer, str(model_dir))
    status, models = _call(live_server.url, acme.key, "models")
    assert status == 200 and {m["id"] for m in models["data"]} == {
        "sentiment@production",
        "sentiment@1",
        "answer@production",
        "answer@1",
    }

    def input_tokens(artifact, text: str) -> int:
        # The input as the template formats it; the soft prompt's positions are not tokens of the caller's.
        return len(LoadedPrompt.from_artifact(fm, artifact).encoder.input_ids({"text": text}))

    texts = ["a great film", "so bad I left early"]
    status, done = _call(
        live_server.url, acme.key, "completions", {"model": "sentiment@production", "prompt": texts}
    )
    assert status == 200, done
    expected = sum(input_tokens(sentiment, t) for t in texts)
    assert done["usage"] == {
        "inputs": 2,
        "prompt_tokens": expected,
        "completion_tokens": 0,  # classification scores its labels; it generates nothing
        "total_tokens": expected,
    }
    for limit in (1, 3):
        status, done = _call(
            live_server.url,
            acme.key,
            "completions",
            {"model": "answer@1", "prompt": "why?", "max_tokens": limit},
        )
        assert status == 200, done
        usage, choice = done["usage"], done["choices"][0]
        assert usage["prompt_tokens"] == input_tokens(answer, "why?")
        generated = fm.encode(choice["text"]) if choice["text"] else []
        if choice["finish_reason"] == "length":
            assert usage["completion_tokens"] == limit
        else:
            assert usage["completion_tokens"] < limit
        assert usage["completion_tokens"] >= (1 if generated else 0)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The prompt's own predict call keeps its public output shape: no token counts in its outputs.
    status, predicted = _call(live_server.url, acme.key, "prompts/sentiment:predict", {"inputs": ["fine"]})
    assert status == 200 and set(predicted["outputs"][0]) == {"label", "scores"}
