"""Prometheus metrics of the tuning workers, and the small HTTP server every worker exposes on its metrics
port: `/metrics`, `/healthz` (alive) and `/readyz` (database, broker, storage reachable).

A Celery worker runs jobs in forked child processes, so the metrics are prometheus-client's multiprocess
kind: each process writes its values under PROMETHEUS_MULTIPROC_DIR and the parent's `/metrics` adds them
up; `workers.celeryconf` sets that folder up before prometheus_client is first imported in the worker.
Every metric here is listed in docs/metrics.md (a test holds them together).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from common import settings as decl

logger = logging.getLogger(__name__)

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Enqueue to claim: seconds to hours.
_WAIT = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


JOBS_RUNNING = Gauge(
    "softserve_worker_jobs_running", "Jobs running on this worker now", multiprocess_mode="livesum"
)
JOBS_FINISHED = Counter(
    "softserve_worker_jobs_finished",
    "Jobs that ended on this worker, by kind and outcome",
    ["kind", "outcome"],
)
STEP_SECONDS = Histogram("softserve_worker_step_seconds", "Wall time of one training step", buckets=_SECONDS)
TOKENS_PER_SECOND = Gauge(
    "softserve_worker_tokens_per_second",
    "Training throughput of the jobs running now (real tokens per second)",
    multiprocess_mode="livesum",
)
CHECKPOINT_SECONDS = Histogram(
    "softserve_worker_checkpoint_seconds", "Time to write one checkpoint to storage", buckets=_SECONDS
)
QUEUE_WAIT = Histogram(
    "softserve_queue_wait_seconds", "Time a job waited from enqueue to its claim by a worker", buckets=_WAIT
)
HEARTBEAT_FAILURES = Counter(
    "softserve_worker_heartbeat_failures",
    "Heartbeats the database did not take (job: a running job's beat; worker: the worker's own row)",
    ["kind"],
)
for _kind in ("job", "worker"):
    HEARTBEAT_FAILURES.labels(_kind)  # exported as 0 from the start: an alert can see the first failure


class DeviceCollector:
    """GPU memory and utilisation (NVML) or the worker's CPU share and RSS, read at each scrape."""

    def __init__(self, probe: Any):
        self.probe = probe

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            sample = self.probe.sample()
        except Exception:
            logger.warning("device sample failed", exc_info=True)
            return []
        used = GaugeMetricFamily(
            "softserve_worker_device_memory_used_bytes",
            "Memory in use on the worker's device (GPU memory, or the worker's RSS on a CPU)",
            labels=["device"],
        )
        total = GaugeMetricFamily(
            "softserve_worker_device_memory_total_bytes",
            "Memory of the worker's device (GPU memory, or the machine's RAM)",
            labels=["device"],
        )
        util = GaugeMetricFamily(
            "softserve_worker_device_utilization_ratio",
            "Utilisation 0..1 of the worker's device (NVML on a GPU, CPU share on a CPU)",
            labels=["device"],
        )
        rss = GaugeMetricFamily("softserve_worker_rss_bytes", "Resident memory of the worker process tree")
        used.add_metric([sample.device], sample.memory_used)
        total.add_metric([sample.device], sample.memory_total)
        util.add_metric([sample.device], sample.utilization)
        rss.add_metric([], sample.rss)
        return [used, total, util, rss]


def _reap_dead(folder: str) -> None:
    """A pool process killed outright leaves its live gauges behind (jobs running would stay counted)."""
    import glob

    import psutil

    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        pid = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            multiprocess.mark_process_dead(int(pid), folder)


def exposition(extra: Iterable[Any] = ()) -> bytes:
    """The text of `/metrics`: every process's values (multiprocess) plus collectors read now."""
    registry = CollectorRegistry()
    folder = decl.PROMETHEUS_MULTIPROC_DIR.read()
    if folder:
        _reap_dead(folder)
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    text = generate_latest(registry)
    for collector in extra:
        own = CollectorRegistry()
        own.register(collector)
        text += generate_latest(own)
    return text
