"""Evaluation sets on the workers: a ready version scored through the serving pool (embedded in-process,
and a real `python -m workers.serving` process over Redis), its train/serve parity, and the whole path from
a tune job on a real Celery worker. Real Postgres (committed rows: the workers read them over their own
connection), the S3 server and the tiny GPT-2."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis

from common.contracts import ParityStatus
from common.defaults import DEFAULT_PRECISION
from common.task import Example, TaskSpec
from softserve.prompts import actions
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.datasets.test_datasets_api import sst2_head, upload
from tests.net import redis_db_url
from tests.serving.helpers import make_artifact, start_worker, stop_worker, stored, worker_env
from tests.teams import make_prompt
from tests.workers.conftest import test_database_url as database_of_tests
from tests.workers.conftest import wait_for
from workers import evalset, runner
from workers.config import WorkerConfig
from workers.engine.base_model import load_base_model
from workers.engine.inference.evaluation import evaluate
from workers.engine.inference.predict import LoadedPrompt, predict
from workers.jobdb import JobDB, database_url
from workers.serving import local
from workers.storage import S3Store, default_store

pytestmark = pytest.mark.django_db(transaction=True)
# Redis databases of these tests alone (the serving and jobs tests flush theirs): the serving stream, and
# the Celery broker of the end-to-end test.
SERVING_REDIS_URL = redis_db_url(9)
BROKER_URL = redis_db_url(8)

TEMPLATE = "Review: {text}\nSentiment:"
SPEC = TaskSpec("classification", TEMPLATE, ["negative", "positive"], {})


@pytest.fixture
def jobdb() -> JobDB:
    db = JobDB(database_url({"DATABASE_URL": database_of_tests()}))
    yield db
    db.engine.dispose()


@pytest.fixture
def store(s3, s3_endpoint, monkeypatch) -> S3Store:
    """The workers' store on the test's bucket; this process's default store too (the embedded pool's
    prompt cache reads artifacts through it)."""
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("S3_BUCKET", s3.bucket)
    default_store.cache_clear()
    yield S3Store(s3.bucket, s3_endpoint, "us-east-1")
    local.close_pools()
    default_store.cache_clear()


@pytest.fixture
def broker(settings):
    """tests/workers/conftest.py's broker fixture, on this module's own Redis database."""
    from softserve.producer import celery_app

    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    settings.CELERY_BROKER_URL = BROKER_URL
    celery_app.cache_clear()
    yield client
    client.flushdb()
    celery_app.cache_clear()


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Pinning sends evaluation tasks; these tests run the evaluation themselves."""
    monkeypatch.setattr(actions, "send", lambda *a, **kw: None)


def _rows(s3, dataset_id: str, split: str | None = None) -> list[Example]:
    from softserve.datasets.models import DatasetVersion

    key = DatasetVersion.objects.get(pk=dataset_id).storage_key
    lines = s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read().decode().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [Example({"text": r["text"]}, r["label"]) for r in rows if split is None or r["split"] == split]


def _published(acme, s3, store, tiny_model_dirs, settings) -> tuple[PromptVersion, list[Example]]:
    """A prompt pinning an evaluation set, and a ready version (a random prompt: parity does not care what
    was learned) whose training-time dev score the engine computed on its dataset's dev rows, as a tune
    job's final evaluation does. Returns the version and the evaluation set's rows."""
    model = str(tiny_model_dirs["gpt2"])
    settings.SOFTSERVE_BASE_MODELS = [model, *settings.SOFTSERVE_BASE_MODELS]
    make_prompt(acme, base_model=model, template=TEMPLATE)
    lines = sst2_head(140).splitlines(keepends=True)
    train = upload(acme.client, "sst2-train", "train.csv", b"".join(lines[:101])).json()["id"]
    held_out = upload(acme.client, "sst2-eval", "eval.csv", lines[0] + b"".join(lines[101:141])).json()["id"]
    assert (
        acme.client.patch(
            "/api/v1/prompts/sentiment", {"eval_dataset_version": held_out}, format="json"
        ).status_code
        == 200
    )
    fm = load_base_model(model)
    artifact = make_artifact(fm, SPEC, length=4)
    prompt = TaskPrompt.objects.get(tenant=acme.tenant, name="sentiment")
    key = f"tenants/{acme.tenant.pk}/prompts/{prompt.pk}/1/prompt.safetensors"
    sha = stored(store, key, artifact)
    dev = _rows(s3, train, "dev")
    dev_score = evaluate(
        fm, LoadedPrompt.from_artifact(fm, artifact), dev, detail=True, precision=DEFAULT_PRECISION
    )
    version = PromptVersion.objects.create(
        tenant=acme.tenant,
        prompt=prompt,
        number=1,
        method="prompt",
        status="ready",
        artifact_key=key,
        artifact_sha256=sha,
        dataset_version_id=train,
        hyperparameters={"seed": 0},
        metrics={"dev": dev_score, "final_eval_rows": len(dev), "dev_rows": len(dev)},
    )
    eval_rows = _rows(s3, held_out)
    engine = predict(fm, LoadedPrompt.from_artifact(fm, artifact), [ex.fields for ex in eval_rows])
    version.engine_labels = [out["label"] for out in engine]
    return version, eval_rows


def _check_passed(version: PromptVersion, eval_rows: list[Example]) -> None:
    version.refresh_from_db()
    evaluation = version.evaluation
    assert version.parity == ParityStatus.PASSED, evaluation
    assert evaluation["rows"] == len(eval_rows) == 40
    assert evaluation["gold"] == [ex.target for ex in eval_rows]
    assert len(evaluation["predictions"]) == 40
    assert set(evaluation["metrics"]) >= {"accuracy", "macro_f1", "per_label"}
    assert set(evaluation["metrics"]["per_label"]["positive"]) == {"precision", "recall", "f1", "support"}
    assert evaluation["gap_basis"] == "dev_rows" and evaluation["gap"] <= evaluation["tolerance"]
    assert evaluation["serving_dev_metrics"]["n"] == version.metrics["dev"]["n"]
    assert evaluation["dev_metrics"]["accuracy"] == version.metrics["dev"]["accuracy"]
    assert evaluation["evaluated_at"]


def test_a_ready_version_is_scored_through_the_embedded_pool_and_a_tampered_dev_score_fails_parity(
    acme, s3, store, tiny_model_dirs, settings, jobdb
):
    version, eval_rows = _published(acme, s3, store, tiny_model_dirs, settings)
    config = WorkerConfig(serving_mode="embedded", serving_max_inputs=16)  # 40 rows: 3 requests
    assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.PASSED
    _check_passed(version, eval_rows)
    # The pool answers what the engine alone answers for the same prompt and rows.
    agree = sum(p == e for p, e in zip(version.evaluation["predictions"], version.engine_labels, strict=True))
    assert agree >= 39, (version.evaluation["predictions"], version.engine_labels)
    pairs = zip(version.evaluation["predictions"], version.evaluation["gold"], strict=True)
    assert version.evaluation["metrics"]["accuracy"] == round(sum(p == g for p, g in pairs) / 40, 4)

    # Training said 0.3 better than what the pool serves on the same rows: parity fails, with the gap.
    dev = dict(version.metrics["dev"])
    dev["accuracy"] = round(dev["accuracy"] + (0.3 if dev["accuracy"] <= 0.7 else -0.3), 4)
    PromptVersion.objects.filter(pk=version.pk).update(metrics={**version.metrics, "dev": dev})
    assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.FAILED
    version.refresh_from_db()
    assert version.parity == ParityStatus.FAILED and version.evaluation["gap"] == pytest.approx(0.3, abs=0.01)
    shown = acme.client.get("/api/v1/prompts/sentiment/versions").json()["results"][0]
    assert shown["parity"] == "parity_failed" and shown["evaluation"]["gap"] == version.evaluation["gap"]

    # The evaluation set's rows gone from storage: an error that says so, never a silent pass.
    from softserve.datasets.models import DatasetVersion

    held_out = DatasetVersion.objects.get(pk=version.evaluation["dataset_version"])
    s3.delete_object(Bucket=s3.bucket, Key=held_out.storage_key)
    assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.ERROR
    version.refresh_from_db()
    assert "stored rows are missing" in version.evaluation["error"]

    # Unpinned while queued: nothing to score it on; a pending version goes back to none.
    PromptVersion.objects.filter(pk=version.pk).update(parity=ParityStatus.PENDING)
    TaskPrompt.objects.filter(pk=version.prompt_id).update(eval_dataset_version=None)
    assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.NONE
    version.refresh_from_db()
    assert version.parity == ParityStatus.NONE


def test_in_redis_mode_the_rows_go_through_a_real_serving_worker(
    acme, s3, s3_endpoint, store, tiny_model_dirs, settings, jobdb, tmp_path, monkeypatch
):
    client = redis.Redis.from_url(SERVING_REDIS_URL)
    stream = f"softserve:serve:{tiny_model_dirs['gpt2']}"
    client.delete(stream)
    version, eval_rows = _published(acme, s3, store, tiny_model_dirs, settings)
    env = worker_env(
        tiny_model_dirs["gpt2"],
        {
            "S3_ENDPOINT_URL": s3_endpoint,
            "S3_BUCKET": s3.bucket,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "SERVING_REDIS_URL": SERVING_REDIS_URL,
        },
    )
    proc = start_worker(env, tmp_path / "serving.log")
    try:
        monkeypatch.setenv("SERVING_REDIS_URL", SERVING_REDIS_URL)
        config = WorkerConfig(serving_mode="redis", serving_max_inputs=8)
        assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.PASSED
        _check_passed(version, eval_rows)
        consumer = (tmp_path / "serving.log").read_text()
        assert "serving worker ready" in consumer
        # Every request was answered and acknowledged: nothing left on the model's stream.
        assert client.xlen(stream) == 0
    finally:
        stop_worker(proc)
        client.delete(stream)

    # No pool answering: the evaluation ends in an error that says so (a short deadline here).
    config = WorkerConfig(serving_mode="redis", serving_timeout_ms=500)
    assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.ERROR
    version.refresh_from_db()
    assert "did not answer" in version.evaluation["error"]
    client.delete(stream)


def test_a_tune_job_on_a_prompt_with_an_evaluation_set_ends_scored_and_passed(
    acme, workers, s3, tiny_model_dirs
):
    """The runner marks the version ready with parity pending and queues the evaluation; the same Celery
    worker (queue default) scores it through its embedded pool."""
    make_prompt(acme, base_model=str(tiny_model_dirs["gpt2"]))
    lines = sst2_head(160).splitlines(keepends=True)
    train = upload(acme.client, "sst2", "train.csv", b"".join(lines[:121])).json()["id"]
    held_out = upload(acme.client, "sst2-eval", "eval.csv", lines[0] + b"".join(lines[121:161])).json()["id"]
    assert (
        acme.client.patch(
            "/api/v1/prompts/sentiment", {"eval_dataset_version": held_out}, format="json"
        ).status_code
        == 200
    )
    workers.env.update(SERVING_MODE="embedded", CELERY_BROKER_URL=BROKER_URL)
    workers.start()
    body = {
        "kind": "tune",
        "prompt": "sentiment",
        "dataset_version": train,
        "prompt_length": 4,
        "batch_size": 4,
    }
    job = acme.client.post("/api/v1/jobs", {**body, "steps": 8}, format="json")
    assert job.status_code == 201, job.content

    def scored():
        versions = acme.client.get("/api/v1/prompts/sentiment/versions").json()["results"]
        return versions[0] if versions and versions[0]["parity"] not in ("none", "pending") else None

    shown = wait_for(scored, 240, "the version's evaluation", workers)
    assert shown["status"] == "ready" and shown["parity"] == "passed", shown["evaluation"]
    detail = acme.client.get("/api/v1/prompts/sentiment/versions/1").json()["evaluation"]
    assert detail["dataset_version"] == held_out and detail["rows"] == 40 and len(detail["predictions"]) == 40
    assert detail["gap_basis"] == "dev_rows" and detail["gap"] <= detail["tolerance"]
    assert detail["dev_metrics"]["accuracy"] == shown["metrics"]["dev"]["accuracy"]


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_a_generation_version_is_scored_by_exact_match(acme, s3, store, tiny_model_dirs, settings, jobdb):
    model = str(tiny_model_dirs["gpt2"])
    settings.SOFTSERVE_BASE_MODELS = [model, *settings.SOFTSERVE_BASE_MODELS]
    template = "Number: {text}\nWords:"
    make_prompt(
        acme, "numbers", task_type="generation", labels=[], verbalizer={}, template=template, base_model=model
    )

    def rows(numbers) -> bytes:
        lines = "".join(f"{n},{' '.join(DIGITS[int(d)] for d in str(n))}\n" for n in numbers)
        return ("text,label\n" + lines).encode()

    train = upload(acme.client, "numbers", "n.csv", rows(range(40))).json()["id"]
    held_out = upload(acme.client, "numbers-eval", "e.csv", rows(range(100, 120))).json()["id"]
    pinned = acme.client.patch("/api/v1/prompts/numbers", {"eval_dataset_version": held_out}, format="json")
    assert pinned.status_code == 200, pinned.content
    fm = load_base_model(model)
    spec = TaskSpec("generation", template)
    artifact = make_artifact(fm, spec, length=4)
    prompt = TaskPrompt.objects.get(tenant=acme.tenant, name="numbers")
    key = f"tenants/{acme.tenant.pk}/prompts/{prompt.pk}/1/prompt.safetensors"
    sha = stored(store, key, artifact)
    dev = _rows(s3, train, "dev")
    dev_score = evaluate(fm, LoadedPrompt.from_artifact(fm, artifact), dev, precision=DEFAULT_PRECISION)
    version = PromptVersion.objects.create(
        tenant=acme.tenant,
        prompt=prompt,
        number=1,
        method="prompt",
        status="ready",
        artifact_key=key,
        artifact_sha256=sha,
        dataset_version_id=train,
        metrics={"dev": dev_score, "final_eval_rows": len(dev), "dev_rows": len(dev)},
    )
    config = WorkerConfig(serving_mode="embedded")
    assert evalset.evaluate_version(jobdb, store, str(version.pk), config) == ParityStatus.PASSED
    version.refresh_from_db()
    evaluation = version.evaluation
    assert set(evaluation["metrics"]) == {"exact_match", "n"} and evaluation["rows"] == 20
    assert evaluation["gold"][0] == "one zero zero"
    assert all(isinstance(p, str) for p in evaluation["predictions"])
    assert evaluation["serving_dev_metrics"]["exact_match"] == dev_score["exact_match"]


def test_the_reconciler_resends_an_evaluation_pending_too_long(acme, jobdb):
    """A message lost on the way (or never sent) leaves a version pending: re-sent once it has waited
    longer than the unclaimed-job period, and its clock restarts."""
    make_prompt(acme)
    prompt = TaskPrompt.objects.get(tenant=acme.tenant, name="sentiment")

    def pending(number: int, evaluation: dict) -> PromptVersion:
        return PromptVersion.objects.create(
            tenant=acme.tenant,
            prompt=prompt,
            number=number,
            method="prompt",
            status="ready",
            artifact_key=f"k/{number}",
            parity=ParityStatus.PENDING,
            evaluation=evaluation,
        )

    lost = pending(1, {"queued_at": "2026-01-01T00:00:00+00:00", "metrics": {"accuracy": 0.5}})
    pending(2, {"queued_at": datetime.now(UTC).isoformat()})  # just queued: its message is on the way
    unknown = pending(3, {})  # pending with no time (written before queued_at was): re-sent
    sent: list[str] = []
    result = runner.reconcile(jobdb, lambda *a: None, 60, WorkerConfig(), send_evaluation=sent.append)
    assert sorted(result["evaluations"]) == sorted(sent) == sorted([str(lost.pk), str(unknown.pk)])
    lost.refresh_from_db()
    assert lost.evaluation["metrics"] == {"accuracy": 0.5}  # the last result stays beside it
    restarted = datetime.fromisoformat(lost.evaluation["queued_at"])
    assert (datetime.now(UTC) - restarted).total_seconds() < 60
    assert (
        runner.reconcile(jobdb, lambda *a: None, 60, WorkerConfig(), send_evaluation=sent.append)[
            "evaluations"
        ]
        == []
    )
