"""What operators see at /ops/ and /ops/api/summary: queues, workers, jobs across teams, GPU hours,
serving. Reads only, across tenants (operators are Django staff; tenants never reach this).

Every query is bounded (lists are capped, windows are 24 h or 7 days) and runs on an index: jobs
(status, queued_at), (status, finished_at), (started_at) and (finished_at, started_at, tenant); worker
rows on seen_at. Figures over many rows are aggregated by the database (counts, sums, percentiles), never
by reading the rows into Python. The page must answer in well under 200 ms with 100,000 finished jobs
(benchmarks/ops.py); tests/ops/test_summary_figures.py checks the figures against a plain count.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from common.contracts import QUEUE_GPU, JobStatus
from softserve.jobs.models import Job
from softserve.ops.models import WorkerHeartbeat
from softserve.tenancy.models import Tenant

logger = logging.getLogger(__name__)

LIST_ROWS = 25  # rows per job list on the page (counts are exact; lists are the oldest/newest N)
FAILURE_EXAMPLE_CHARS = 200
HOURS = 24


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


# The columns a job row on the page needs: plain values in one query (no model instances, no JSON columns
# beyond progress), which keeps a 25-row list in a few milliseconds.
_ROW_FIELDS = (
    *("id", "tenant__name", "prompt_version__prompt__name", "prompt_version__number", "kind", "status"),
    *("attempts", "worker", "progress", "queued_at", "started_at", "finished_at", "heartbeat_at", "error"),
    "error_code",
)


def _job_row(job: dict[str, Any], now: datetime) -> dict[str, Any]:
    progress = job["progress"] or {}
    beat = job["heartbeat_at"]
    return {
        "id": str(job["id"]),
        "team": job["tenant__name"],
        "prompt": job["prompt_version__prompt__name"],
        "version": job["prompt_version__number"],
        "kind": job["kind"],
        "status": job["status"],
        "attempts": job["attempts"],
        "worker": job["worker"],
        "step": progress.get("step"),
        "total_steps": progress.get("total_steps"),
        "eta_s": progress.get("eta_s"),
        "tokens_per_s": progress.get("tokens_per_s"),
        "queued_at": _iso(job["queued_at"]),
        "started_at": _iso(job["started_at"]),
        "finished_at": _iso(job["finished_at"]),
        "heartbeat_age_s": round((now - beat).total_seconds(), 1) if beat else None,
        "error": (job["error"] or "")[:500],
        "error_code": job["error_code"],
    }


def _rows(queryset, now: datetime, limit: int = LIST_ROWS) -> list[dict[str, Any]]:
    return [_job_row(job, now) for job in queryset.values(*_ROW_FIELDS)[:limit]]


def _percentiles_in_sql() -> bool:
    # PostgreSQL's percentile_cont interpolates as `statistics.quantiles(method="inclusive")` does; SQLite
    # (`make run`) has no such aggregate, so there the window's waits are read and ranked in Python.
    return connection.vendor == "postgresql"


def _window_sql(marks: list[datetime], percentiles: bool) -> tuple[str, list[Any]]:
    """One aggregate over the jobs alive in the last 24 h (queued now, or started or finished since; each
    arm of the OR on an index): the depth at each hour mark, jobs started and finished in each hour, and
    the number (and, on PostgreSQL, the percentiles) of waits from enqueue to claim. Counted by the
    database, one COUNT(*) FILTER per figure, instead of shipping every row of the day to Python (at
    100,000 jobs that transfer and its datetime parsing were most of the page's time). Written out by hand:
    the ORM took longer to build these 75 filtered aggregates than the database took to run them."""
    adapt = connection.ops.adapt_datetimefield_value
    now, day_ago, hour_ago = marks[-1], marks[0], marks[-1] - timedelta(hours=1)
    columns: list[str] = []
    params: list[Any] = []
    for t in marks:
        # Queued at mark t: enqueued by then, and neither started nor finished by then.
        columns.append(
            "COUNT(*) FILTER (WHERE queued_at <= %s AND (started_at IS NULL OR started_at > %s)"
            " AND (finished_at IS NULL OR finished_at > %s))"
        )
        params += [adapt(t)] * 3
    for column in ("started_at", "finished_at"):
        for begin, end in itertools.pairwise(marks):
            columns.append(f"COUNT(*) FILTER (WHERE {column} >= %s AND {column} < %s)")
            params += [adapt(begin), adapt(end)]
    for since in (hour_ago, day_ago):
        columns.append("COUNT(*) FILTER (WHERE started_at >= %s AND attempts >= 1)")
        params.append(adapt(since))
        if percentiles:
            for q in (0.5, 0.95):
                columns.append(
                    f"PERCENTILE_CONT({q}) WITHIN GROUP (ORDER BY GREATEST(0, EXTRACT(EPOCH FROM"
                    " started_at - queued_at))) FILTER (WHERE started_at >= %s AND attempts >= 1)"
                )
                params.append(adapt(since))
    sql = (
        f"SELECT {', '.join(columns)} FROM {connection.ops.quote_name(Job._meta.db_table)}"
        " WHERE queued_at <= %s AND (status = %s OR started_at >= %s OR finished_at >= %s)"
    )
    return sql, [*params, adapt(now), str(JobStatus.QUEUED), adapt(day_ago), adapt(day_ago)]


def queues(now: datetime, percentiles_in_sql: bool | None = None) -> dict[str, Any]:
    if percentiles_in_sql is None:
        percentiles_in_sql = _percentiles_in_sql()
    day_ago, hour_ago = now - timedelta(hours=HOURS), now - timedelta(hours=1)
    queued = Job.objects.filter(status=JobStatus.QUEUED).aggregate(n=Count("id"), first=Min("queued_at"))
    marks = [now - timedelta(hours=h) for h in range(HOURS, -1, -1)]
    sql, params = _window_sql(marks, percentiles_in_sql)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        figures = list(cursor.fetchone())
    depth, figures = figures[: len(marks)], figures[len(marks) :]
    started, finished, figures = figures[:HOURS], figures[HOURS : 2 * HOURS], figures[2 * HOURS :]
    wait_s: dict[str, dict[str, Any]] = {}
    for window in ("1h", "24h"):
        if percentiles_in_sql:
            jobs, p50, p95, *figures = figures
            wait_s[window] = {"p50": _rounded(p50), "p95": _rounded(p95), "jobs": jobs}
        else:
            jobs, *figures = figures
            wait_s[window] = {"jobs": jobs}
    if not percentiles_in_sql:
        waits = [
            (started_at, max(0.0, (started_at - queued_at).total_seconds()))
            for queued_at, started_at in Job.objects.filter(
                queued_at__lte=now, started_at__gte=day_ago, attempts__gte=1
            ).values_list("queued_at", "started_at")
        ]
        for window, since in (("1h", hour_ago), ("24h", day_ago)):
            values = [w for s, w in waits if s >= since]
            wait_s[window].update(p50=_percentile(values, 50), p95=_percentile(values, 95))
    oldest = (now - queued["first"]).total_seconds() if queued["first"] else 0.0
    return {
        "queues": [{"name": QUEUE_GPU, "depth": queued["n"], "oldest_age_s": round(max(oldest, 0.0), 1)}],
        "depth_24h": {"at": [_iso(t) for t in marks], "depth": depth},
        "wait_s": {
            window: {k: wait_s[window][k] for k in ("p50", "p95", "jobs")} for window in ("1h", "24h")
        },
        "per_hour": {"hour": [_iso(t) for t in marks[:-1]], "started": started, "finished": finished},
    }


def workers(now: datetime) -> list[dict[str, Any]]:
    timeout = settings.SOFTSERVE_JOB_POLICY.heartbeat_timeout_s
    rows = list(
        WorkerHeartbeat.objects.filter(
            seen_at__gte=now - timedelta(hours=HOURS), stopped_at__isnull=True
        ).order_by("host", "pid")[:200]
    )
    held = Job.objects.filter(status=JobStatus.RUNNING, worker__in=[r.worker for r in rows])
    running = {job["worker"]: job for job in _rows(held, now, limit=len(rows))}
    out = []
    for row in rows:
        age = (now - row.seen_at).total_seconds()
        out.append(
            {
                "worker": row.worker,
                "host": row.host,
                "pid": row.pid,
                "state": "online" if age <= timeout else "lost",
                "device": row.device,
                "memory_used": row.memory_used,
                "memory_total": row.memory_total,
                "utilization": row.utilization,
                "rss": row.rss,
                "last_seen": _iso(row.seen_at),
                "last_seen_age_s": round(age, 1),
                "job": running.get(row.worker),
            }
        )
    return out


def jobs(now: datetime) -> dict[str, Any]:
    timeout = timedelta(seconds=settings.SOFTSERVE_JOB_POLICY.heartbeat_timeout_s)
    day_ago = now - timedelta(hours=HOURS)
    stale = Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True))
    counts = Job.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).aggregate(
        queued=Count("id", filter=Q(status=JobStatus.QUEUED)),
        running=Count("id", filter=Q(status=JobStatus.RUNNING) & ~stale),
        stalled=Count("id", filter=stale),
    )
    failed = Job.objects.filter(status=JobStatus.FAILED, finished_at__gte=day_ago)
    # Grouped by the failure's category (FailureReason), with the latest message of each as an example.
    reasons = list(
        failed.values("error_code")
        .annotate(jobs=Count("id"), example=Max("error"))
        .order_by("-jobs", "error_code")
    )
    counts["failed_24h"] = sum(r["jobs"] for r in reasons)
    return {
        "counts": counts,
        "running": _rows(
            Job.objects.filter(status=JobStatus.RUNNING).exclude(stale).order_by("started_at"), now
        ),
        "queued": _rows(Job.objects.filter(status=JobStatus.QUEUED).order_by("queued_at"), now),
        "stalled": _rows(Job.objects.filter(stale).order_by("heartbeat_at"), now),
        "failed": _rows(failed.order_by("-finished_at"), now),
        "failure_reasons": [
            {
                "reason": r["error_code"] or "unknown",
                "jobs": r["jobs"],
                "example": (r["example"] or "")[:FAILURE_EXAMPLE_CHARS],
            }
            for r in reasons
        ],
    }


def teams(now: datetime) -> list[dict[str, Any]]:
    """Worker hours (GPU hours on a GPU fleet) of jobs that ran in the window, and the share of the queue."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = now - timedelta(days=7)
    # Time inside each window: from max(started_at, window start) to finished_at (or now, still running).
    end = Coalesce(F("finished_at"), Value(now))

    def hours_since(start: datetime):
        return Sum(
            ExpressionWrapper(end - Greatest(F("started_at"), Value(start)), output_field=DurationField()),
            filter=Q(started_at__isnull=False) & (Q(finished_at__isnull=True) | Q(finished_at__gte=start)),
        )

    # Jobs that finished within the week, read from the index on (finished_at, started_at, tenant) alone
    # (an index-only scan: the week's rows are most of what this page reads); then the running jobs not
    # already counted, on the status index. The two sets are disjoint, so their sums add up.
    in_week = Q(finished_at__gte=week, started_at__isnull=False)
    not_in_week = Q(finished_at__isnull=True) | Q(finished_at__lt=week) | Q(started_at__isnull=True)
    hours: dict[Any, list[timedelta]] = {}
    for part in (Job.objects.filter(in_week), Job.objects.filter(not_in_week, status=JobStatus.RUNNING)):
        for row in (
            part.order_by().values("tenant_id").annotate(today=hours_since(today), week=hours_since(week))
        ):
            sums = hours.setdefault(row["tenant_id"], [timedelta(), timedelta()])
            sums[0] += row["today"] or timedelta()
            sums[1] += row["week"] or timedelta()
    queued_by_id = dict(
        Job.objects.filter(status=JobStatus.QUEUED)
        .order_by()
        .values_list("tenant_id")
        .annotate(n=Count("id"))
        .values_list("tenant_id", "n")
    )
    names = dict(Tenant.objects.filter(pk__in={*hours, *queued_by_id}).values_list("pk", "name"))
    queued = {names[tenant]: n for tenant, n in queued_by_id.items()}
    total_queued = sum(queued.values())
    rows: dict[str, dict[str, Any]] = {}
    for tenant, (today_used, week_used) in hours.items():
        rows[names[tenant]] = {
            "team": names[tenant],
            "gpu_hours_today": round(today_used.total_seconds() / 3600, 2),
            "gpu_hours_7d": round(week_used.total_seconds() / 3600, 2),
        }
    for name in queued:
        rows.setdefault(name, {"team": name, "gpu_hours_today": 0.0, "gpu_hours_7d": 0.0})
    for name, row in rows.items():
        row["queued"] = queued.get(name, 0)
        row["queue_share"] = round(queued.get(name, 0) / total_queued, 3) if total_queued else 0.0
    return sorted(rows.values(), key=lambda r: (-r["gpu_hours_7d"], -r["queued"], r["team"]))[:100]


def _prometheus(query: str) -> list[dict[str, Any]]:
    url = f"{settings.PROMETHEUS_URL.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=1.5) as response:  # an operator-set URL
        body = json.load(response)
    return body.get("data", {}).get("result", [])


_RATE = "sum by (model) (rate({}[5m]))"
_MEAN = f"{_RATE.format('{0}_sum')} / {_RATE.format('{0}_count')}"
_LATENCY = (
    "histogram_quantile({}, sum by (model, le) (rate(softserve_serving_request_latency_seconds_bucket[5m])))"
)
_HITS, _MISSES = "softserve_serving_prompt_cache_hits_total", "softserve_serving_prompt_cache_misses_total"
SERVING_QUERIES = {
    "requests_per_s": "sum by (model) (rate(softserve_serving_requests_total[1m]))",
    "p50_s": _LATENCY.format(0.5),
    "p99_s": _LATENCY.format(0.99),
    "batch_rows": _MEAN.format("softserve_serving_batch_rows"),
    "prompts_per_batch": _MEAN.format("softserve_serving_batch_prompts"),
    "cache_hit_rate": f"{_RATE.format(_HITS)} / ({_RATE.format(_HITS)} + {_RATE.format(_MISSES)})",
}


def serving() -> dict[str, Any]:
    """Per base model: the stream's length and the workers reading it (Redis), and rates and latencies
    (Prometheus, when PROMETHEUS_URL is set; a scrape config labels each serving target with `model`)."""
    from common.contracts import SERVING_GROUP, serving_stream

    models: dict[str, dict[str, Any]] = {m: {"model": m} for m in settings.SOFTSERVE_BASE_MODELS}
    notes: list[str] = []
    from softserve.serving.client import serving_mode

    if serving_mode() == "redis":
        import redis

        client = redis.Redis.from_url(settings.SERVING_REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        try:
            for name, row in models.items():
                stream = serving_stream(name)
                row["queue_length"] = client.xlen(stream)
                try:
                    consumers = client.xinfo_consumers(stream, SERVING_GROUP)
                except redis.ResponseError:
                    consumers = []  # no worker has created the group yet
                row["workers_online"] = sum(1 for c in consumers if c.get("idle", 0) < 15_000)
        except redis.RedisError as exc:
            logger.warning("serving queue figures unavailable: %s", exc)
            notes.append("The serving Redis did not answer.")
    else:
        notes.append("Embedded serving (SERVING_MODE=embedded): the pool runs inside each web process.")
    if settings.PROMETHEUS_URL:
        try:
            for key, query in SERVING_QUERIES.items():
                for sample in _prometheus(query):
                    name = sample["metric"].get("model", "all models")
                    value = float(sample["value"][1])
                    row = models.setdefault(name, {"model": name})
                    row[key] = None if value != value else round(value, 4)  # NaN: nothing in the window
        except Exception as exc:
            logger.warning("Prometheus did not answer the serving queries: %s", exc)
            notes.append("Prometheus (PROMETHEUS_URL) did not answer.")
    else:
        notes.append("Set PROMETHEUS_URL for request rates, latencies, batch sizes and cache hit rates.")
    return {"models": list(models.values()), "notes": notes}


def summary() -> dict[str, Any]:
    now = timezone.now()
    return {
        "generated_at": _iso(now),
        "heartbeat_timeout_s": settings.SOFTSERVE_JOB_POLICY.heartbeat_timeout_s,
        **queues(now),
        "workers": workers(now),
        "jobs": jobs(now),
        "teams": teams(now),
        "serving": serving(),
    }
