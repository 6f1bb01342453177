"""Tuning workers SIGKILLed again and again while several jobs train, with a poison job in the mix.

Real `celery worker -B` processes (two at once) on the Redis broker, PostgreSQL and the S3 server, the
tiny GPT-2. The test kills a worker's whole process group while it holds a job past a fresh checkpoint,
then starts another. Every job must finish once (lost 0, duplicate versions 0), resumed from its last
checkpoint. The poison job (its seed is SOFTSERVE_TEST_CRASH_SEED, so the worker process running it
SIGKILLs itself at its first step, as a native crash would) must end failed after the attempt cap with a
readable reason, while the others finish.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from softserve.jobs.models import Job
from softserve.prompts.models import PromptVersion
from softserve.tenancy.models import Quota
from tests.reliability.figures import record_figures, scaled
from tests.workers import conftest as worker_env
from tests.workers.conftest import ended_job, wait_for
from tests.workers.test_jobs_e2e import _setup, _start

# The real Celery workers of tests/workers (a fixture needs its module-level name to be found here).
broker, workers = worker_env.broker, worker_env.workers

pytestmark = pytest.mark.django_db(transaction=True)
JOBS = scaled(2, 5)
KILLS = scaled(4, 20)
STEPS = scaled(40, 300)  # a kill lands after a checkpoint (every 5 steps); fewer steps keep CI short
WORKERS = 2
MAX_ATTEMPTS = 3
POISON_SEED = 666_666


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _victim(job_ids: list[str], killed_attempt: dict[str, int]) -> Job | None:
    """A job running in an attempt not yet killed that has written a checkpoint since it began."""
    for job in Job.objects.filter(pk__in=job_ids, status="running"):
        progress = job.progress or {}
        fresh = job.attempts > killed_attempt.get(str(job.id), 0)
        if fresh and progress.get("checkpoint_step", 0) > progress.get("resumed_from", 0):
            return job
    return None


def test_jobs_survive_sigkills_and_a_poison_job_fails_after_the_attempt_cap(
    acme, globex, workers, tiny_model_dirs
):
    started = time.monotonic()
    workers.env = {
        **workers.env,
        "SOFTSERVE_TEST_CRASH_SEED": str(POISON_SEED),
        "SOFTSERVE_JOB_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }
    Quota.objects.update_or_create(
        tenant=acme.tenant, defaults={"requests_per_minute": 100_000, "concurrent_jobs": JOBS}
    )
    dataset = _setup(acme, tiny_model_dirs, rows=80)
    poison_dataset = _setup(globex, tiny_model_dirs, rows=40)
    # Another team's poison job goes first, so it meets every worker early.
    poison = _start(globex, poison_dataset, kind="tune", steps=50, seed=POISON_SEED)["id"]
    job_ids = [_start(acme, dataset, kind="tune", steps=STEPS, seed=k)["id"] for k in range(JOBS)]
    procs = [workers.start() for _ in range(WORKERS)]
    killed_at: list[int] = []
    killed_attempt: dict[str, int] = {}
    while workers.kills < KILLS:
        victim = wait_for(
            lambda: _victim(job_ids, killed_attempt), 240, "a job past a checkpoint", workers, 0.05
        )
        holder = int(victim.worker.rsplit(":", 1)[1])
        proc = next((p for p in procs if p.pid in (holder, _parent_pid(holder))), None)
        if proc is None or proc.poll() is not None:
            continue  # its process is already gone (a poison crash): the reconciler handles it
        workers.kill(proc)
        killed_at.append(int(victim.progress.get("step", 0)))
        killed_attempt[str(victim.id)] = victim.attempts
        procs[procs.index(proc)] = workers.start()
    finished = {j: wait_for(lambda j=j: ended_job(acme, j), 600, f"job {j}", workers) for j in job_ids}
    poisoned = wait_for(lambda: ended_job(globex, poison), 300, "the poison job", workers)
    elapsed = time.monotonic() - started

    assert [job["status"] for job in finished.values()] == ["succeeded"] * JOBS, [
        job["error"] for job in finished.values()
    ]
    assert poisoned["status"] == "failed" and poisoned["error_code"] == "worker_lost", poisoned
    assert f"stopped its worker {MAX_ATTEMPTS} times" in poisoned["error"], poisoned["error"]
    assert poisoned["attempts"] == MAX_ATTEMPTS, poisoned
    resumes = [e for job in finished.values() for e in job["metric_history"] if e.get("event") == "resumed"]
    assert len(resumes) >= KILLS and all(e["step"] > 0 and e["step"] % 5 == 0 for e in resumes), resumes
    versions = PromptVersion.objects.filter(tenant=acme.tenant, prompt__name="sentiment")
    assert versions.count() == JOBS and all(v.status == "ready" and v.artifact_sha256 for v in versions)
    # Each ran to its step count or stopped early on its dev metric, never on a kill.
    assert all(job["result"]["stop_reason"] in ("steps", "early stopping") for job in finished.values())
    poison_version = PromptVersion.objects.get(pk=Job.objects.get(pk=poison).prompt_version_id)
    assert poison_version.status == "failed" and not poison_version.artifact_key
    figures = {
        "jobs": JOBS,
        "worker processes at once": WORKERS,
        "SIGKILLs": workers.kills,
        "jobs lost": JOBS - sum(job["status"] == "succeeded" for job in finished.values()),
        "duplicate versions": versions.count() - JOBS,
        "killed at steps": killed_at,
        "resumed at steps": [e["step"] for e in resumes],
        f"mean resume step (of {STEPS})": round(statistics.mean(e["step"] for e in resumes), 1),
        "attempts per job": [job["attempts"] for job in finished.values()],
        "poison job": f"{poisoned['status']} after {poisoned['attempts']} attempts",
        "poison job's reason": poisoned["error_code"],
        "poison job's error": poisoned["error"],
        "wall time (s)": round(elapsed, 1),
    }
    record_figures("tuning_kills", "Tuning workers SIGKILLed mid-job, with a poison job", figures)
    print(f"\ntuning kills: {figures}")
