"""Thin named tasks: ids in, the job row is the truth; `workers/runner.py` does the work."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from botocore.exceptions import ConnectionError as S3ConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError

from common.contracts import (
    QUEUE_DEFAULT,
    QUEUE_GPU,
    TASK_DELIVER_WEBHOOK,
    TASK_ENSEMBLE,
    TASK_EVALUATE,
    TASK_EVALUATE_VERSION,
    TASK_EXPIRE_PREDICTION_INPUTS,
    TASK_FOR_KIND,
    TASK_RECONCILE,
    TASK_SWEEP_WEBHOOKS,
    TASK_TUNE,
    job_payload,
)
from workers import evalset, retention, runner, webhooks
from workers.celeryconf import CONFIG, app
from workers.jobdb import default_db
from workers.storage import default_store

# Database or object-store outages: retry with exponential backoff; anything else fails the job.
TRANSIENT = (OperationalError, InterfaceError, S3ConnectionError, ConnectionClosedError, ReadTimeoutError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 5, "retry_backoff_max": 300, "max_retries": 10}


def _run(task: Any, job_id: str) -> str:
    """Every job task is a wake-up: the runner claims the next job in fair order, of any kind."""
    try:
        return runner.run_job(default_db(), default_store(), job_id, TRANSIENT, CONFIG)
    except runner.NotClaimable as exc:
        raise task.retry(countdown=CONFIG.heartbeat_timeout_s, max_retries=None) from exc


@app.task(name=TASK_TUNE, bind=True, **RETRY)
def tune(self: Any, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=TASK_ENSEMBLE, bind=True, **RETRY)
def ensemble(self: Any, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=TASK_EVALUATE, bind=True, **RETRY)
def evaluate(self: Any, job_id: str) -> str:
    return _run(self, job_id)


def send_job(job_id: str, kind: str) -> None:
    app.send_task(TASK_FOR_KIND[kind], kwargs=job_payload(job_id), queue=QUEUE_GPU)


@app.task(name=TASK_RECONCILE)
def reconcile() -> dict[str, list[str]]:
    return runner.reconcile(
        default_db(), send_job, CONFIG.requeue_unclaimed_s, CONFIG, evalset.send_evaluation
    )


def send_delivery(delivery_id: str) -> None:
    app.send_task(TASK_DELIVER_WEBHOOK, kwargs={"delivery_id": delivery_id}, queue=QUEUE_DEFAULT)


# Deliveries the workers create (version.ready, version.failed, job.failed) are sent once committed.
webhooks.install_sender(send_delivery)


@app.task(name=TASK_DELIVER_WEBHOOK, autoretry_for=TRANSIENT, retry_backoff=5, max_retries=3)
def deliver_webhook(delivery_id: str) -> str:
    """One attempt; a failure is scheduled again by the sweep (backoff), not retried here."""
    return webhooks.deliver(webhooks.default_webhook_db(), delivery_id, CONFIG)


@app.task(name=TASK_SWEEP_WEBHOOKS)
def sweep_webhooks() -> list[str]:
    return webhooks.sweep(webhooks.default_webhook_db(), send_delivery)


@app.task(name=TASK_EVALUATE_VERSION, **RETRY)
def evaluate_version(version_id: str) -> str:
    """A ready version scored on its prompt's evaluation set through the serving pool (parity)."""
    return evalset.evaluate_version(default_db(), default_store(), version_id, CONFIG, TRANSIENT)


@app.task(name=TASK_EXPIRE_PREDICTION_INPUTS, **RETRY)
def expire_prediction_inputs() -> int:
    """Periodic: forget the prediction inputs kept past their prompt's retention period."""
    return retention.expire_prediction_inputs(default_db().engine)
