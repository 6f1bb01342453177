"""The workers' Celery app, from environment variables only.

Start a tuning worker with one process per GPU (the pool forks before any CUDA call: the base model
is loaded in the child, on its first job):
    celery -A workers.celeryconf worker -Q gpu,default --concurrency <GPUs>
and the reconciler's clock with `celery -A workers.celeryconf beat` (or `worker -B` on one machine).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from celery import Celery, signals
from kombu import Queue

from workers.contracts import QUEUE_DEFAULT, QUEUE_GPU, TASK_RECONCILE

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
VAR_DIR = Path(os.environ.get("SOFTSERVE_VAR_DIR", str(ROOT / "var")))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# The longest a job may run; Redis must not re-deliver an unacknowledged job message before that.
JOB_MAX_HOURS = _float("SOFTSERVE_JOB_MAX_HOURS", 24 * 7)
RECONCILE_EVERY_S = _float("SOFTSERVE_RECONCILE_EVERY_S", 30)

# No Django fixup even where DJANGO_SETTINGS_MODULE is set: workers never load Django.
BROKER_URL = os.environ.get("CELERY_BROKER_URL", f"sqla+sqlite:///{VAR_DIR / 'celery.sqlite3'}")
# Redis re-delivers an unacknowledged message after this; the SQLAlchemy transport has no such option.
TRANSPORT_OPTIONS = (
    {"visibility_timeout": int(JOB_MAX_HOURS * 3600 + 3600)} if BROKER_URL.startswith("redis") else {}
)

app = Celery("softserve-workers", include=["workers.tasks"], fixups=[])
app.conf.update(
    broker_url=BROKER_URL,
    broker_connection_retry_on_startup=True,
    broker_transport_options=TRANSPORT_OPTIONS,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_queues=[Queue(QUEUE_GPU), Queue(QUEUE_DEFAULT)],
    task_default_queue=QUEUE_DEFAULT,
    task_routes={"softserve.jobs.*": {"queue": QUEUE_GPU}, TASK_RECONCILE: {"queue": QUEUE_DEFAULT}},
    # A job is acknowledged when it ends, and handed back when its worker process dies mid-job.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=int(os.environ.get("SOFTSERVE_WORKER_PROCESSES", "1")),
    # On SIGTERM, running jobs get this long to reach a step boundary and checkpoint.
    worker_soft_shutdown_timeout=_float("SOFTSERVE_SOFT_SHUTDOWN_S", 60),
    worker_enable_soft_shutdown_on_idle=True,
    worker_hijack_root_logger=False,
    beat_schedule={"reconcile-jobs": {"task": TASK_RECONCILE, "schedule": RECONCILE_EVERY_S}},
    beat_schedule_filename=str(VAR_DIR / "celerybeat-schedule"),
)

# --- operations: JSON logs, the metrics/health port, each pool process's heartbeat row ------------------
# /metrics, /healthz and /readyz of this worker on this port (0: not served). Jobs run in pool processes,
# so metrics are prometheus-client's multiprocess kind (PROMETHEUS_MULTIPROC_DIR, else a folder in VAR_DIR).
METRICS_PORT = int(os.environ.get("SOFTSERVE_WORKER_METRICS_PORT", "0"))
READY_TIMEOUT_S = _float("SOFTSERVE_READY_TIMEOUT_S", 2)
FLEET_HEARTBEAT_S = _float("SOFTSERVE_HEARTBEAT_S", 5)


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Celery leaves logging to us when this signal has a receiver: the JSON lines of workers/logs.py."""
    from workers import logs

    logs.configure()


@signals.celeryd_init.connect
def _prepare_metrics_folder(**_: Any) -> None:
    # Runs in the worker's parent before the task modules (and prometheus_client) are imported.
    if not METRICS_PORT:
        return
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or VAR_DIR / "worker-metrics" / str(os.getpid()))
    if folder.exists():
        shutil.rmtree(folder)  # values of a previous run would count twice
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _checks() -> dict[str, Any]:
    from workers.contracts import StorageLocation
    from workers.health import broker_check, sqlalchemy_check, storage_check
    from workers.jobdb import database_url

    where = StorageLocation.from_env(os.environ, str(VAR_DIR / "storage"))
    return {
        "database": sqlalchemy_check(database_url(), READY_TIMEOUT_S),
        "broker": broker_check(BROKER_URL, READY_TIMEOUT_S),
        "storage": storage_check(where, READY_TIMEOUT_S),
    }


@signals.worker_init.connect
def _serve_metrics(**_: Any) -> None:
    if not METRICS_PORT:
        return
    from workers import metrics
    from workers.fleet import DeviceProbe
    from workers.health import serve_http

    device = metrics.DeviceCollector(DeviceProbe())
    serve_http(METRICS_PORT, lambda: metrics.exposition([device]), _checks, READY_TIMEOUT_S)
    logger.info("worker metrics, /healthz and /readyz on port %d", METRICS_PORT)


@signals.worker_process_init.connect
def _start_fleet_heartbeat(**_: Any) -> None:
    """Each pool process keeps its own row in ops_workerheartbeat (what /ops/ shows as a worker)."""
    from workers import fleet
    from workers.jobdb import default_db

    # Only a thread starts here (Celery waits a few seconds at most for a pool process to come up); the
    # database and the device are reached from that thread, and a failure there is logged and retried.
    fleet.install(fleet.Fleet(lambda: default_db().engine, "gpu,default", FLEET_HEARTBEAT_S).start())


@signals.worker_process_shutdown.connect
def _stop_fleet_heartbeat(**_: Any) -> None:
    from workers import fleet

    if fleet._current is not None:
        fleet._current.stop()
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), folder)
