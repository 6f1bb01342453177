"""Predictions over REST on Postgres, Redis and S3, with two real serving worker processes (tiny GPT-2)."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from common.contracts import serving_stream
from softserve.serving.models import Usage
from softserve.tenancy.models import ApiKey, Quota
from tests.net import free_port
from tests.serving.helpers import (
    ANSWER,
    PAIR,
    REDIS_URL,
    SENTIMENT,
    engine_output,
    make_artifact,
    publish,
    same_output,
    serving_pool,
)
from tests.teams import bearer
from workers.engine.inference.predict import LoadedPrompt, predict_mixed
from workers.storage import S3Store

pytestmark = pytest.mark.django_db
PREDICT = "/api/v1/prompts/{}:predict"


@dataclass
class Pool:
    store: S3Store
    redis: redis.Redis
    model_dir: Path
    idle_model_dir: Path  # a base model no worker serves
    metrics_ports: list[int]


@pytest.fixture(scope="module")
def pool(tiny_model_dirs, s3_endpoint, tmp_path_factory):
    ports = [free_port(), free_port()]
    logs = tmp_path_factory.mktemp("serving-logs")
    with serving_pool(tiny_model_dirs["gpt2"], s3_endpoint, logs, tuple(ports)) as store:
        models = tiny_model_dirs["gpt2"], tiny_model_dirs["llama"]
        yield Pool(store, redis.Redis.from_url(REDIS_URL), *models, ports)


@pytest.fixture
def served(pool, settings, acme):
    settings.SERVING_REDIS_URL = REDIS_URL
    settings.SOFTSERVE_BASE_MODELS = [str(pool.model_dir), str(pool.idle_model_dir)]
    return pool


def test_predict_end_to_end(served, acme, tiny_models):
    fm = tiny_models["gpt2"]
    sentiment = make_artifact(fm, SENTIMENT, seed=1)
    ensemble = make_artifact(fm, PAIR, members=3, seed=2)
    answer = make_artifact(fm, ANSWER, method="prefix", seed=3)
    publish(served.store, acme.tenant, "sentiment", sentiment, str(served.model_dir))
    publish(served.store, acme.tenant, "pairs", ensemble, str(served.model_dir))
    publish(served.store, acme.tenant, "answer", answer, str(served.model_dir))
    texts = ["a great film", "so bad I left early", "fine"]
    response = acme.client.post(PREDICT.format("sentiment"), {"inputs": texts}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 1 and len(body["outputs"]) == 3
    # Where the time went: queue wait and the batch's own time (both in the worker), the whole pool trip.
    timing = dict(part.strip().split(";dur=") for part in response.headers["Server-Timing"].split(","))
    assert set(timing) == {"queue", "model", "pool"}
    assert 0 < float(timing["model"]) <= float(timing["pool"]) and float(timing["queue"]) >= 0
    for text, out in zip(texts, body["outputs"], strict=True):
        assert set(out) == {"label", "scores"} and abs(sum(out["scores"].values()) - 1) < 1e-4
        assert same_output(out, engine_output(fm, sentiment, {"text": text}))
    pair = {"text_a": "good", "text_b": "great"}
    out = acme.client.post(PREDICT.format("pairs"), {"inputs": [pair], "version": 1}, format="json").json()
    assert sum(out["outputs"][0]["votes"].values()) == 3
    assert same_output(out["outputs"][0], engine_output(fm, ensemble, pair))
    out = acme.client.post(
        PREDICT.format("answer"), {"inputs": ["why?"], "alias": "production"}, format="json"
    )
    assert out.status_code == 200 and out.json()["outputs"] == [engine_output(fm, answer, {"text": "why?"})]
    # OpenAI-style: model is prompt@alias or prompt@version.
    completion = acme.client.post(
        "/api/v1/completions", {"model": "sentiment@production", "prompt": ["fine"]}, format="json"
    ).json()
    assert completion["model"] == "sentiment@1" and completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == body["outputs"][2]["label"]
    generated = acme.client.post(
        "/api/v1/completions", {"model": "answer@1", "prompt": "why?"}, format="json"
    )
    assert generated.json()["choices"][0]["text"] == out.json()["outputs"][0]["text"]
    # A request's own generation limit, and why each answer ended.
    short = acme.client.post(
        "/api/v1/completions", {"model": "answer@1", "prompt": "why?", "max_tokens": 1}, format="json"
    )
    expected = predict_mixed(fm, [(LoadedPrompt.from_artifact(fm, answer), {"text": "why?"})], 1)[0]
    assert short.status_code == 200, short.content
    assert short.json()["choices"][0]["text"] == expected["text"]
    assert short.json()["choices"][0]["finish_reason"] == expected["finish_reason"]
    too_long = acme.client.post(
        "/api/v1/completions", {"model": "answer@1", "prompt": "why?", "max_tokens": 10**6}, format="json"
    )
    assert too_long.status_code == 400 and "max_tokens" in too_long.json()["error"]["fields"]
    # Usage is counted per tenant and prompt.
    usage = {u["prompt_name"]: u for u in acme.client.get("/api/v1/usage").json()["results"]}
    assert usage["sentiment"]["requests"] == 2 and usage["sentiment"]["inputs"] == 4
    assert usage["answer"]["requests"] == 3 and usage["pairs"]["inputs"] == 1  # a 400 is not counted


def _scraped(ports: list[int]) -> dict[tuple[str, tuple], float]:
    """Every sample of every worker's /metrics, summed over the workers."""
    totals: dict[tuple[str, tuple], float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def test_workers_export_prometheus_metrics(served, acme, tiny_models):
    publish(
        served.store,
        acme.tenant,
        "metered",
        make_artifact(tiny_models["gpt2"], SENTIMENT, seed=7),
        str(served.model_dir),
    )
    before = _scraped(served.metrics_ports)
    for text in ("one", "two", "three"):
        response = acme.client.post(PREDICT.format("metered"), {"inputs": [text]}, format="json")
        assert response.status_code == 200, response.content
    after = _scraped(served.metrics_ports)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    tenant = str(acme.tenant.pk)
    assert grew("softserve_serving_requests_total", tenant=tenant, prompt="metered", status="ok") == 3
    assert grew("softserve_serving_request_latency_seconds_count", tenant=tenant, prompt="metered") == 3
    assert grew("softserve_serving_queue_wait_seconds_count") == 3
    assert (
        grew("softserve_serving_batch_rows_count") >= 1
        and grew("softserve_serving_forward_seconds_count") >= 1
    )
    assert grew("softserve_serving_prompt_cache_misses_total") >= 1  # first use, loaded from S3


def test_a_new_version_is_servable_at_once(served, acme, tiny_models):
    fm = tiny_models["gpt2"]
    publish(
        served.store, acme.tenant, "sentiment", make_artifact(fm, SENTIMENT, seed=1), str(served.model_dir)
    )
    first = acme.client.post(PREDICT.format("sentiment"), {"inputs": ["fine"]}, format="json").json()
    newer = make_artifact(fm, SENTIMENT, length=9, seed=99)
    publish(served.store, acme.tenant, "sentiment", newer, str(served.model_dir), number=2, alias=None)
    moved = acme.client.put("/api/v1/prompts/sentiment/aliases/production", {"version": 2}, format="json")
    assert moved.status_code == 200
    second = acme.client.post(PREDICT.format("sentiment"), {"inputs": ["fine"]}, format="json").json()
    assert first["version"] == 1 and second["version"] == 2
    assert same_output(second["outputs"][0], engine_output(fm, newer, {"text": "fine"}))
    assert not same_output(first["outputs"][0], second["outputs"][0], tol=1e-9)


def test_another_tenants_prompt_is_a_404_even_by_exact_name_and_version(served, acme, globex, tiny_models):
    publish(served.store, acme.tenant, "sentiment", make_artifact(tiny_models["gpt2"]), str(served.model_dir))
    assert acme.client.post(PREDICT.format("sentiment"), {"inputs": ["x"]}, format="json").status_code == 200
    browser = APIClient()
    browser.force_login(globex.owner)
    for client in (globex.client, browser):
        for body in (
            {"inputs": ["x"]},
            {"inputs": ["x"], "version": 1},
            {"inputs": ["x"], "alias": "production"},
        ):
            assert client.post(PREDICT.format("sentiment"), body, format="json").status_code == 404
        for model in ("sentiment", "sentiment@1", "sentiment@production"):
            response = client.post("/api/v1/completions", {"model": model, "prompt": "x"}, format="json")
            assert response.status_code == 404, model
        assert client.get("/api/v1/usage").json()["results"] == []
    assert Usage.objects.for_tenant(acme.tenant).get().requests == 1


def test_predict_needs_the_predict_scope(served, acme, tiny_models):
    publish(served.store, acme.tenant, "sentiment", make_artifact(tiny_models["gpt2"]), str(served.model_dir))
    _, read_only = ApiKey.mint(acme.tenant, "reader", ["read"], role="member", created_by=acme.owner)
    _, predictor = ApiKey.mint(acme.tenant, "predictor", ["predict"], role="member", created_by=acme.owner)
    body = {"inputs": ["x"]}
    assert bearer(read_only).post(PREDICT.format("sentiment"), body, format="json").status_code == 403
    assert bearer(predictor).post(PREDICT.format("sentiment"), body, format="json").status_code == 200
    assert bearer(predictor).get("/api/v1/prompts/sentiment").status_code == 403  # predict is not read


@pytest.mark.parametrize(
    "body, field",
    [
        ({"inputs": []}, "inputs"),
        ({"inputs": "a string"}, "inputs"),
        ({"inputs": [{"txt": "typo"}]}, "inputs[0].text"),
        ({"inputs": [{"txt": "typo"}]}, "inputs[0].txt"),
        ({"inputs": ["fine", {"text": 3}]}, "inputs[1].text"),
        ({"inputs": ["fine", "  "]}, "inputs[1].text"),
        ({"inputs": ["fine", ["nested"]]}, "inputs[1]"),
        ({"inputs": ["x" * 4001]}, "inputs[0]"),
        ({"inputs": ["x"] * 65}, "inputs"),
        ({"inputs": ["x"], "alias": "production", "version": 1}, "version"),
        ({"inputs": ["x"], "version": 0}, "version"),
    ],
)
def test_bad_inputs_are_400s_that_say_which_and_why(served, acme, tiny_models, body, field):
    publish(served.store, acme.tenant, "sentiment", make_artifact(tiny_models["gpt2"]), str(served.model_dir))
    response = acme.client.post(PREDICT.format("sentiment"), body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"] and error["fields"][field][0], error
    completion = acme.client.post(
        "/api/v1/completions", {"model": "sentiment", "prompt": [{"x": "1"}]}, format="json"
    )
    assert completion.status_code == 400 and "prompt[0].text" in completion.json()["error"]["fields"]


def test_unknown_and_unready_versions(served, acme, tiny_models):
    from softserve.prompts.models import PromptVersion

    version = publish(
        served.store, acme.tenant, "sentiment", make_artifact(tiny_models["gpt2"]), str(served.model_dir)
    )
    PromptVersion.objects.create(tenant=acme.tenant, prompt=version.prompt, number=2, method="prompt")
    assert (
        acme.client.post(
            PREDICT.format("sentiment"), {"inputs": ["x"], "version": 2}, format="json"
        ).status_code
        == 409
    )
    assert (
        acme.client.post(
            PREDICT.format("sentiment"), {"inputs": ["x"], "version": 7}, format="json"
        ).status_code
        == 404
    )
    assert (
        acme.client.post(
            PREDICT.format("sentiment"), {"inputs": ["x"], "alias": "staging"}, format="json"
        ).status_code
        == 404
    )
    assert acme.client.post(PREDICT.format("nothing"), {"inputs": ["x"]}, format="json").status_code == 404


def test_a_full_queue_is_a_503_with_retry_after_and_a_missed_deadline_a_504(
    served, acme, settings, tiny_models
):
    idle = str(served.idle_model_dir)  # no worker reads this model's stream
    publish(served.store, acme.tenant, "waiting", make_artifact(tiny_models["llama"]), idle)
    started = time.monotonic()
    late = acme.client.post(PREDICT.format("waiting"), {"inputs": ["x"], "timeout_ms": 300}, format="json")
    assert late.status_code == 504 and late.json()["error"]["code"] == "deadline_exceeded"
    assert time.monotonic() - started < 5
    settings.SERVING_QUEUE_MAX = 2
    served.redis.xadd(serving_stream(idle), {"body": "{}"})  # now two wait: the one above and this
    full = acme.client.post(PREDICT.format("waiting"), {"inputs": ["x"]}, format="json")
    assert full.status_code == 503 and full["Retry-After"] == "1", full.content
    assert full.json()["error"]["code"] == "overloaded"
    assert served.redis.xlen(serving_stream(idle)) == 2  # refused, not queued


def test_the_tenant_rate_limit_applies(served, acme):
    Quota.objects.update_or_create(tenant=acme.tenant, defaults={"requests_per_minute": 2})
    codes = [
        acme.client.post(PREDICT.format("none"), {"inputs": ["x"]}, format="json").status_code
        for _ in range(3)
    ]
    assert codes == [404, 404, 429]
