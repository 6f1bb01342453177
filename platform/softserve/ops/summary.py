"""What operators see at /ops/ and /ops/api/summary: queues, workers, jobs across teams, GPU hours,
serving. Reads only, across tenants (operators are Django staff; tenants never reach this).

Every query is bounded (lists are capped, windows are 24 h or 7 days) and runs on an index:
jobs (status, queued_at), (status, finished_at) and (started_at); worker rows on seen_at. The page must
answer in well under 200 ms with 100,000 finished jobs (benchmarks/ops.py).
"""

from __future__ import annotations

import json
import logging
import statistics
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from softserve.jobs.models import Job
from softserve.ops.models import WorkerHeartbeat
from workers.contracts import QUEUE_GPU, JobStatus

logger = logging.getLogger(__name__)

# At most this many rows of the last 24 h are read for the queue figures (a day of a very busy fleet).
MAX_WINDOW_ROWS = 50_000
LIST_ROWS = 25  # rows per job list on the page (counts are exact; lists are the oldest/newest N)
FAILURE_EXAMPLE_CHARS = 200
HOURS = 24


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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


def _bucket(times: list[datetime], start: datetime, hours: int) -> list[int]:
    counts = [0] * hours
    for t in times:
        index = int((t - start).total_seconds() // 3600)
        if 0 <= index < hours:
            counts[index] += 1
    return counts


def queues(now: datetime) -> dict[str, Any]:
    day_ago, hour_ago = now - timedelta(hours=HOURS), now - timedelta(hours=1)
    queued = Job.objects.filter(status=JobStatus.QUEUED).aggregate(n=Count("id"), first=Min("queued_at"))
    # One query for the jobs alive in the last 24 h (queued now, or started or finished since; each arm on an
    # index), then in Python: the depth at each hour (queued by then, neither started nor finished), jobs
    # started and finished per hour, and the wait from enqueue to claim.
    alive = list(
        Job.objects.filter(queued_at__lte=now)
        .filter(Q(status=JobStatus.QUEUED) | Q(started_at__gte=day_ago) | Q(finished_at__gte=day_ago))
        .values_list("queued_at", "started_at", "finished_at", "attempts")[:MAX_WINDOW_ROWS]
    )
    marks = [now - timedelta(hours=h) for h in range(HOURS, -1, -1)]
    depth = []
    for t in marks:
        depth.append(
            sum(
                1
                for queued_at, started, finished, _ in alive
                if queued_at <= t and (started is None or started > t) and (finished is None or finished > t)
            )
        )
    starts = [started for _, started, _, _ in alive if started and started >= day_ago]
    ends = [finished for _, _, finished, _ in alive if finished and finished >= day_ago]
    waits = [
        (started, max(0.0, (started - queued_at).total_seconds()))
        for queued_at, started, _, attempts in alive
        if started and started >= day_ago and attempts >= 1
    ]
    day = [w for _, w in waits]
    hour = [w for s, w in waits if s >= hour_ago]
    oldest = (now - queued["first"]).total_seconds() if queued["first"] else 0.0
    return {
        "queues": [{"name": QUEUE_GPU, "depth": queued["n"], "oldest_age_s": round(max(oldest, 0.0), 1)}],
        "depth_24h": {
            "at": [_iso(t) for t in marks],
            "depth": depth,
        },
        "wait_s": {
            "1h": {"p50": _percentile(hour, 50), "p95": _percentile(hour, 95), "jobs": len(hour)},
            "24h": {"p50": _percentile(day, 50), "p95": _percentile(day, 95), "jobs": len(day)},
        },
        "per_hour": {
            "hour": [_iso(t) for t in marks[:-1]],
            "started": _bucket(starts, marks[0], HOURS),
            "finished": _bucket(ends, marks[0], HOURS),
        },
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

    # Running jobs, or jobs that finished within the week: each arm on an index (status; finished_at).
    used = (
        Job.objects.filter(Q(status=JobStatus.RUNNING) | Q(finished_at__gte=week, started_at__isnull=False))
        .values("tenant__name")
        .annotate(today=hours_since(today), week=hours_since(week))
    )
    queued = dict(
        Job.objects.filter(status=JobStatus.QUEUED)
        .values_list("tenant__name")
        .annotate(n=Count("id"))
        .values_list("tenant__name", "n")
    )
    total_queued = sum(queued.values())
    rows: dict[str, dict[str, Any]] = {}
    for row in used:
        rows[row["tenant__name"]] = {
            "team": row["tenant__name"],
            "gpu_hours_today": round((row["today"] or timedelta()).total_seconds() / 3600, 2),
            "gpu_hours_7d": round((row["week"] or timedelta()).total_seconds() / 3600, 2),
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
    from workers.contracts import SERVING_GROUP, serving_stream

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
