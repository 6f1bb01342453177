"""The workers' Celery app, from the workers' configuration (`workers/config.py`, environment only).

Start a tuning worker with one process per GPU (the pool forks before any CUDA call: the base model
is loaded in the child, on its first job):
    celery -A workers.celeryconf worker -Q gpu,default --concurrency <GPUs>
and the reconciler's clock with `celery -A workers.celeryconf beat` (or `worker -B` on one machine).
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from kombu import Queue

from workers.config import worker_config
from workers.contracts import QUEUE_DEFAULT, QUEUE_GPU, TASK_RECONCILE

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
    task_routes={"softserve.jobs.*": {"queue": QUEUE_GPU}, TASK_RECONCILE: {"queue": QUEUE_DEFAULT}},
    # A job is acknowledged when it ends, and handed back when its worker process dies mid-job.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=CONFIG.worker_processes,
    # On SIGTERM, running jobs get this long to reach a step boundary and checkpoint.
    worker_soft_shutdown_timeout=CONFIG.soft_shutdown_s,
    worker_enable_soft_shutdown_on_idle=True,
    worker_hijack_root_logger=False,
    beat_schedule={"reconcile-jobs": {"task": TASK_RECONCILE, "schedule": CONFIG.reconcile_every_s}},
    beat_schedule_filename=str(Path(CONFIG.var_dir) / "celerybeat-schedule"),
)
