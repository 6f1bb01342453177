"""The workers' view of the job tables: reflected from Django's schema, claimed with conditional UPDATEs."""

from __future__ import annotations

import itertools
import time

import pytest
import sqlalchemy as sa
from django.apps import apps

from softserve.jobs.models import Job
from tests.teams import make_dataset_version, make_prompt
from tests.workers.conftest import test_database_url
from workers.jobdb import COLUMNS, JobDB, database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def jobdb() -> JobDB:
    db = JobDB(database_url({"DATABASE_URL": test_database_url()}))
    yield db
    db.engine.dispose()


@pytest.fixture
def job(acme) -> Job:
    """A queued job row as the platform writes it (no message sent: these tests drive the rows)."""
    make_prompt(acme)
    dataset = make_dataset_version(acme.tenant)
    prompt = acme.tenant.taskprompt_set.get(name="sentiment")
    return Job.objects.create(
        tenant=acme.tenant,
        kind="tune",
        spec={"method": "prompt", "steps": 5, "dataset_version": str(dataset.id)},
        prompt_version=prompt.versions.create(tenant=acme.tenant, number=1, method="prompt"),
        dataset_version=dataset,
    )


def test_the_columns_workers_use_exist_in_django_models_and_in_the_database(jobdb):
    """Fails when a migration renames or drops a column the workers write, or the list goes stale."""
    for table, columns in COLUMNS.items():
        model = next(m for m in apps.get_models() if m._meta.db_table == table)
        model_columns = {field.column for field in model._meta.concrete_fields}
        assert set(columns) <= model_columns, (table, set(columns) - model_columns)
        reflected = {column["name"] for column in sa.inspect(jobdb.engine).get_columns(table)}
        assert set(columns) <= reflected, (table, set(columns) - reflected)


def test_a_job_is_claimed_once_taken_over_when_stale_and_written_only_by_its_owner(jobdb, job):
    job_id = str(job.id)
    assert jobdb.claim(job_id, "worker-a", stale_after_s=60)
    assert not jobdb.claim(job_id, "worker-b", stale_after_s=60)  # a second delivery: someone holds it
    assert jobdb.claim(job_id, "worker-a", stale_after_s=60)  # the same worker retrying after a blip
    assert jobdb.heartbeat(job_id, "worker-b", {"step": 1}, []) == (False, False)
    assert jobdb.heartbeat(job_id, "worker-a", {"step": 2}, [{"step": 2, "accuracy": 0.5}]) == (True, False)
    time.sleep(1.2)
    assert jobdb.requeue_stalled(stale_after_s=1) == [(job_id, "tune")]
    assert jobdb.claim(job_id, "worker-b", stale_after_s=1)
    assert not jobdb.finish(job_id, "worker-a", "succeeded")  # the stalled worker woke up: ignored
    assert jobdb.finish(
        job_id,
        "worker-b",
        "failed",
        error="bad data",
        version={"id": str(job.prompt_version_id), "status": "failed"},
    )
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts, job.error) == ("failed", "worker-b", 3, "bad data")
    assert job.metric_history == [{"step": 2, "accuracy": 0.5}]
    assert job.prompt_version.status == "failed"
    assert not jobdb.claim(job_id, "worker-c", stale_after_s=0)  # finished: a late delivery does nothing


def test_unclaimed_queued_jobs_are_resent_once_per_period(jobdb, job):
    time.sleep(1.2)
    assert jobdb.unclaimed(older_than_s=1) == [(str(job.id), "tune")]
    assert jobdb.unclaimed(older_than_s=1) == []  # its clock restarted when it was re-sent
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    time.sleep(1.2)
    assert jobdb.unclaimed(older_than_s=1) == []


def test_database_url_speaks_sqlalchemy():
    assert database_url({"DATABASE_URL": "postgres://u@h:5432/d"}) == "postgresql+psycopg://u@h:5432/d"
    assert database_url({"SOFTSERVE_VAR_DIR": "/v"}) == "sqlite:////v/softserve.sqlite3"


def test_the_metric_history_stays_bounded_and_keeps_evaluations_events_and_the_ends(jobdb, job):
    """A long job's heartbeats add a loss point every few seconds: the row keeps at most
    METRIC_HISTORY_MAX_POINTS step points, thinned evenly, with every dev evaluation and every event."""
    from common.contracts import METRIC_HISTORY_MAX_POINTS as MOST

    job_id = str(job.id)
    assert jobdb.claim(job_id, "worker-a", stale_after_s=60)
    resumed = {"event": "resumed", "step": 0, "attempt": 1}
    assert jobdb.heartbeat(job_id, "worker-a", {"step": 0}, [resumed])[0]
    step = 0
    for _ in range(30):  # 30 beats of 100 points: 3,000 steps, a dev evaluation every 50
        batch = []
        for _ in range(100):
            step += 1
            point = {"step": step, "loss": 1 / step, "tokens_per_s": 100.0}
            batch.append({**point, "accuracy": step / 3000, "n": 8} if step % 50 == 0 else point)
        assert jobdb.heartbeat(job_id, "worker-a", {"step": step}, batch)[0]
    job.refresh_from_db()
    history = job.metric_history
    points = [p for p in history if "event" not in p]
    assert MOST // 2 <= len(points) <= MOST
    assert history[0] == resumed  # events stay
    assert [p["step"] for p in points if "accuracy" in p] == list(range(50, 3001, 50))  # every evaluation
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 3000
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert max(gaps) <= 4 * (3000 / len(points))  # spread over the whole run, not only its end
