"""The operators' page at scale: /ops/, its live panel and /ops/api/summary with 100,000 finished jobs and
1,000 queued in PostgreSQL; server time (the request through Django, in this process) p50/p95.

Baseline: the same requests with the indexes the page added dropped (jobs' started_at, the covering
(finished_at, started_at, tenant) and (status, finished_at)), so the ratio shows what they buy.
`--quick`: 20,000 finished, 200 queued, fewer requests. Nothing is cached between requests: every figure is
the full, uncached server time. The table is VACUUM ANALYZEd after the fill, the state autovacuum leaves
a table in a minute after a bulk insert (without it no index-only scan skips the heap). The load average
is recorded before and after: the figures are CPU-bound and rise with a busy machine.
The last line is one JSON object. Uses its own database (BENCH_OPS_DATABASE_URL), created afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
DATABASE_URL = os.environ.get(
    "BENCH_OPS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/softserve_bench_ops"
)
TARGET_MS = 200.0
PATHS = {"page": "/ops/", "panel": "/ops/panel", "json": "/ops/api/summary"}
TEAMS = 20
# The indexes /ops/ added (migrations/jobs/0004_ops_indexes, 0006_ops_summary_indexes); `job_finished` is
# the name the covering index replaced, dropped too when this runs against an older tree.
OPS_INDEXES = ("job_started", "job_finished", "job_finished_cover", "job_status_finished")
REASONS = ["bad_input", "data_missing", "out_of_memory", "worker_lost", "internal"]


def _fresh_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _fill(finished: int, queued: int) -> None:
    """Teams, prompts, one version per job, jobs over 30 days; running, stalled and worker rows."""
    from django.utils import timezone

    from softserve.jobs.models import Job
    from softserve.ops.models import WorkerHeartbeat
    from softserve.prompts.models import PromptVersion, TaskPrompt
    from softserve.tenancy.actions import create_tenant
    from tests.teams import make_dataset_version

    rng, now = random.Random(0), timezone.now()
    # queued_at is auto_now_add: bulk_create would stamp every row with the insert's time (every job queued
    # "now" and started before it was queued); the fill sets its own times.
    Job._meta.get_field("queued_at").auto_now_add = False
    teams = []
    for i in range(TEAMS):
        tenant, _, _ = create_tenant(f"team{i:02d}", f"owner{i}@bench.example")
        prompt = TaskPrompt.objects.create(
            tenant=tenant, name="sentiment", task_type="classification", template="{text}",
            labels=["negative", "positive"], base_model="smollm2-135m-instruct",
        )  # fmt: skip
        teams.append((tenant, prompt, make_dataset_version(tenant), [0]))

    def rows(count: int, make) -> None:
        # In enqueue order, as production inserts them: a day's jobs sit in the table's last pages, not
        # scattered over all of it (which would make every 24 h query read a page per row).
        made = sorted((make() for _ in range(count)), key=lambda fields: fields["queued_at"])
        versions, jobs = [], []
        for fields in made:
            tenant, prompt, dataset, number = rng.choice(teams)
            number[0] += 1
            version = PromptVersion(
                id=uuid.uuid4(), tenant=tenant, prompt=prompt, number=number[0], method="prompt"
            )
            versions.append(version)
            jobs.append(
                Job(tenant=tenant, kind="tune", spec={"steps": 300}, prompt_version=version,
                    dataset_version=dataset, **fields)
            )  # fmt: skip
            if len(jobs) == 5000:
                PromptVersion.objects.bulk_create(versions)
                Job.objects.bulk_create(jobs)
                versions, jobs = [], []
        PromptVersion.objects.bulk_create(versions)
        Job.objects.bulk_create(jobs)

    def finished_job() -> dict:
        # Finished over the last 30 days (so about 3,300 in the last 24 h at full scale), never in the future.
        finished = now - timedelta(seconds=rng.uniform(1, 30 * 86400))
        started = finished - timedelta(seconds=rng.uniform(60, 3600))
        queued_at = started - timedelta(seconds=rng.expovariate(1 / 120))
        status = rng.choices(["succeeded", "failed", "cancelled"], [85, 10, 5])[0]
        code = rng.choice(REASONS) if status == "failed" else ""
        return {
            "status": status, "attempts": 1, "queued_at": queued_at, "started_at": started,
            "finished_at": finished, "error_code": code,
            "error": f"{code}: something went wrong" if code else "",
        }  # fmt: skip

    def queued_job() -> dict:
        return {"status": "queued", "queued_at": now - timedelta(seconds=rng.uniform(1, 7200))}

    def running_job() -> dict:
        return {
            "status": "running", "attempts": 1, "queued_at": now - timedelta(hours=1),
            "started_at": now - timedelta(minutes=50),
            "heartbeat_at": now - timedelta(seconds=rng.choice([2, 600])),
            "worker": f"gpu-{rng.randrange(25)}:1", "progress": {"step": 100, "total_steps": 300},
        }  # fmt: skip

    rows(finished, finished_job)
    rows(queued, queued_job)
    rows(25, running_job)
    WorkerHeartbeat.objects.bulk_create(
        [
            WorkerHeartbeat(worker=f"gpu-{i}:1", host=f"gpu-{i}", pid=1, device="NVIDIA H100",
                            memory_total=80 * 2**30, seen_at=now - timedelta(seconds=600 if i >= 20 else 2))
            for i in range(25)
        ]
    )  # fmt: skip
    Job._meta.get_field("queued_at").auto_now_add = True
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _measure(client, requests: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, path in PATHS.items():
        for _ in range(2):  # warm-up: connections, templates, plans
            assert client.get(path).status_code == 200
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        times.sort()
        out[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 finished jobs, 200 queued")
    parser.add_argument("--requests", type=int, default=None, help="timed requests per path")
    args = parser.parse_args()
    finished, queued = (20_000, 200) if args.quick else (100_000, 1_000)
    requests = args.requests or (15 if args.quick else 50)
    scratch = Path(tempfile.mkdtemp(prefix="softserve-bench-ops-"))
    os.environ.update(
        {"DATABASE_URL": DATABASE_URL, "SOFTSERVE_VAR_DIR": str(scratch), "SOFTSERVE_LOG_LEVEL": "WARNING"}
    )
    for name in ("SERVING_REDIS_URL", "REDIS_URL", "PROMETHEUS_URL", "S3_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "softserve.settings"
    import django
    from django.core.management import call_command

    _fresh_database(DATABASE_URL)
    django.setup()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    _fill(finished, queued)
    print(
        f"filled {finished} finished + {queued} queued jobs in {time.perf_counter() - started:.0f} s",
        flush=True,
    )

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    operator = get_user_model().objects.create_user("ops@bench.example", is_staff=True)
    client = Client()
    client.force_login(operator)
    load_before = os.getloadavg()
    queries: list[float] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append((time.perf_counter() - started) * 1000)

    sql_ms = []
    for _ in range(5):  # the database's share of one JSON answer (its queries, as the driver waits for them)
        queries.clear()
        with connection.execute_wrapper(timed):
            assert client.get(PATHS["json"]).status_code == 200
        sql_ms.append(sum(queries))
    queries_per_request = len(queries)
    indexed = _measure(client, requests)
    print(f"indexed: {indexed}", flush=True)
    with connection.cursor() as cursor:
        for name in OPS_INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute("ANALYZE jobs_job")
    baseline = _measure(client, max(5, requests // 3))
    print(f"without the /ops/ indexes ({', '.join(OPS_INDEXES)}): {baseline}", flush=True)
    result = {
        "finished_jobs": finished,
        "queued_jobs": queued,
        "requests_per_path": requests,
        "cached": False,
        "queries_per_json_request": queries_per_request,
        "json_sql_ms_p50": round(statistics.median(sql_ms), 1),
        **{f"{name}_{k}": v for name, figures in indexed.items() for k, v in figures.items()},
        **{f"no_index_{name}_p95_ms": figures["p95_ms"] for name, figures in baseline.items()},
        "no_index_over_indexed_page_p95": round(baseline["page"]["p95_ms"] / indexed["page"]["p95_ms"], 2),
        "target_p95_ms": TARGET_MS,
        "under_target": max(f["p95_ms"] for f in indexed.values()) < TARGET_MS,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
