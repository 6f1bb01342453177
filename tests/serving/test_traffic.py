"""Splits, shadows, the prediction log, live figures and automatic rollback, over REST on Postgres, Redis
and S3 with a real serving worker process (tiny GPT-2)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from common.contracts import PredictionOutcome, WebhookEvent
from softserve.prompts.models import Alias
from softserve.serving import actions
from softserve.serving.models import Prediction
from softserve.tenancy.models import AuditEvent
from softserve.webhooks.models import Webhook, WebhookDelivery
from tests.net import free_port
from tests.serving import test_embedded
from tests.serving.helpers import (
    ANSWER,
    REDIS_URL,
    SENTIMENT,
    engine_output,
    make_artifact,
    publish,
    same_output,
    serving_pool,
)

PREDICT = "/api/v1/prompts/{}:predict"
embedded = test_embedded.embedded  # the embedded pool's fixture (no Redis, the batcher in this process)
TRAFFIC = "/api/v1/prompts/{}/traffic"
TEXTS = ["a great film", "so bad I left early", "fine", "dull", "wonderful acting", "meh"]


def test_a_split_lands_within_four_points_and_a_routing_key_always_reaches_one_version():
    split = [{"version": 3, "weight": 80}, {"version": 4, "weight": 20}]
    draws = Counter(actions.pick_version("alias-1", split) for _ in range(1000))
    assert abs(draws[3] / 10 - 80) <= 4 and abs(draws[4] / 10 - 20) <= 4, draws
    keyed = Counter(actions.pick_version("alias-1", split, f"user-{i}") for i in range(1000))
    assert abs(keyed[3] / 10 - 80) <= 4, keyed  # keys spread by weight too
    for i in range(50):
        assert len({actions.pick_version("alias-1", split, f"user-{i}") for _ in range(5)}) == 1
    # Another alias hashes the same key independently; a zero weight is never reached.
    assert {
        actions.pick_version("a", [{"version": 1, "weight": 100}, {"version": 2, "weight": 0}])
        for _ in range(50)
    } == {1}


@pytest.fixture(scope="module")
def pool(tiny_model_dirs, s3_endpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("traffic-logs")
    with serving_pool(tiny_model_dirs["gpt2"], s3_endpoint, logs, (free_port(),)) as store:
        yield store, tiny_model_dirs["gpt2"]


@pytest.fixture
def served(pool, settings, db):
    settings.SERVING_REDIS_URL = REDIS_URL
    settings.SOFTSERVE_BASE_MODELS = [str(pool[1])]
    return pool


def test_split_and_shadow_over_rest(served, acme, globex, tiny_models):
    store, model_dir = served
    fm = tiny_models["gpt2"]
    artifacts = {n: make_artifact(fm, SENTIMENT, length=4 + n, seed=n) for n in (1, 2, 3)}
    versions = {
        n: publish(store, acme.tenant, "sentiment", a, str(model_dir), number=n, alias=None)
        for n, a in artifacts.items()
    }
    alias = Alias.objects.create(
        tenant=acme.tenant,
        prompt=versions[1].prompt,
        name="production",
        version=versions[1],
        split=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
        shadow=versions[3],
    )
    prompt = versions[1].prompt
    prompt.keep_inputs = True
    prompt.save(update_fields=["keep_inputs"])

    reached: dict[str, set[int]] = {}
    replies = []
    for _ in range(2):
        for i in range(12):
            text = TEXTS[i % len(TEXTS)]
            response = acme.client.post(
                PREDICT.format("sentiment"),
                {"inputs": [text, "ok"], "routing_key": f"user-{i}"},
                format="json",
            )
            assert response.status_code == 200, response.content
            body = response.json()
            assert body["alias"] == "production" and body["version"] in (1, 2)
            uuid.UUID(body["prediction_id"])
            reached.setdefault(f"user-{i}", set()).add(body["version"])
            replies.append((text, body))
    assert all(len(v) == 1 for v in reached.values()), reached  # a key always reaches one version
    assert {v for s in reached.values() for v in s} == {1, 2}  # and both versions serve
    for text, body in replies:
        assert same_output(body["outputs"][0], engine_output(fm, artifacts[body["version"]], {"text": text}))
        logged = Prediction.objects.get(pk=body["prediction_id"])
        assert logged.version.number == body["version"] and logged.alias == "production"
        assert logged.outcome == PredictionOutcome.OK and logged.rows == 2
        assert logged.outputs == [o["label"] for o in body["outputs"]]
        assert logged.inputs == [{"text": text}, {"text": "ok"}]  # the prompt keeps inputs
        # The shadow scored the same rows in the same batch; the caller never saw it.
        shadow = [engine_output(fm, artifacts[3], {"text": t})["label"] for t in (text, "ok")]
        assert logged.shadow_version_id == versions[3].pk and logged.shadow_outputs == shadow
        assert logged.shadow_agreement == sum(a == b for a, b in zip(logged.outputs, shadow, strict=True)) / 2
    # The OpenAI surface names the prediction and the version too.
    completion = acme.client.post(
        "/api/v1/completions",
        {"model": "sentiment", "prompt": "fine", "routing_key": "user-0"},
        format="json",
    ).json()
    assert completion["softserve"]["version"] == next(iter(reached["user-0"]))
    assert Prediction.objects.filter(pk=completion["softserve"]["prediction_id"]).exists()
    assert set(completion["usage"]) >= {"inputs"}
    too_long = acme.client.post(
        PREDICT.format("sentiment"), {"inputs": ["x"], "routing_key": "k" * 201}, format="json"
    )
    assert too_long.status_code == 400 and "routing_key" in too_long.json()["error"]["fields"], (
        too_long.content
    )

    # The live figures: per version, from the log.
    figures = acme.client.get(TRAFFIC.format("sentiment"), {"window_s": 600})
    assert figures.status_code == 200, figures.content
    by_number = {v["version"]: v for v in figures.json()["versions"]}
    assert set(by_number) == {1, 2, 3}
    logged = Prediction.objects.filter(prompt=prompt)
    for n in (1, 2):
        mine = logged.filter(version=versions[n])
        assert by_number[n]["requests"] == mine.count() and by_number[n]["errors"] == 0
        assert by_number[n]["p95_ms"] >= by_number[n]["p50_ms"] > 0
        assert sum(by_number[n]["labels"].values()) == sum(mine.values_list("rows", flat=True))
        assert sum(by_number[n]["series"]["requests"]) == mine.count()
        assert {"alias": "production", "role": "primary" if n == 1 else "canary", "weight": 50} in by_number[
            n
        ]["roles"]
    shadow = by_number[3]
    assert shadow["requests"] == 0 and shadow["roles"] == [{"alias": "production", "role": "shadow"}]
    agreements = [p.shadow_agreement for p in logged]
    assert shadow["shadow"]["requests"] == len(agreements)
    assert abs(shadow["shadow"]["agreement"] - sum(agreements) / len(agreements)) < 1e-3
    assert any(a is not None for a in shadow["series"]["agreement"])
    # Bad input is a 400 with the field; another team's prompt a 404.
    bad = acme.client.get(TRAFFIC.format("sentiment"), {"window_s": 10**6})
    assert bad.status_code == 400 and "window_s" in bad.json()["error"]["fields"]
    assert globex.client.get(TRAFFIC.format("sentiment")).status_code == 404
    assert alias.pk  # untouched by traffic: no policy, no rollback


def test_a_failing_canary_is_rolled_back_within_its_window(served, acme, tiny_models, monkeypatch):
    store, model_dir = served
    fm = tiny_models["gpt2"]
    primary = publish(
        store, acme.tenant, "answer", make_artifact(fm, ANSWER, seed=5), str(model_dir), alias=None
    )
    # The canary's artifact is not in storage: the pool cannot load it, every request to it fails.
    canary = publish(
        store, acme.tenant, "answer", make_artifact(fm, ANSWER, seed=6), str(model_dir), number=2, alias=None
    )
    canary.artifact_key = f"{canary.artifact_key}.missing"
    canary.save(update_fields=["artifact_key"])
    alias = Alias.objects.create(
        tenant=acme.tenant,
        prompt=primary.prompt,
        name="production",
        version=primary,
        split=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
        policy={"max_error_rate": 0.2, "window_s": 120, "min_requests": 4},
    )
    hook = Webhook.objects.create(
        tenant=acme.tenant,
        url="https://hooks.example/x",
        events=[WebhookEvent.CANARY_ROLLED_BACK],
        secret="s",
    )
    monkeypatch.setattr(actions, "CANARY_CHECK_EVERY_S", 0.0)  # look after every canary prediction
    statuses = Counter()
    for i in range(60):
        response = acme.client.post(
            PREDICT.format("answer"),
            {"inputs": ["why?"], "max_new_tokens": 2, "routing_key": str(i)},
            format="json",
        )
        statuses[response.status_code] += 1
        if response.status_code != 200:
            assert response.json()["error"]["code"] == "prompt_unavailable"
        alias.refresh_from_db()
        if not alias.split:
            break
    assert alias.split == [] and alias.version_id == primary.pk, statuses
    errors = Prediction.objects.filter(version=canary, outcome=PredictionOutcome.ERROR)
    assert errors.count() == 4 and set(errors.values_list("error_code", flat=True)) == {"prompt_unavailable"}
    assert errors.first().alias == "production" and errors.first().outputs == []
    event = AuditEvent.objects.get(tenant=acme.tenant, action="alias.rollback")
    assert event.actor_user is None and event.actor_key is None
    assert event.after["by"] == actions.SYSTEM_ACTOR and event.after["rolled_back"] == 2
    assert event.after["reasons"] == ["max_error_rate"] and event.after["figures"]["requests"] == 4
    audit = acme.client.get("/api/v1/audit").json()
    listed = next(e for e in audit.get("results", audit) if e["action"] == "alias.rollback")
    assert listed["actor"] == "system:canary-watch"
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.event == WebhookEvent.CANARY_ROLLED_BACK and delivery.payload["data"]["version"] == 2
    # From now on the primary answers every request.
    for i in range(5):
        body = acme.client.post(
            PREDICT.format("answer"),
            {"inputs": ["why?"], "max_new_tokens": 2, "routing_key": str(i)},
            format="json",
        ).json()
        assert body["version"] == 1
    figures = acme.client.get(TRAFFIC.format("answer")).json()
    canary_figures = next(v for v in figures["versions"] if v["version"] == 2)
    assert canary_figures["errors"] == canary_figures["requests"] == 4 and canary_figures["error_rate"] == 1.0
    assert canary_figures["labels"] is None  # generation: no label distribution


def test_a_missed_deadline_writes_an_error_row(acme, tiny_models, tmp_path, monkeypatch):
    from softserve.serving import client
    from workers.storage import LocalStore

    fm = tiny_models["gpt2"]
    version = publish(LocalStore(tmp_path), acme.tenant, "sentiment", make_artifact(fm, SENTIMENT), "gpt2")

    def no_reply(request, timeout_s):
        raise client.NoReply

    monkeypatch.setattr(client, "submit", no_reply)
    response = acme.client.post(PREDICT.format("sentiment"), {"inputs": ["fine", "ok"]}, format="json")
    assert response.status_code == 504, response.content
    row = Prediction.objects.get(version=version)
    assert row.outcome == PredictionOutcome.ERROR and row.error_code == "deadline_exceeded"
    assert row.alias == "production" and row.rows == 2 and row.inputs is None  # the prompt keeps no inputs
    assert row.latency_ms >= 0


def test_routing_costs_one_query_and_a_split_pick_one_more(
    acme, tiny_models, tmp_path, django_assert_num_queries
):
    from softserve.tenancy.permissions import Actor
    from workers.storage import LocalStore

    store, fm = LocalStore(tmp_path), tiny_models["gpt2"]
    v1 = publish(store, acme.tenant, "sentiment", make_artifact(fm, SENTIMENT, seed=1), "gpt2")
    v2 = publish(store, acme.tenant, "sentiment", make_artifact(fm, SENTIMENT, seed=2), "gpt2", 2, None)
    v3 = publish(store, acme.tenant, "sentiment", make_artifact(fm, SENTIMENT, seed=3), "gpt2", 3, None)
    actor = Actor(tenant=acme.tenant, role="owner")
    with django_assert_num_queries(1):
        plain = actions.route(actor, "sentiment")
    assert plain.version == v1 and plain.alias.name == "production" and plain.shadow is None
    split = [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]
    Alias.objects.filter(pk=plain.alias.pk).update(split=split, shadow=v3)
    picks = Counter()
    for i in range(40):
        expected = actions.pick_version(plain.alias.pk, split, f"k{i}")
        with django_assert_num_queries(1 if expected == 1 else 2):  # the primary comes with the alias
            where = actions.route(actor, "sentiment", routing_key=f"k{i}")
        assert where.version.number == expected and where.shadow == v3
        assert where.canary == (where.version == v2)
        picks[expected] += 1
    assert set(picks) == {1, 2}


def test_embedded_pool_scores_the_shadow_in_process(embedded, acme, tiny_models, tiny_model_dirs):
    """The embedded default (no Redis): the same batcher in the web process rides the shadow along."""
    fm, model_dir = tiny_models["llama"], str(tiny_model_dirs["llama"])
    primary, shadow = make_artifact(fm, SENTIMENT, seed=7), make_artifact(fm, SENTIMENT, seed=8)
    v1 = publish(embedded, acme.tenant, "sentiment", primary, model_dir)
    v2 = publish(embedded, acme.tenant, "sentiment", shadow, model_dir, number=2, alias=None)
    Alias.objects.filter(prompt=v1.prompt, name="production").update(shadow=v2)
    body = acme.client.post(PREDICT.format("sentiment"), {"inputs": TEXTS[:3]}, format="json").json()
    assert body["version"] == 1 and body["alias"] == "production"
    logged = Prediction.objects.get(pk=body["prediction_id"])
    expected = [engine_output(fm, shadow, {"text": t})["label"] for t in TEXTS[:3]]
    assert logged.shadow_version == v2 and logged.shadow_outputs == expected
    for text, out in zip(TEXTS[:3], body["outputs"], strict=True):
        assert same_output(out, engine_output(fm, primary, {"text": text}))
