"""The summary's figures, counted by the database (softserve/ops/summary.py), against the same figures
computed plainly in Python over every job row: a few hundred jobs at random times, and jobs exactly on
the hour marks, started before they were queued (a clock skew), and running for more than a week."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from softserve.jobs.models import Job
from softserve.ops import summary
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.conftest import ROOT
from tests.teams import make_dataset_version

pytestmark = pytest.mark.django_db
HOURS = summary.HOURS


@pytest.fixture(autouse=True)
def _own_queued_at(monkeypatch):
    # queued_at is auto_now_add: bulk_create would stamp every row with the insert's time.
    monkeypatch.setattr(Job._meta.get_field("queued_at"), "auto_now_add", False)


def _rows(now: datetime, teams) -> list[Job]:
    rng, jobs = random.Random(13), []
    prompts = {
        t.tenant.pk: TaskPrompt.objects.create(
            tenant=t.tenant, name="p", task_type="classification", template="{text}",
            labels=["a", "b"], base_model="smollm2-135m-instruct",
        )
        for t in teams
    }  # fmt: skip
    datasets = {t.tenant.pk: make_dataset_version(t.tenant) for t in teams}
    marks = [now - timedelta(hours=h) for h in range(HOURS, -1, -1)]

    def add(tenant, status: str, **times) -> None:
        version = PromptVersion.objects.create(
            id=uuid.uuid4(), tenant=tenant, prompt=prompts[tenant.pk], number=len(jobs) + 1, method="prompt"
        )
        jobs.append(
            Job(tenant=tenant, kind="tune", spec={}, prompt_version=version,
                dataset_version=datasets[tenant.pk], status=status, **times)
        )  # fmt: skip

    for _ in range(300):
        tenant = rng.choice(teams).tenant
        queued_at = now - timedelta(seconds=rng.uniform(0, 9 * 86400))
        started = queued_at + timedelta(seconds=rng.expovariate(1 / 900))
        finished = started + timedelta(seconds=rng.uniform(30, 20000))
        kind = rng.choice(["queued", "running", "finished", "finished", "finished"])
        attempts = rng.choice([0, 1, 1, 2])
        if kind == "queued":
            add(tenant, "queued", queued_at=queued_at, attempts=attempts)
        elif kind == "running" or finished > now:
            add(tenant, "running", queued_at=queued_at, started_at=min(started, now), attempts=attempts)
        else:
            status = rng.choice(["succeeded", "failed", "cancelled"])
            add(tenant, status, queued_at=queued_at, started_at=started, finished_at=finished, attempts=1)
    tenant = teams[0].tenant
    for i in (0, 5, 23, 24):  # on the marks themselves: the boundaries of each comparison
        add(tenant, "succeeded", queued_at=marks[i], started_at=marks[i], finished_at=marks[i], attempts=1)
        add(tenant, "queued", queued_at=marks[i])
    for i in (3, 17):
        add(tenant, "succeeded", queued_at=marks[i] - timedelta(hours=1), started_at=marks[i],
            finished_at=marks[i + 1], attempts=1)  # fmt: skip
    # Claimed before it was queued (the web's and the worker's clocks disagree): a wait of 0, never negative.
    add(
        tenant,
        "running",
        queued_at=now - timedelta(minutes=5),
        started_at=now - timedelta(minutes=6),
        attempts=1,
    )
    # Running for ten days: its GPU hours count inside each window only.
    add(teams[-1].tenant, "running", queued_at=now - timedelta(days=10), started_at=now - timedelta(days=10),
        attempts=1)  # fmt: skip
    # A cancelled job that never started: no wait, no hours.
    add(tenant, "cancelled", queued_at=now - timedelta(hours=2), finished_at=now - timedelta(hours=1))
    return Job.objects.bulk_create(jobs)


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


def _expected_queues(now: datetime, jobs: list[Job]) -> dict:
    """Over every row, in Python: the definitions the page documents (docs/operations.md)."""
    day_ago, hour_ago = now - timedelta(hours=HOURS), now - timedelta(hours=1)
    marks = [now - timedelta(hours=h) for h in range(HOURS, -1, -1)]
    alive = [
        j for j in jobs
        if j.queued_at <= now and (j.status == "queued" or (j.started_at and j.started_at >= day_ago)
                                   or (j.finished_at and j.finished_at >= day_ago))
    ]  # fmt: skip

    def queued_at_mark(j: Job, t: datetime) -> bool:
        return (
            j.queued_at <= t
            and (j.started_at is None or j.started_at > t)
            and (j.finished_at is None or j.finished_at > t)
        )

    def per_hour(times: list[datetime]) -> list[int]:
        return [sum(1 for t in times if marks[i] <= t < marks[i + 1]) for i in range(HOURS)]

    waits = [
        (j.started_at, max(0.0, (j.started_at - j.queued_at).total_seconds()))
        for j in alive
        if j.started_at and j.started_at >= day_ago and j.attempts >= 1
    ]
    queued = [j for j in jobs if j.status == "queued"]
    oldest = (now - min(j.queued_at for j in queued)).total_seconds()
    return {
        "queues": [{"name": "gpu", "depth": len(queued), "oldest_age_s": round(max(oldest, 0.0), 1)}],
        "depth_24h": {
            "at": [t.isoformat() for t in marks],
            "depth": [sum(1 for j in alive if queued_at_mark(j, t)) for t in marks],
        },
        "wait_s": {
            window: {
                "p50": _percentile([w for s, w in waits if s >= since], 50),
                "p95": _percentile([w for s, w in waits if s >= since], 95),
                "jobs": sum(1 for s, _ in waits if s >= since),
            }
            for window, since in (("1h", hour_ago), ("24h", day_ago))
        },
        "per_hour": {
            "hour": [t.isoformat() for t in marks[:-1]],
            "started": per_hour([j.started_at for j in alive if j.started_at]),
            "finished": per_hour([j.finished_at for j in alive if j.finished_at]),
        },
    }


def _expected_hours(now: datetime, jobs: list[Job], names: dict) -> dict[str, tuple[float, float]]:
    today, week = now.replace(hour=0, minute=0, second=0, microsecond=0), now - timedelta(days=7)
    out: dict[str, list[timedelta]] = {}
    for j in jobs:
        if not (j.status == "running" or (j.finished_at and j.finished_at >= week and j.started_at)):
            continue
        sums = out.setdefault(names[j.tenant_id], [timedelta(), timedelta()])
        for i, start in enumerate((today, week)):
            if j.started_at and (j.finished_at is None or j.finished_at >= start):
                sums[i] += (j.finished_at or now) - max(j.started_at, start)
    return {
        n: (round(a.total_seconds() / 3600, 2), round(b.total_seconds() / 3600, 2))
        for n, (a, b) in out.items()
    }


def test_queue_figures_match_a_plain_count_over_every_row(acme, globex):
    now = timezone.now()
    jobs = _rows(now, [acme, globex])
    expected = _expected_queues(now, jobs)
    assert expected["wait_s"]["24h"]["jobs"] > 20 and max(expected["depth_24h"]["depth"]) > 5  # not vacuous
    # The database's percentile_cont (PostgreSQL) and the Python ranking (the SQLite fallback) agree too.
    assert summary.queues(now, percentiles_in_sql=True) == expected
    assert summary.queues(now, percentiles_in_sql=False) == expected


def test_gpu_hours_and_queue_share_match_a_plain_sum(acme, globex):
    now = timezone.now()
    jobs = _rows(now, [acme, globex])
    names = {acme.tenant.pk: "acme", globex.tenant.pk: "globex"}
    hours = _expected_hours(now, jobs, names)
    rows = {r["team"]: r for r in summary.teams(now)}
    assert {n: (r["gpu_hours_today"], r["gpu_hours_7d"]) for n, r in rows.items()} == hours
    assert hours["globex"][1] > 7 * 24  # the ten-day job counts its last seven days
    queued = {
        n: sum(1 for j in jobs if j.status == "queued" and names[j.tenant_id] == n) for n in names.values()
    }
    assert {n: r["queued"] for n, r in rows.items()} == queued
    assert sum(r["queue_share"] for r in rows.values()) == pytest.approx(1.0, abs=0.002)


def test_the_same_figures_on_sqlite(tmp_path):
    """`make run` uses SQLite: the same query text (no percentile_cont there) in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SERVING_REDIS_URL")}
    env.update(
        SOFTSERVE_VAR_DIR=str(tmp_path),
        SOFTSERVE_LOG_LEVEL="WARNING",
        PYTHONPATH=f"{ROOT / 'platform'}:{ROOT}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.ops.sqlite_figures", f"sqlite:///{tmp_path / 'db.sqlite3'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["vendor"] == "sqlite" and result["queues"] and result["teams"], result
    assert "depth_24h" in result["summary_keys"]
