"""The workers' view of the job tables: reflected from Django's schema, claimed with conditional UPDATEs."""

from __future__ import annotations

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
