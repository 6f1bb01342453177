"""The web process's Prometheus metrics: requests by view, method and status, their latency, and the job
queue read from the database at each scrape. Every metric here is listed in docs/metrics.md.

Labels are bounded: `view` is the URL pattern's name (never the path), `method` one of a fixed few.
Under gunicorn the values live in PROMETHEUS_MULTIPROC_DIR (deploy/gunicorn.conf.py) and any process's
`/metrics` adds up all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from common import settings as decl
from common.contracts import QUEUE_GPU, JobStatus

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "softserve_http_requests",
    "HTTP requests answered, by view, method and status",
    ["view", "method", "status"],
)
LATENCY = Histogram(
    "softserve_http_request_duration_seconds",
    "Time to answer an HTTP request, by view and method",
    ["view", "method"],
    buckets=_LATENCY,
)


def observe(view: str, method: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "OTHER"
    REQUESTS.labels(view, method, str(status)).inc()
    LATENCY.labels(view, method).observe(seconds)


class QueueCollector:
    """Queue depth, oldest queued job's age and jobs by active status, from the job table (indexed on
    status, queued_at). Workers online and lost come from their heartbeat rows."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from django.conf import settings

        from softserve.jobs.models import Job
        from softserve.ops.models import WorkerHeartbeat

        depth = GaugeMetricFamily(
            "softserve_queue_depth", "Jobs queued and not yet claimed", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "softserve_queue_oldest_age_seconds", "Age of the oldest queued job (0: none)", labels=["queue"]
        )
        running = GaugeMetricFamily("softserve_jobs_running", "Jobs running on any worker now")
        workers = GaugeMetricFamily(
            "softserve_workers", "Tuning worker processes by state (from their heartbeats)", labels=["state"]
        )
        try:
            queued = Job.objects.filter(status=JobStatus.QUEUED).aggregate(
                n=Count("id"), first=Min("queued_at")
            )
            running_now = Job.objects.filter(status=JobStatus.RUNNING).count()
            timeout = settings.SOFTSERVE_JOB_POLICY.heartbeat_timeout_s
            online = WorkerHeartbeat.objects.online(timeout).count()
            lost = (
                WorkerHeartbeat.objects.lost(timeout)
                .filter(seen_at__gte=timezone.now() - timedelta(days=1))
                .count()
            )
        except Exception:
            # A scrape during a database outage still answers (the request metrics), and says why not.
            logger.warning("queue metrics unavailable", exc_info=True)
            return []
        age = (timezone.now() - queued["first"]).total_seconds() if queued["first"] else 0.0
        depth.add_metric([QUEUE_GPU], queued["n"])
        oldest.add_metric([QUEUE_GPU], max(age, 0.0))
        running.add_metric([], running_now)
        workers.add_metric(["online"], online)
        workers.add_metric(["lost"], lost)
        return [depth, oldest, running, workers]


def exposition() -> bytes:
    """Every web process's request metrics (multiprocess under gunicorn) and the queue read now."""
    if decl.PROMETHEUS_MULTIPROC_DIR.read():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector())
    return generate_latest(registry) + generate_latest(queue)
