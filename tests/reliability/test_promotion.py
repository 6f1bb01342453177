"""Issue 23's scenario, end to end on the real parts: a `celery worker -B` (evaluations, webhook deliveries,
the sweep, a tuning job), a `python -m workers.serving` process over Redis, PostgreSQL, the S3 server, a
real HTTP receiver for webhooks, and the REST API in this process. Tiny GPT-2.

Versions of one prompt whose quality is known by construction: the evaluation set's labels are what v2
answers (so v2 is right on every row), v3 is v2 with its two labels' words swapped (so it answers the other
label on every row), v1 is another random prompt (on the tiny random model it answers much as v2 does).
The gate refuses v3 (409 gate_failed) and lets v2 take `production`; an 80/20 split with a shadow carries
1,000 requests; a canary that cannot load fails and is rolled back within its window, announced once to
the receiver with a valid signature; feedback on 50 predictions becomes a dataset version that a job
trains on."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from common.contracts import JobStatus, ParityStatus, WebhookEvent
from common.task import Example, TaskSpec
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.serving import actions as serving_actions
from softserve.serving.models import Prediction
from softserve.tenancy.models import AuditEvent, Quota
from tests.datasets.test_datasets_api import upload
from tests.net import free_port, redis_db_url
from tests.serving.helpers import S3_CREDENTIALS, make_artifact, start_worker, stop_worker, stored, worker_env
from tests.workers.conftest import Workers, ended_job, wait_for
from workers.engine.artifacts.artifact import PromptArtifact
from workers.engine.inference.evaluation import evaluate
from workers.engine.inference.predict import LoadedPrompt, predict
from workers.storage import S3Store
from workers.webhook_signing import HEADER_SIGNATURE, HEADER_TIMESTAMP, verify_signature

pytestmark = pytest.mark.django_db(transaction=True)
# This scenario's own Redis database for the serving stream (the other suites flush theirs).
SERVING_REDIS_URL = redis_db_url(7)
PREDICT = "/api/v1/prompts/sentiment:predict"
ALIAS = "/api/v1/prompts/sentiment/aliases/production"
# One-token words whose scores differ from input to input on the tiny model (it answers both labels).
SPEC = TaskSpec(
    "classification",
    "Review: {text}\nSentiment:",
    ["negative", "positive"],
    {"negative": "bad", "positive": "good"},
)
SWAPPED = TaskSpec(SPEC.task_type, SPEC.template, SPEC.labels, {"negative": "good", "positive": "bad"})


def _csv(rows: list[tuple[str, str]], split: list[str] | None = None) -> bytes:
    head = "text,label" + (",split" if split else "")
    lines = [head] + [
        f'"{text}",{label}' + (f",{split[i]}" if split else "") for i, (text, label) in enumerate(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def _texts(count: int, offset: int) -> list[str]:
    """Distinct short review-like texts (no quotes or commas: the CSV stays trivial)."""
    words = ["a", "great", "dull", "film", "plot", "acting", "bad", "fine", "moving", "slow", "funny", "sad"]
    return [
        f"{words[(i + offset) % 12]} {words[(3 * i + offset) % 12]} {words[(7 * i) % 12]} take {i + offset}"
        for i in range(count)
    ]


@pytest.fixture
def pool(s3, s3_endpoint, tiny_model_dirs, tmp_path, settings, workers: Workers):
    """One serving worker on the test's bucket; the platform and the Celery workers send it requests."""
    import redis

    client = redis.Redis.from_url(SERVING_REDIS_URL)
    client.ping()
    client.flushdb()
    model = str(tiny_model_dirs["gpt2"])
    env = worker_env(
        model,
        {
            **S3_CREDENTIALS,
            "S3_ENDPOINT_URL": s3_endpoint,
            "S3_BUCKET": s3.bucket,
            "SERVING_REDIS_URL": SERVING_REDIS_URL,
            "SERVING_METRICS_PORT": str(free_port()),
        },
    )
    worker = start_worker(env, tmp_path / "serving.log")
    settings.SERVING_REDIS_URL = SERVING_REDIS_URL
    settings.SERVING_MODE = "redis"
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = "127.0.0.1"
    settings.WEBHOOK_ALLOW_HTTP = True
    workers.env.update(
        {
            "SERVING_REDIS_URL": SERVING_REDIS_URL,
            "SERVING_MODE": "redis",
            "WEBHOOK_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
            "WEBHOOK_ALLOW_HTTP": "1",
            "WEBHOOK_SWEEP_EVERY_S": "1",
        }
    )
    workers.start()
    yield S3Store(s3.bucket, s3_endpoint, "us-east-1"), model
    stop_worker(worker)
    client.flushdb()


def _publish(team, prompt: TaskPrompt, number: int, artifact: PromptArtifact, store, train_id, fm, dev):
    """A ready version as a tune job leaves it: its artifact stored, its training-time dev score (computed
    by the engine on its training set's dev rows, as the job's final evaluation does)."""
    key = f"tenants/{team.tenant.pk}/prompts/{prompt.pk}/{number}/prompt.safetensors"
    sha = stored(store, key, artifact)
    # At the pool's precision (tests/conftest.py: SERVING_PRECISION=fp32): a job trained at bf16 and
    # served at fp32 differs on this tiny model's near-ties by more than the tolerance, which is exactly
    # what the parity check is there to catch.
    score = evaluate(fm, LoadedPrompt.from_artifact(fm, artifact), dev, detail=True, precision="fp32")
    return PromptVersion.objects.create(
        tenant=team.tenant,
        prompt=prompt,
        number=number,
        method="prompt",
        status="ready",
        artifact_key=key,
        artifact_sha256=sha,
        dataset_version_id=train_id,
        hyperparameters={"seed": 0},
        metrics={"dev": score, "final_eval_rows": len(dev), "dev_rows": len(dev)},
    )


def _wait_evaluated(numbers: list[int], workers: Workers) -> dict[int, PromptVersion]:
    def done():
        versions = {v.number: v for v in PromptVersion.objects.filter(number__in=numbers)}
        settled = all(v.parity not in (ParityStatus.PENDING, ParityStatus.NONE) for v in versions.values())
        return versions if settled and len(versions) == len(numbers) else None

    return wait_for(done, 240, f"the evaluations of versions {numbers}", workers, every=0.5)


def test_promotion_gates_splits_shadow_rollback_webhook_and_feedback(
    acme,
    pool,
    workers,
    receiver,
    tiny_models,
    monkeypatch,
):
    store, model = pool
    fm = tiny_models["gpt2"]
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=1_000_000)  # 1,000 requests a minute
    settings_model = {"base_model": model}

    # The prompt (kept inputs, for feedback datasets) and a hook for every event of the scenario.
    created = acme.client.post(
        "/api/v1/prompts",
        {
            "name": "sentiment",
            "task_type": "classification",
            "template": SPEC.template,
            "labels": SPEC.labels,
            "verbalizer": SPEC.verbalizer,
            **settings_model,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    hook = acme.client.post(
        "/api/v1/webhooks",
        {"url": receiver.url, "events": [WebhookEvent.CANARY_ROLLED_BACK, WebhookEvent.GATE_FAILED]},
        format="json",
    )
    assert hook.status_code == 201, hook.content
    secret = hook.json()["secret"]

    # Training data (with a dev split) and three versions; the evaluation set is labelled by v2's answers.
    train_texts = _texts(60, 0)
    split = ["train"] * 40 + ["dev"] * 20
    train = upload(
        acme.client,
        "reviews",
        "train.csv",
        _csv([(t, ("negative", "positive")[i % 2]) for i, t in enumerate(train_texts)], split),
    )
    assert train.status_code == 201, train.content
    train_id = train.json()["id"]
    dev = [
        Example({"text": t}, ("negative", "positive")[i % 2])
        for i, t in enumerate(train_texts)
        if split[i] == "dev"
    ]
    prompt = TaskPrompt.objects.get(tenant=acme.tenant, name="sentiment")
    artifacts = {
        1: make_artifact(fm, SPEC, length=4, seed=11),
        2: make_artifact(fm, SPEC, length=4, seed=12),
    }
    artifacts[3] = PromptArtifact(
        tensors=artifacts[2].tensors,
        method=artifacts[2].method,
        base_model=artifacts[2].base_model,
        fingerprint=artifacts[2].fingerprint,
        spec=SWAPPED,
    )
    versions = {n: _publish(acme, prompt, n, a, store, train_id, fm, dev) for n, a in artifacts.items()}
    eval_texts = _texts(60, 100)
    gold = [
        out["label"]
        for out in predict(
            fm, LoadedPrompt.from_artifact(fm, artifacts[2]), [{"text": t} for t in eval_texts]
        )
    ]
    held_out = upload(acme.client, "reviews-eval", "eval.csv", _csv(list(zip(eval_texts, gold, strict=True))))
    assert held_out.status_code == 201, held_out.content

    # production starts on v1 (no gate yet), protected as `production` always is.
    first = acme.client.put(ALIAS, {"version": 1}, format="json")
    assert first.status_code == 200, first.content
    assert Alias.objects.get(prompt=prompt, name="production").protected

    # Pinning the evaluation set scores every ready version through the serving pool; parity holds.
    pinned = acme.client.patch(
        "/api/v1/prompts/sentiment", {"eval_dataset_version": held_out.json()["id"]}, format="json"
    )
    assert pinned.status_code == 200, pinned.content
    scored = _wait_evaluated([1, 2, 3], workers)
    for version in scored.values():
        assert version.parity == ParityStatus.PASSED, version.evaluation
        assert version.evaluation["gap_basis"] == "dev_rows"
    accuracy = {n: v.evaluation["metrics"]["accuracy"] for n, v in scored.items()}
    assert accuracy[2] >= 0.95 and accuracy[3] <= 0.05, accuracy

    # The gate: minimum 0.8, at most 1 point of regression, McNemar at 5%.
    policy = {"metric": "accuracy", "min": 0.8, "max_regression": 0.01, "alpha": 0.05}
    gated = acme.client.put(ALIAS, {"version": 1, "policy": policy}, format="json")
    assert gated.status_code == 200, gated.content
    refused = acme.client.put(ALIAS, {"version": 3}, format="json")
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "gate_failed"
    assert error["gate"]["candidate"] == pytest.approx(accuracy[3], abs=1e-4)
    assert error["gate"]["mcnemar"]["p_value"] <= 1.0 and error["gate"]["reasons"]
    assert Alias.objects.get(prompt=prompt, name="production").version.number == 1
    passed = acme.client.put(ALIAS, {"version": 2}, format="json")
    assert passed.status_code == 200, passed.content
    assert Alias.objects.get(prompt=prompt, name="production").version.number == 2

    # An 80/20 split (v2 primary, v4 a copy of v2 that the gate lets in) with v1 as the shadow.
    versions[4] = _publish(acme, prompt, 4, artifacts[2], store, train_id, fm, dev)
    acme.client.post("/api/v1/prompts/sentiment/versions/4/evaluate")
    _wait_evaluated([4], workers)
    moved = acme.client.put(
        ALIAS,
        {"versions": [{"version": 2, "weight": 80}, {"version": 4, "weight": 20}], "shadow": 1},
        format="json",
    )
    assert moved.status_code == 200, moved.content
    reached: Counter[int] = Counter()
    by_key: dict[str, int] = {}
    prediction_ids = []
    for i in range(1000):
        key = f"user-{i}"
        response = acme.client.post(
            PREDICT, {"inputs": [eval_texts[i % len(eval_texts)]], "routing_key": key}, format="json"
        )
        assert response.status_code == 200, response.content
        body = response.json()
        reached[body["version"]] += 1
        by_key[key] = body["version"]
        prediction_ids.append(body["prediction_id"])
    assert set(reached) == {2, 4}
    assert abs(reached[2] / 10 - 80) <= 4 and abs(reached[4] / 10 - 20) <= 4, reached
    for i in range(0, 1000, 10):  # every routing key always reaches its one version
        key = f"user-{i}"
        again = acme.client.post(PREDICT, {"inputs": ["fine"], "routing_key": key}, format="json").json()
        assert again["version"] == by_key[key], key
    # The shadow (v1) scored the same inputs: its agreement with the primary is recorded per prediction.
    logged = Prediction.objects.filter(prompt=prompt, shadow_version=versions[1])
    assert logged.count() >= 1000
    sample = logged.order_by("created_at").first()
    assert sample.shadow_agreement == float(sample.shadow_outputs == sample.outputs)
    traffic = acme.client.get("/api/v1/prompts/sentiment/traffic", {"window_s": 3600}).json()
    shadow = next(v for v in traffic["versions"] if v["version"] == 1)
    assert shadow["shadow"]["requests"] >= 1000 and 0 <= shadow["shadow"]["agreement"] <= 1

    # A canary that cannot load (its stored prompt was lost): an owner overrides the gate to try it, its
    # errors pass the alias's threshold and it is taken out of the split within the window.
    versions[5] = _publish(acme, prompt, 5, artifacts[2], store, train_id, fm, dev)
    PromptVersion.objects.filter(pk=versions[5].pk).update(
        artifact_key=f"{versions[5].artifact_key}.lost", artifact_sha256="0" * 64
    )
    canary_policy = {**policy, "max_error_rate": 0.2, "window_s": 60, "min_requests": 5}
    risky = acme.client.put(
        ALIAS,
        {
            "versions": [{"version": 2, "weight": 50}, {"version": 5, "weight": 50}],
            "shadow": None,
            "policy": canary_policy,
            "override_reason": "trying the canary under the watch of its error-rate limit",
        },
        format="json",
    )
    assert risky.status_code == 200, risky.content
    monkeypatch.setattr(serving_actions, "CANARY_CHECK_EVERY_S", 0.0)  # look after every canary prediction
    started = time.monotonic()
    failures = 0
    for i in range(200):
        response = acme.client.post(PREDICT, {"inputs": ["fine"], "routing_key": f"c-{i}"}, format="json")
        failures += response.status_code != 200
        if not Alias.objects.get(prompt=prompt, name="production").split:
            break
    took = time.monotonic() - started
    alias = Alias.objects.get(prompt=prompt, name="production")
    assert alias.split == [] and alias.version.number == 2, (alias.split, failures)
    assert failures >= 5 and took < canary_policy["window_s"]
    assert AuditEvent.objects.filter(tenant=acme.tenant, action="alias.rollback").count() == 1

    # The receiver got the rollback once, signed with the hook's secret (and the refused gate).
    def announced():
        events = [json.loads(r.body)["event"] for r in receiver.requests]
        return events if WebhookEvent.CANARY_ROLLED_BACK in events else None

    wait_for(announced, 60, "the canary.rolled_back delivery", workers)
    time.sleep(3)  # a few sweeps later: still delivered once
    rollbacks = [
        r for r in receiver.requests if json.loads(r.body)["event"] == WebhookEvent.CANARY_ROLLED_BACK
    ]
    assert len(rollbacks) == 1
    delivered = rollbacks[0]
    assert verify_signature(
        secret, delivered.headers[HEADER_TIMESTAMP], delivered.body, delivered.headers[HEADER_SIGNATURE]
    )
    assert json.loads(delivered.body)["data"]["version"] == 5
    assert any(json.loads(r.body)["event"] == WebhookEvent.GATE_FAILED for r in receiver.requests)

    # Feedback on 50 predictions becomes a dataset version; a job trains on it.
    kept = acme.client.patch("/api/v1/prompts/sentiment", {"keep_inputs": True}, format="json")
    assert kept.status_code == 200, kept.content
    fresh = _texts(50, 500)
    for i, text in enumerate(fresh):
        body = acme.client.post(PREDICT, {"inputs": [text]}, format="json").json()
        truth = ("negative", "positive")[i % 2]
        answer = acme.client.post(
            f"/api/v1/predictions/{body['prediction_id']}/feedback", {"label": truth}, format="json"
        )
        assert answer.status_code == 200, answer.content
    made = acme.client.post("/api/v1/prompts/sentiment/feedback-dataset", {}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["row_count"] == 50
    job = acme.client.post(
        "/api/v1/jobs",
        {
            "kind": "tune",
            "prompt": "sentiment",
            "dataset_version": made.json()["id"],
            "steps": 4,
            "prompt_length": 4,
        },
        format="json",
    )
    assert job.status_code == 201, job.content

    done = wait_for(
        lambda: ended_job(acme, job.json()["id"]), 240, "the job on the feedback dataset", workers
    )
    assert done["status"] == JobStatus.SUCCEEDED, done.get("error")
