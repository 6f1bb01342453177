"""The workers' Celery app, from environment variables only.

Start a tuning worker with one process per GPU (the pool forks before any CUDA call: the base model
is loaded in the child, on its first job):
    celery -A workers.celeryconf worker -Q gpu,default --concurrency <GPUs>
and the reconciler's clock with `celery -A workers.celeryconf beat` (or `worker -B` on one machine).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from kombu import Queue

from workers.contracts import QUEUE_DEFAULT, QUEUE_GPU, TASK_RECONCILE

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
