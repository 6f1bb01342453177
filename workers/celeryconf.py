"""The workers' Celery app, from the workers' configuration (`workers/config.py`, environment only).

Start a tuning worker with one process per GPU (the pool forks before any CUDA call: the base model
is loaded in the child, on its first job):
    celery -A workers.celeryconf worker -Q gpu --concurrency <GPUs>
a worker for everything else (reconciler, evaluations, webhooks, retention: no GPU, nothing loaded), so
that none of it waits behind hours of training:
    celery -A workers.celeryconf worker -Q default
and the reconciler's clock with `celery -A workers.celeryconf beat`. On one machine a single
`worker -B -Q gpu,default` does all of it (`make run`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery, signals
from kombu import Queue

from common import settings as decl
from common.contracts import (
    QUEUE_DEFAULT,
    QUEUE_GPU,
    TASK_EXPIRE_PREDICTION_INPUTS,
    TASK_RECONCILE,
    TASK_SWEEP_WEBHOOKS,
)
from workers.config import worker_config

if TYPE_CHECKING:
    from workers import fleet

logger = logging.getLogger(__name__)
CONFIG = worker_config()

app = Celery("softserve-workers", include=["workers.tasks"], fixups=[])
app.conf.update(
    # No Django fixup even where DJANGO_SETTINGS_MODULE is set: workers never load Django.
    broker_url=CONFIG.broker_url,
    broker_connection_retry_on_startup=True,
    # Redis re-delivers an unacknowledged message after this; the SQLAlchemy transport has no such option.
    broker_transport_options=(
        {"visibility_timeout": CONFIG.message_visibility_s} if CONFIG.broker_url.startswith("redis") else {}
    ),
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_queues=[Queue(QUEUE_GPU), Queue(QUEUE_DEFAULT)],
    task_default_queue=QUEUE_DEFAULT,
    task_routes={
        "softserve.jobs.*": {"queue": QUEUE_GPU},
        TASK_RECONCILE: {"queue": QUEUE_DEFAULT},
        TASK_EXPIRE_PREDICTION_INPUTS: {"queue": QUEUE_DEFAULT},
    },
    # A job is acknowledged when it ends, and handed back when its worker process dies mid-job.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=CONFIG.worker_processes,
    # On SIGTERM, running jobs get this long to reach a step boundary and checkpoint.
    worker_soft_shutdown_timeout=CONFIG.soft_shutdown_s,
    worker_enable_soft_shutdown_on_idle=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        "reconcile-jobs": {"task": TASK_RECONCILE, "schedule": CONFIG.reconcile_every_s},
        # Webhook retries (their backoff) and sends lost after commit: every due delivery.
        "sweep-webhooks": {"task": TASK_SWEEP_WEBHOOKS, "schedule": CONFIG.webhook_sweep_every_s},
        "expire-prediction-inputs": {
            "task": TASK_EXPIRE_PREDICTION_INPUTS,
            "schedule": CONFIG.expire_inputs_every_s,
        },
    },
    beat_schedule_filename=str(Path(CONFIG.var_dir) / "celerybeat-schedule"),
)

# --- operations: JSON logs, the metrics/health port, each pool process's heartbeat row ------------------
# /metrics, /healthz and /readyz of this worker on this port (0: not served). Jobs run in pool processes,
# so metrics are prometheus-client's multiprocess kind (PROMETHEUS_MULTIPROC_DIR, else a folder in VAR_DIR).
METRICS_PORT = CONFIG.worker_metrics_port
READY_TIMEOUT_S = CONFIG.ready_timeout_s
# A worker's own row: a third of the timeout after which /ops/ calls it lost, at most every 5 s and never
# more often than a job's heartbeat (tests run with very short heartbeats; the row need not follow).
FLEET_BEAT_S = max(CONFIG.heartbeat_s, min(5.0, CONFIG.heartbeat_timeout_s / 3))


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Celery leaves logging to us when this signal has a receiver: the JSON lines of workers/logs.py."""
    from workers import logs

    logs.configure()


def _multiprocess_folder() -> None:
    """Jobs run in pool processes: their metrics are files under PROMETHEUS_MULTIPROC_DIR that the parent's
    /metrics adds up. It must be set before prometheus_client is first imported (which happens before any
    worker signal), so here, at import; without one, a fresh folder per worker under var_dir."""
    if not METRICS_PORT or decl.PROMETHEUS_MULTIPROC_DIR.read():
        return
    folder = Path(CONFIG.var_dir) / "worker-metrics" / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


_multiprocess_folder()


@signals.celeryd_init.connect
def _empty_metrics_folder(**_: Any) -> None:
    """A folder given in PROMETHEUS_MULTIPROC_DIR may hold a previous run's files: they would count twice."""
    folder = decl.PROMETHEUS_MULTIPROC_DIR.read()
    if METRICS_PORT and folder and Path(folder).is_dir():
        for item in Path(folder).glob("*.db"):
            if not item.name.endswith(f"_{os.getpid()}.db"):  # this process's own files are live
                item.unlink()


def _checks() -> dict[str, Any]:
    from workers.health import broker_check, sqlalchemy_check, storage_check

    return {
        "database": sqlalchemy_check(CONFIG.database_url, READY_TIMEOUT_S),
        "broker": broker_check(CONFIG.broker_url, READY_TIMEOUT_S),
        "storage": storage_check(CONFIG.storage, READY_TIMEOUT_S),
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


def fleet_heartbeat(consumed: Iterable[str]) -> fleet.Fleet | None:
    """The heartbeat of a pool process consuming these queues, not started; None where it takes no tuning
    job: /ops/'s workers and `softserve_workers` (which SoftserveNoWorkerOnline reads) are the tuning
    fleet, and a default-queue worker counted there would hide that no GPU worker is left."""
    from workers import fleet
    from workers.jobdb import default_db

    queues = list(consumed)
    if QUEUE_GPU not in queues:
        return None
    return fleet.Fleet(lambda: default_db().engine, ",".join(queues), FLEET_BEAT_S)


@signals.worker_process_init.connect
def _start_fleet_heartbeat(**_: Any) -> None:
    """Each pool process keeps its own row in ops_workerheartbeat (what /ops/ shows as a worker)."""
    from workers import fleet

    # -Q was applied before the pool forked: this process holds the worker's selection.
    beat = fleet_heartbeat(app.amqp.queues.consume_from)
    # Only a thread starts here (Celery waits a few seconds at most for a pool process to come up); the
    # database and the device are reached from that thread, and a failure there is logged and retried.
    fleet.install(beat.start() if beat else None)


@signals.worker_process_shutdown.connect
def _stop_fleet_heartbeat(**_: Any) -> None:
    from workers import fleet

    if fleet._current is not None:
        fleet._current.stop()
    folder = decl.PROMETHEUS_MULTIPROC_DIR.read()
    if folder:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), folder)
