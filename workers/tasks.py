"""Thin named tasks: ids in, the job row is the truth; `workers/runner.py` does the work."""

from __future__ import annotations

from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from botocore.exceptions import ConnectionError as S3ConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError

from workers import retention, runner
from workers.celeryconf import CONFIG, app
from workers.contracts import (
    QUEUE_GPU,
    TASK_ENSEMBLE,
    TASK_EVALUATE,
    TASK_EXPIRE_PREDICTION_INPUTS,
    TASK_FOR_KIND,
    TASK_RECONCILE,
    TASK_TUNE,
    job_payload,
)
from workers.jobdb import default_db
from workers.storage import default_store

# Database or object-store outages: retry with exponential backoff; anything else fails the job.
TRANSIENT = (OperationalError, InterfaceError, S3ConnectionError, ConnectionClosedError, ReadTimeoutError)
RETRY = {"autoretry_for": TRANSIENT, "retry_backoff": 5, "retry_backoff_max": 300, "max_retries": 10}


def _run(task, job_id: str) -> str:
    """Every job task is a wake-up: the runner claims the next job in fair order, of any kind."""
    try:
        return runner.run_job(default_db(), default_store(), job_id, TRANSIENT, CONFIG)
    except runner.NotClaimable as exc:
        raise task.retry(countdown=CONFIG.heartbeat_timeout_s, max_retries=None) from exc


@app.task(name=TASK_TUNE, bind=True, **RETRY)
def tune(self, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=TASK_ENSEMBLE, bind=True, **RETRY)
def ensemble(self, job_id: str) -> str:
    return _run(self, job_id)


@app.task(name=TASK_EVALUATE, bind=True, **RETRY)
def evaluate(self, job_id: str) -> str:
    return _run(self, job_id)


def send_job(job_id: str, kind: str) -> None:
    app.send_task(TASK_FOR_KIND[kind], kwargs=job_payload(job_id), queue=QUEUE_GPU)


@app.task(name=TASK_RECONCILE)
def reconcile() -> dict[str, list[str]]:
    return runner.reconcile(default_db(), send_job, CONFIG.requeue_unclaimed_s, CONFIG)


@app.task(name=TASK_EXPIRE_PREDICTION_INPUTS, **RETRY)
def expire_prediction_inputs() -> int:
    """Periodic: forget the prediction inputs kept past their prompt's retention period."""
    return retention.expire_prediction_inputs(default_db().engine)
