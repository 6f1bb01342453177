"""What the platform and the workers agree on: task names, queues and payloads. Standard library only.

The platform sends tasks by these names; workers register handlers under them. Payloads carry ids
only: the database is the source of truth for a job's spec and state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NotRequired, TypedDict

TASK_TUNE = "softserve.jobs.tune"
TASK_ENSEMBLE = "softserve.jobs.ensemble"
TASK_EVALUATE = "softserve.jobs.evaluate"
TASK_FOR_KIND = {"tune": TASK_TUNE, "ensemble": TASK_ENSEMBLE, "evaluate": TASK_EVALUATE}
# Periodic (Celery beat): re-queue stalled jobs, re-send lost messages. Workers only.
TASK_RECONCILE = "softserve.maintenance.reconcile"

QUEUE_GPU = "gpu"
QUEUE_DEFAULT = "default"

JOB_KINDS = tuple(TASK_FOR_KIND)
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
METHODS = ("prompt", "ptuning", "prefix")
INITS = ("random", "vocab", "labels", "text")


class JobPayload(TypedDict):
    job_id: str


def job_payload(job_id: str) -> JobPayload:
    return {"job_id": str(job_id)}


# --- serving: the request stream of each base model, and where a reply goes ---------------------
SERVING_GROUP = "serving"
SERVING_REPLY_TTL_S = 300
SERVING_STATUSES = ("ok", "expired", "error")
# Why a request failed (a reply's `code` when its status is "error"), and the one message a tenant is shown
# for it: stable text, never an exception's. The detail stays in the worker's log under the request id.
SERVING_ERRORS = {
    "internal": "The serving pool failed on this request.",
    "too_large": (
        "An input needs more model positions than one batch holds (SERVING_MAX_BATCH_TOKENS / "
        "SERVING_MAX_BATCH_ROWS, counting a row per label for multi-token labels); shorten it."
    ),
    "invalid_input": "The prompt cannot be applied to this input.",
    "prompt_unavailable": "The prompt version cannot be loaded by the serving pool.",
    "model_unavailable": "The serving pool cannot load this prompt's base model.",
    "given_up": "Serving workers kept stopping while holding this request; it is not retried.",
}


def serving_stream(base_model: str) -> str:
    """The Redis stream of one base model's requests; every worker of that model reads it."""
    return f"softserve:serve:{base_model}"


def serving_tenant_key(base_model: str, tenant_id: str) -> str:
    """A sorted set of one tenant's requests queued or in flight for one base model (score: when the
    entry lapses, so one a crashed web process never removed stops counting by itself)."""
    return f"softserve:serve-tenant:{base_model}:{tenant_id}"


def serving_reply_key(request_id: str) -> str:
    """A list holding the one reply of a request (the caller pops it)."""
    return f"softserve:reply:{request_id}"


def serving_replied_key(request_id: str) -> str:
    """Set once, by the first worker that answers a request: a re-delivered copy is never answered."""
    return f"softserve:replied:{request_id}"


class ServeRequest(TypedDict):
    request_id: str
    tenant_id: str
    prompt: str  # the prompt's name, for metrics and logs
    version: int
    version_id: str
    artifact_key: str
    artifact_sha256: str
    base_model: str
    inputs: list[dict[str, str]]
    enqueued_at: float  # epoch seconds
    deadline: float  # epoch seconds; a request not started by then is answered "expired"
    max_new_tokens: NotRequired[int]  # generation: this request's limit (never above the worker's)


class ServeReply(TypedDict, total=False):
    request_id: str
    status: str  # one of SERVING_STATUSES
    outputs: list[dict]
    code: str  # status "error": a key of SERVING_ERRORS
    error: str  # status "error": SERVING_ERRORS[code], never internal detail
    worker: str
    # Milliseconds: enqueue to the start of its batch, and the batch's own time (for Server-Timing).
    queue_ms: float
    batch_ms: float


@dataclass(frozen=True)
class StorageLocation:
    """Where objects live, one rule for the platform and the workers: an S3 bucket when S3_ENDPOINT_URL
    is set (or S3_USE_AWS=1, for AWS's own endpoint), else the folder STORAGE_DIR."""

    folder: str | None
    bucket: str = "softserve"
    endpoint_url: str | None = None
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_folder: str) -> StorageLocation:
        endpoint = env.get("S3_ENDPOINT_URL", "")
        if endpoint or env.get("S3_USE_AWS", "") == "1":
            return cls(
                folder=None,
                bucket=env.get("S3_BUCKET", "softserve"),
                endpoint_url=endpoint or None,
                region=env.get("S3_REGION", "us-east-1"),
            )
        return cls(folder=env.get("STORAGE_DIR", default_folder))
