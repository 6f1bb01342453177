"""Jobs over REST: validation, one transaction, the Celery message on a real Redis broker, isolation."""

import base64
import json

import pytest
import redis
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from common.contracts import QUEUE_GPU, TASK_ENSEMBLE, TASK_EVALUATE, TASK_TUNE, JobPolicy
from common.defaults import PROMPT_LENGTH, STEPS, defaults_for
from softserve.jobs.models import Job
from softserve.producer import celery_app
from softserve.prompts.models import PromptVersion
from softserve.tenancy.models import ApiKey, Quota
from tests.net import redis_db_url
from tests.prompts.test_registry_api import ready_version
from tests.teams import bearer, make_dataset_version, make_prompt
from workers.runner import _train_config

pytestmark = pytest.mark.django_db
REDIS_URL = redis_db_url(14)


@pytest.fixture
def broker(settings):
    """Celery's producer pointed at a real Redis database; yields the messages on the gpu queue."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # fails loudly when Redis is down
    client.flushdb()
    settings.CELERY_BROKER_URL = REDIS_URL
    celery_app.cache_clear()

    def messages() -> list[dict]:
        out = []
        for raw in reversed(client.lrange(QUEUE_GPU, 0, -1)):  # kombu pushes left: oldest last
            message = json.loads(raw)
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            out.append({"task": message["headers"]["task"], "args": args, "kwargs": kwargs})
        return out

    yield messages
    client.flushdb()
    celery_app.cache_clear()


@pytest.fixture
def setup(acme):
    make_prompt(acme)
    return make_dataset_version(acme.tenant)


def post_job(team, capture, **body):
    with capture(execute=True):
        return team.client.post("/api/v1/jobs", body, format="json")


def test_tune_job_writes_job_and_version_then_sends_the_task(
    acme, setup, broker, django_capture_on_commit_callbacks
):
    response = post_job(
        acme,
        django_capture_on_commit_callbacks,
        kind="tune",
        prompt="sentiment",
        dataset_version=str(setup.id),
        steps=50,
        prompt_length=10,
    )
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["status"] == "queued" and job["version"] == 1 and job["spec"]["prompt_length"] == 10
    version = PromptVersion.objects.get(prompt__name="sentiment", number=1)
    assert version.status == "pending" and version.hyperparameters["steps"] == 50
    assert broker() == [{"task": TASK_TUNE, "args": [], "kwargs": {"job_id": job["id"]}}]
    assert acme.client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "queued"


def test_nothing_is_sent_when_the_transaction_rolls_back(
    acme, setup, broker, django_capture_on_commit_callbacks
):
    from softserve.jobs.actions import create_job
    from softserve.prompts.models import TaskPrompt
    from softserve.tenancy.permissions import Actor

    actor = Actor(tenant=acme.tenant, role="owner")
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        create_job(actor, "tune", TaskPrompt.objects.get(name="sentiment"), {"method": "prompt"}, setup)
        raise RuntimeError("boom")
    assert callbacks == [] and broker() == [] and not Job.objects.exists()


def test_ensemble_and_evaluate_jobs(acme, setup, broker, django_capture_on_commit_callbacks):
    ensemble = post_job(
        acme,
        django_capture_on_commit_callbacks,
        kind="ensemble",
        prompt="sentiment",
        dataset_version=str(setup.id),
    ).json()
    assert ensemble["spec"]["members"] == 5
    assert PromptVersion.objects.get(number=ensemble["version"]).ensemble_size == 5
    ready_version(acme.tenant, "sentiment", 2)
    other = make_dataset_version(acme.tenant, name="movies")
    evaluate = post_job(
        acme,
        django_capture_on_commit_callbacks,
        kind="evaluate",
        prompt="sentiment",
        dataset_version=str(other.id),
        version=2,
    )
    assert evaluate.status_code == 201, evaluate.content
    assert evaluate.json()["version"] == 2 and PromptVersion.objects.count() == 2
    assert [m["task"] for m in broker()] == [TASK_ENSEMBLE, TASK_EVALUATE]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"prompt": "nope"}, "prompt"),
        ({"dataset_version": "00000000-0000-0000-0000-000000000000"}, "dataset_version"),
        ({"kind": "finetune"}, "kind"),
        ({"prompt_length": 151}, "prompt_length"),
        ({"prompt_length": 0}, "prompt_length"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"steps": 0}, "steps"),
        ({"method": "lora"}, "method"),
        ({"init": "zeros"}, "init"),
        ({"members": 3}, "members"),
        ({"version": 1}, "version"),
        ({"kind": "evaluate"}, "version"),
        ({"kind": "evaluate", "version": 7}, "version"),
        ({"kind": "ensemble", "members": 1}, "members"),
    ],
)
def test_bad_job_requests_get_field_errors(acme, setup, broker, overrides, field):
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(setup.id), **overrides}
    response = acme.client.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"], response.content
    assert not Job.objects.exists() and not PromptVersion.objects.exists() and broker() == []


@pytest.mark.parametrize(
    "dataset, message",
    [
        ({"task_type": "generation", "labels": ()}, "is generation"),
        ({"labels": ("negative", "positive", "neutral")}, "lacks"),
        (
            {"columns": {"text_a": "a", "text_b": "b"}},
            "needs fields ['text']: {text} is not a column of other v1",
        ),
    ],
)
def test_dataset_must_fit_the_prompt(acme, setup, dataset, message):
    mismatched = make_dataset_version(acme.tenant, name="other", **dataset)
    response = acme.client.post(
        "/api/v1/jobs",
        {"kind": "tune", "prompt": "sentiment", "dataset_version": str(mismatched.id)},
        format="json",
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["fields"]["dataset_version"][0]


def test_foreign_dataset_version_reads_as_missing(acme, globex, setup):
    theirs = make_dataset_version(globex.tenant)
    response = acme.client.post(
        "/api/v1/jobs",
        {"kind": "tune", "prompt": "sentiment", "dataset_version": str(theirs.id)},
        format="json",
    )
    assert response.json()["error"]["fields"]["dataset_version"] == ["No such dataset version."]


def test_a_team_queues_past_its_running_quota_up_to_its_queue_quota(
    acme, setup, broker, django_capture_on_commit_callbacks
):
    # Two may run at once; five (the queue quota) may wait: the running limit is kept at the claim.
    Quota.objects.filter(tenant=acme.tenant).update(concurrent_jobs=2, queued_jobs=5)
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(setup.id)}
    for _ in range(5):
        response = post_job(acme, django_capture_on_commit_callbacks, **body)
        assert response.status_code == 201, response.content
    sixth = post_job(acme, django_capture_on_commit_callbacks, **body)
    assert sixth.status_code == 429, sixth.content
    message = sixth.json()["error"]["message"]
    assert "may have 5 jobs queued" in message and "5 are queued now" in message, message
    assert "up to 2 run at once" in message, message
    assert Job.objects.filter(status="queued").count() == 5 and len(broker()) == 5
    # A job that starts leaves the queue: its place is free again, though two already run.
    Job.objects.filter(pk__in=Job.objects.order_by("created_at").values("pk")[:2]).update(status="running")
    for _ in range(2):
        assert post_job(acme, django_capture_on_commit_callbacks, **body).status_code == 201
    assert post_job(acme, django_capture_on_commit_callbacks, **body).status_code == 429


def test_the_queue_quota_defaults_larger_than_the_running_one(acme):
    quota = Quota.objects.get(tenant=acme.tenant)
    assert quota.queued_jobs == 20 and quota.queued_jobs > quota.concurrent_jobs


def test_cancel_and_retry(acme, setup, broker, django_capture_on_commit_callbacks):
    job = post_job(
        acme,
        django_capture_on_commit_callbacks,
        kind="tune",
        prompt="sentiment",
        dataset_version=str(setup.id),
    ).json()
    cancelled = acme.client.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_requested"] is True
    assert PromptVersion.objects.get(number=1).status == "cancelled"
    assert acme.client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        retried = acme.client.post(f"/api/v1/jobs/{job['id']}/retry")
    assert retried.json()["status"] == "queued" and PromptVersion.objects.get(number=1).status == "pending"
    assert [m["kwargs"]["job_id"] for m in broker()] == [job["id"], job["id"]]
    running = Job.objects.get(pk=job["id"])
    # A running job with a live worker (its heartbeat is fresh) gets a flag its worker reads.
    Job.objects.filter(pk=running.pk).update(status="running", heartbeat_at=timezone.now())
    flagged = acme.client.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert flagged["status"] == "running" and flagged["cancel_requested"] is True


def test_another_tenant_sees_no_job(acme, globex, setup, broker, django_capture_on_commit_callbacks):
    job = post_job(
        acme,
        django_capture_on_commit_callbacks,
        kind="tune",
        prompt="sentiment",
        dataset_version=str(setup.id),
    ).json()
    for method, path in [
        ("get", f"/api/v1/jobs/{job['id']}"),
        ("post", f"/api/v1/jobs/{job['id']}/cancel"),
        ("post", f"/api/v1/jobs/{job['id']}/retry"),
    ]:
        assert getattr(globex.client, method)(path).status_code == 404, path
    assert globex.client.get("/api/v1/jobs").json()["results"] == []
    _, viewer = ApiKey.mint(acme.tenant, "v", ["read", "write"], role="viewer", created_by=acme.owner)
    assert bearer(viewer).post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 403
    for client in (APIClient(), bearer("ss_deadbeef0000_nope")):
        assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 401
        assert client.get("/api/v1/jobs").status_code == 401
    assert Job.objects.get(pk=job["id"]).status == "queued"


def test_every_training_job_has_a_time_budget_within_the_maximum(
    acme, setup, broker, settings, django_capture_on_commit_callbacks
):
    settings.SOFTSERVE_JOB_POLICY = JobPolicy(job_default_minutes=30, job_max_minutes=90)
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(setup.id)}
    response = post_job(acme, django_capture_on_commit_callbacks, **body)
    assert response.status_code == 201 and response.json()["spec"]["max_minutes"] == 30  # the default
    response = post_job(acme, django_capture_on_commit_callbacks, **body, max_minutes=90)
    assert response.status_code == 201 and response.json()["spec"]["max_minutes"] == 90
    response = post_job(acme, django_capture_on_commit_callbacks, **body, max_minutes=91)
    error = response.json()["error"]
    assert response.status_code == 400 and "90 minutes" in error["fields"]["max_minutes"][0], error
    assert Job.objects.count() == 2 and len(broker()) == 2  # nothing written or sent for the refused one


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "tune"}, ("prompt", "adamw", 3e-2, "labels", 30)),
        ({"kind": "tune", "method": "prefix"}, ("prefix", "adamw", 5e-4, "vocab", 15)),
        ({"kind": "tune", "method": "ptuning"}, ("ptuning", "adamw", 3e-3, "labels", 20)),
        ({"kind": "ensemble"}, ("prompt", "adamw", 3e-2, "labels", 120)),
    ],
)
def test_a_job_that_names_no_settings_records_its_methods_defaults(
    acme, setup, broker, django_capture_on_commit_callbacks, body, expected
):
    """The spec (and the version's hyper-parameters) says what the job trains with, from defaults.py."""
    response = post_job(
        acme, django_capture_on_commit_callbacks, prompt="sentiment", dataset_version=str(setup.id), **body
    )
    assert response.status_code == 201, response.content
    spec = response.json()["spec"]
    keys = ("method", "optimizer", "learning_rate", "init", "max_minutes")
    assert tuple(spec[k] for k in keys) == expected
    assert (spec["prompt_length"], spec["steps"]) == (PROMPT_LENGTH, STEPS)
    assert PromptVersion.objects.get(prompt__name="sentiment").hyperparameters["optimizer"] == "adamw"


def test_settings_a_job_names_replace_the_defaults(acme, setup, broker, django_capture_on_commit_callbacks):
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(setup.id)}
    chosen = {"optimizer": "adafactor", "learning_rate": 0.3, "init": "vocab", "max_minutes": 5}
    response = post_job(acme, django_capture_on_commit_callbacks, **body, **chosen)
    assert response.status_code == 201, response.content
    assert {k: response.json()["spec"][k] for k in chosen} == chosen
    response = post_job(acme, django_capture_on_commit_callbacks, **body, optimizer="sgd")
    assert response.status_code == 400 and "optimizer" in response.json()["error"]["fields"]


@pytest.mark.parametrize("kind", ["tune", "ensemble"])
@pytest.mark.parametrize("method", ["prompt", "ptuning", "prefix"])
def test_a_generation_job_with_no_settings_takes_defaults_that_fit_it(
    acme, broker, django_capture_on_commit_callbacks, kind, method
):
    make_prompt(acme, name="qa", task_type="generation", labels=[], verbalizer={}, template="Q: {text}\nA:")
    dataset = make_dataset_version(acme.tenant, name="qa", task_type="generation", labels=())
    body = {"kind": kind, "prompt": "qa", "dataset_version": str(dataset.id)}
    if method != "prompt":
        body["method"] = method
    response = post_job(acme, django_capture_on_commit_callbacks, **body)
    assert response.status_code == 201, response.content
    assert response.json()["spec"]["init"] == "vocab"
    # The spec as stored is what the worker reads: it trains from vocab, not from label words it lacks.
    job = Job.objects.get(pk=response.json()["id"])
    assert job.spec["init"] == "vocab" and len(broker()) == 1
    config = _train_config(job.spec, job.kind, job.spec["max_minutes"])
    assert config.effective_init == "vocab"
    assert config.effective_optimizer == defaults_for(method, ensemble=kind == "ensemble").optimizer


def test_a_generation_prompt_is_refused_the_labels_init_it_names(
    acme, broker, django_capture_on_commit_callbacks
):
    make_prompt(acme, name="qa", task_type="generation", labels=[], verbalizer={}, template="Q: {text}\nA:")
    dataset = make_dataset_version(acme.tenant, name="qa", task_type="generation", labels=())
    body = {"kind": "tune", "prompt": "qa", "dataset_version": str(dataset.id)}
    response = post_job(acme, django_capture_on_commit_callbacks, **body, init="labels")
    assert response.status_code == 400
    message = response.json()["error"]["fields"]["init"][0]
    assert "needs a classification prompt" in message and "random, vocab, text" in message, message
    assert not Job.objects.exists() and broker() == []


def test_the_schema_shows_each_default_with_its_reason_and_best_step(acme):
    from common.defaults import DEFAULTS

    schema = acme.client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    request = next(s for n, s in schema["components"]["schemas"].items() if n.startswith("JobCreate"))
    props = request["properties"]
    for method, d in DEFAULTS.items():
        assert d.reason in props["method"]["description"], method
        assert f"{method} {d.max_minutes:g}" in props["max_minutes"]["description"]
    assert "prefix vocab" in props["init"]["description"]
    assert "prompt 3e-2" in props["learning_rate"]["description"]
    ref = json.dumps(props["optimizer"]).split('"#/components/schemas/')[1].split('"')[0]
    assert set(schema["components"]["schemas"][ref]["enum"]) == {"adamw", "adafactor"}
    version = schema["components"]["schemas"]["PromptVersion"]["properties"]
    assert "best metric on the job's dev split" in version["best_step"]["description"]
