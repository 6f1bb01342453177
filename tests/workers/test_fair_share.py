"""Fair share with a real worker: team A queues 10 jobs, then team B one; with one worker process, B's job
is the second to start, not the eleventh (each message only wakes a worker, which claims in fair order).
And the claim is where a team's running limit holds: workers claiming at once never run more than a
team's concurrent_jobs, however many it has queued."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.contracts import JobStatus
from softserve.jobs.models import Job
from softserve.tenancy.models import Quota
from tests.workers.conftest import test_database_url as _database_url
from tests.workers.conftest import wait_for
from tests.workers.test_job_policy import _queued
from tests.workers.test_jobs_e2e import _setup, _start
from workers.jobdb import JobDB, database_url

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_teams_long_queue_does_not_hold_back_another_teams_job(acme, globex, workers, tiny_model_dirs):
    Quota.objects.update_or_create(tenant=acme.tenant, defaults={"concurrent_jobs": 10})
    a_dataset, b_dataset = _setup(acme, tiny_model_dirs, rows=40), _setup(globex, tiny_model_dirs, rows=40)
    a_jobs = [_start(acme, a_dataset, kind="tune", steps=2, seed=k)["id"] for k in range(10)]
    b_job = _start(globex, b_dataset, kind="tune", steps=2)["id"]
    workers.start()
    started = wait_for(lambda: Job.objects.get(pk=b_job).started_at, 240, "team B's job to start", workers)
    before = Job.objects.filter(pk__in=a_jobs, started_at__lt=started).values_list("id", flat=True)
    assert [str(job) for job in before] == a_jobs[:1]  # B's job started second


@pytest.fixture
def jobdb() -> JobDB:
    db = JobDB(database_url({"DATABASE_URL": _database_url()}))
    yield db
    db.engine.dispose()


def test_workers_claiming_at_once_never_run_more_than_a_teams_quota(jobdb, acme, globex):
    """Eight workers claim at the same instant, round after round: a team never runs more than its
    concurrent_jobs, however many it has queued (the API no longer caps queued jobs at that number),
    and every free place is taken (the line holds without starving anyone)."""
    limits = {acme.tenant.pk: 2, globex.tenant.pk: 1}
    for team in (acme, globex):
        Quota.objects.filter(tenant=team.tenant).update(
            concurrent_jobs=limits[team.tenant.pk], queued_jobs=50
        )
    for _ in range(10):
        _queued(acme)
    for _ in range(3):
        _queued(globex)
    claimers = 8
    running = Job.objects.filter(status=JobStatus.RUNNING)
    queued = Job.objects.filter(status=JobStatus.QUEUED)
    with ThreadPoolExecutor(claimers) as pool:
        for round_ in range(5):
            barrier = threading.Barrier(claimers, timeout=30)

            def claim(i: int, barrier=barrier, round_=round_) -> str | None:
                barrier.wait()
                return jobdb.claim_next(f"w{round_}-{i}")

            free = sum(
                min(limit - running.filter(tenant=t).count(), queued.filter(tenant=t).count())
                for t, limit in limits.items()
            )
            claimed = [job for job in pool.map(claim, range(claimers)) if job]
            assert len(claimed) == len(set(claimed)) == free, (round_, claimed)
            for tenant, limit in limits.items():
                assert running.filter(tenant=tenant).count() <= limit, (round_, tenant)
            # One job of each team ends; the next round refills exactly those places.
            for tenant in limits:
                job = running.filter(tenant=tenant).first()
                if job is not None:
                    assert jobdb.finish(str(job.pk), job.worker, JobStatus.SUCCEEDED, {}) == "succeeded"
