"""Fair share with a real worker: team A queues 10 jobs, then team B one; with one worker process, B's job
is the second to start, not the eleventh (each message only wakes a worker, which claims in fair order)."""

from __future__ import annotations

import pytest
from softserve.jobs.models import Job
from softserve.tenancy.models import Quota

from tests.workers.conftest import wait_for
from tests.workers.test_jobs_e2e import _setup, _start

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
