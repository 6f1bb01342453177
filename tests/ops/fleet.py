"""A fleet in every state, as rows: jobs queued, running, stalled, failed and succeeded across two teams,
with worker heartbeat rows (one online, one lost). Used by the page, JSON and browser tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from softserve.jobs.models import Job
from softserve.ops.models import WorkerHeartbeat
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.teams import make_dataset_version


@dataclass
class Fleet:
    jobs: dict[str, list[Job]] = field(default_factory=dict)


def _prompt(tenant, name: str) -> TaskPrompt:
    return TaskPrompt.objects.create(
        tenant=tenant,
        name=name,
        task_type="classification",
        template="{text}",
        labels=["negative", "positive"],
        base_model="smollm2-135m-instruct",
    )


def _job(tenant, prompt, number: int, dataset, status: str, **fields) -> Job:
    version = PromptVersion.objects.create(tenant=tenant, prompt=prompt, number=number, method="prompt")
    job = Job.objects.create(
        tenant=tenant,
        kind="tune",
        spec={"method": "prompt", "steps": 100},
        prompt_version=version,
        dataset_version=dataset,
        status=status,
    )
    Job.objects.filter(pk=job.pk).update(**fields)  # queued_at is auto_now_add: set it afterwards
    job.refresh_from_db()
    return job


def make_fleet(*tenants) -> Fleet:
    now, fleet = timezone.now(), Fleet()
    first, second = tenants[0], tenants[-1]
    numbers = iter(range(1, 100))
    p1, p2 = _prompt(first, "sentiment"), _prompt(second, "topics")
    d1, d2 = make_dataset_version(first), make_dataset_version(second)
    WorkerHeartbeat.objects.create(
        worker="gpu-a:101", host="gpu-a", pid=101, device="NVIDIA H100", memory_used=30 * 2**30,
        memory_total=80 * 2**30, utilization=0.87, rss=3 * 2**30, seen_at=now,
    )  # fmt: skip
    WorkerHeartbeat.objects.create(
        worker="gpu-b:202", host="gpu-b", pid=202, device="cpu", memory_used=2**30, memory_total=16 * 2**30,
        utilization=0.5, rss=2**30, seen_at=now - timedelta(minutes=10),
    )  # fmt: skip
    fleet.jobs["running"] = [
        _job(
            first, p1, next(numbers), d1, "running", worker="gpu-a:101", attempts=1,
            queued_at=now - timedelta(minutes=20), started_at=now - timedelta(minutes=15), heartbeat_at=now,
            progress={"step": 120, "total_steps": 300, "eta_s": 410.0, "tokens_per_s": 5120.0},
        )
    ]  # fmt: skip
    fleet.jobs["stalled"] = [
        _job(
            second, p2, next(numbers), d2, "running", worker="gpu-b:202", attempts=1,
            queued_at=now - timedelta(hours=2), started_at=now - timedelta(hours=1, minutes=50),
            heartbeat_at=now - timedelta(minutes=10), progress={"step": 40, "total_steps": 300},
        )
    ]  # fmt: skip
    fleet.jobs["queued"] = [
        _job(first, p1, next(numbers), d1, "queued", queued_at=now - timedelta(minutes=m)) for m in (30, 5)
    ] + [_job(second, p2, next(numbers), d2, "queued", queued_at=now - timedelta(minutes=1))]
    fleet.jobs["failed"] = [
        _job(
            first, p1, next(numbers), d1, "failed", attempts=1, error=reason, error_code=code,
            queued_at=now - timedelta(hours=3), started_at=now - timedelta(hours=3) + timedelta(seconds=30),
            finished_at=now - timedelta(hours=2, minutes=m),
        )
        for m, code, reason in ((1, "out_of_memory", "Out of memory at batch size 64"),
                                (2, "out_of_memory", "Out of memory at batch size 64"),
                                (3, "data_missing", "The dataset's stored rows are missing"))
    ]  # fmt: skip
    fleet.jobs["succeeded"] = [
        _job(
            second, p2, next(numbers), d2, "succeeded", attempts=1, queued_at=now - timedelta(hours=5),
            started_at=now - timedelta(hours=5) + timedelta(minutes=2), finished_at=now - timedelta(hours=4),
        )
    ]  # fmt: skip
    return fleet
