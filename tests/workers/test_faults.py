"""Reliability: the worker is SIGKILLed mid-job again and again; every job still finishes, once,
resumed from its last checkpoint rather than from step 0."""

from __future__ import annotations

import statistics

import pytest

from softserve.jobs.models import Job
from softserve.prompts.models import PromptVersion
from softserve.tenancy.models import Quota
from tests.workers.conftest import ended_job, wait_for
from tests.workers.test_jobs_e2e import _setup, _start

pytestmark = pytest.mark.django_db(transaction=True)
KILLS = 5


def _mid_job(team, job_ids: list[str], killed_attempt: dict[str, int]):
    """A job running in an attempt not yet killed that has written a checkpoint since it began
    (a killed attempt's row still says running until the reconciler notices)."""
    for job_id in job_ids:
        response = team.client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.content
        job = response.json()
        progress, fresh = job["progress"], job["attempts"] > killed_attempt.get(job_id, 0)
        checkpointed = progress.get("checkpoint_step", 0) > progress.get("resumed_from", 0)
        if job["status"] == "running" and fresh and checkpointed:
            return job
    return None


def test_jobs_survive_repeated_sigkill_of_their_worker(acme, workers, tiny_model_dirs):
    # The test polls fast to catch a job between checkpoints; lift the tenant's request rate limit.
    Quota.objects.update_or_create(tenant=acme.tenant, defaults={"requests_per_minute": 100_000})
    dataset = _setup(acme, tiny_model_dirs, rows=80)
    job_ids = [_start(acme, dataset, kind="tune", steps=300, seed=k)["id"] for k in range(2)]
    proc = workers.start()
    killed_at, killed_attempt = [], {}
    while workers.kills < KILLS:
        victim = wait_for(
            lambda: _mid_job(acme, job_ids, killed_attempt),
            180,
            "a job past a checkpoint",
            workers,
            every=0.05,
        )
        workers.kill(proc)
        killed_at.append(victim["progress"]["step"])
        killed_attempt[victim["id"]] = victim["attempts"]
        proc = workers.start()
    finished = [wait_for(lambda j=j: ended_job(acme, j), 300, f"job {j}", workers) for j in job_ids]

    assert [job["status"] for job in finished] == ["succeeded"] * len(job_ids), [j["error"] for j in finished]
    resumes = [e for job in finished for e in job["metric_history"] if e.get("event") == "resumed"]
    summary = [
        (j["attempts"], j["progress"], [e for e in j["metric_history"] if "event" in e]) for j in finished
    ]
    assert len(resumes) >= KILLS, (killed_at, summary, workers.logs())
    assert all(e["step"] > 0 and e["step"] % 5 == 0 for e in resumes), resumes
    for job in finished:
        versions = PromptVersion.objects.filter(pk=Job.objects.get(pk=job["id"]).prompt_version_id)
        assert [v.status for v in versions] == ["ready"] and versions[0].artifact_sha256
        assert job["progress"]["step"] == 300
    ready = PromptVersion.objects.filter(prompt__name="sentiment", status="ready").count()
    assert ready == len(job_ids)  # exactly one ready version per job, none doubled by a re-run
    print(
        f"\nfaults: jobs run {len(job_ids)}, kills survived {workers.kills}, jobs lost 0, "
        f"killed at steps {killed_at}, resumed at steps {[e['step'] for e in resumes]} "
        f"(mean resume point {statistics.mean(e['step'] for e in resumes):.1f} of 300), "
        f"attempts {[job['attempts'] for job in finished]}"
    )
