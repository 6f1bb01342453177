"""What the platform and the workers agree on: task names, queues and payloads. Standard library only.

The platform sends tasks by these names; workers register handlers under them. Payloads carry ids
only: the database is the source of truth for a job's spec and state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

# Each method's default settings and time budget (standard library only too).
from common import settings
from common.defaults import DEFAULTS, defaults_for
from common.settings import read_settings, setting

# TaskType belongs to the vocabulary below but is defined with TaskSpec (common.task cannot import this
# module: this one imports it). Templates have one parser, the engine's (standard library only, so this
# stays torch-free). Both re-exported here for the platform's imports.
from common.task import TaskType as TaskType
from common.task import template_fields as template_fields


# --- the vocabulary: every state and kind, one StrEnum each (Django's choices derive from these) -------
class JobKind(StrEnum):
    TUNE = "tune"
    ENSEMBLE = "ensemble"
    EVALUATE = "evaluate"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A job in one of these is live: queued (counted by the queued-jobs quota) or running (by the
# concurrent-jobs quota, at the claim).
JOB_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# A job in one of these has ended: it never changes status again.
JOB_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# A job's metric_history keeps at most this many step points (loss every few seconds, dev evaluations):
# past it the workers thin older points evenly (workers/curves.py), so a day-long job's row stays small.
METRIC_HISTORY_MAX_POINTS = 500


class VersionStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ParityStatus(StrEnum):
    """A ready version scored on its prompt's evaluation set through the serving pool (the path callers
    use), against its training-time dev score: a gap over the tolerance is a train/serve parity failure."""

    NONE = "none"  # the prompt pins no evaluation set (or the version predates it)
    PENDING = "pending"  # queued for, or being scored on, the evaluation set
    PASSED = "passed"
    FAILED = "parity_failed"
    ERROR = "error"  # the evaluation itself could not run (the message says why); never gates silently


class PredictionOutcome(StrEnum):
    """How one prediction request ended, as the prediction log keeps it (live per-version figures)."""

    OK = "ok"
    ERROR = "error"


class WebhookEvent(StrEnum):
    """What a team's webhooks may subscribe to; each delivery's `event`."""

    VERSION_READY = "version.ready"
    VERSION_FAILED = "version.failed"
    ALIAS_MOVED = "alias.moved"
    GATE_FAILED = "gate.failed"
    CANARY_ROLLED_BACK = "canary.rolled_back"
    JOB_FAILED = "job.failed"


# A hook's test delivery (POST /api/v1/webhooks/{id}/test): sent to that hook alone, whatever it subscribes
# to, so it is not a WebhookEvent a hook could subscribe to; it never counts towards disabling a hook.
WEBHOOK_TEST_EVENT = "ping"


def webhook_envelope(event: str, tenant_id: str, created_at: str, data: dict[str, Any]) -> dict[str, Any]:
    """Every delivery's body, from the platform (webhooks/events.py) and the workers alike."""
    return {"event": str(event), "tenant": str(tenant_id), "created_at": created_at, "data": data}


class DeliveryStatus(StrEnum):
    """A webhook delivery: waiting for its (next) attempt, delivered (a 2xx), or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class FailureReason(StrEnum):
    """Why a job failed, as a category an operator can group by; the job's `error` says it in words."""

    BAD_INPUT = "bad_input"  # data or hyper-parameters the engine refuses (the message says which)
    DATA_MISSING = "data_missing"  # the dataset version or its stored rows are gone
    OUT_OF_MEMORY = "out_of_memory"
    WORKER_LOST = "worker_lost"  # the job stopped its worker too many times (JobPolicy.max_attempts)
    INTERNAL = "internal"  # anything unexpected: details in the worker's log and `error_detail` only


class Method(StrEnum):
    PROMPT = "prompt"
    PTUNING = "ptuning"
    PREFIX = "prefix"


class Init(StrEnum):
    RANDOM = "random"
    VOCAB = "vocab"
    LABELS = "labels"
    TEXT = "text"


class StopReason(StrEnum):
    """Why training stopped, as a job's result and a version's metrics keep it (`stop_reason`)."""

    STEPS = "steps"  # it ran its step count
    EARLY_STOPPING = "early stopping"  # `patience` dev evaluations without a gain
    TIME_BUDGET = "time budget"  # the attempt's wall-clock budget ran out
    STOPPED = "stopped"  # stopped from outside: a cancel, or a worker that lost the job


# Stop reasons that end an attempt, not the training: a resumed run goes on from them.
RESUMABLE_STOPS = (StopReason.STOPPED, StopReason.TIME_BUDGET)


class RunOutcome(StrEnum):
    """How one delivery of a job (or evaluation) message ended on a worker: the Celery task's return value
    and the `outcome` label of softserve_worker_jobs_finished_total. The first three are the job's status."""

    SUCCEEDED = JobStatus.SUCCEEDED.value
    FAILED = JobStatus.FAILED.value
    CANCELLED = JobStatus.CANCELLED.value
    MISSING = "missing"  # the message named a job (or version) that no longer exists
    LEFT_ALONE = "left alone"  # finished or running elsewhere: followed by its status in parentheses
    LOST = "lost"  # another worker took the job over while this one ran it: nothing recorded
    RETRY = "retry"  # a transient error: handed back to the queue, Celery retries
    ERROR = "error"  # ended by an exception that escaped (logged with its traceback)

    @classmethod
    def left_alone(cls, status: str) -> str:
        """`left alone (running)`: the message is a wake-up for a job that needs none."""
        return f"{cls.LEFT_ALONE} ({status})"


class ServingMode(StrEnum):
    """Where the platform's predictions are computed."""

    EMBEDDED = "embedded"  # a batching loop inside each web process (loads the model there)
    REDIS = "redis"  # the base model's Redis stream, answered by `python -m workers.serving` workers


class ServingStatus(StrEnum):
    """A serving reply's status."""

    OK = "ok"
    EXPIRED = "expired"
    ERROR = "error"


class AuditAction(StrEnum):
    """What an audit row says happened (`AuditEvent.action`): written by the platform's actions, read
    back by the alias history and the audit API."""

    TENANT_CREATE = "tenant.create"
    KEY_CREATE = "key.create"
    KEY_REVOKE = "key.revoke"
    MEMBER_INVITE = "member.invite"
    MEMBER_UNINVITE = "member.uninvite"
    MEMBER_ACCEPT = "member.accept"
    MEMBER_DECLINE = "member.decline"
    MEMBER_ROLE = "member.role"
    MEMBER_REMOVE = "member.remove"
    DATASET_VERSION_CREATE = "dataset.version.create"
    DATASET_DELETE = "dataset.delete"
    PROMPT_CREATE = "prompt.create"
    PROMPT_UPDATE = "prompt.update"
    PROMPT_DELETE = "prompt.delete"
    PROMPT_EVAL_SET = "prompt.eval_set"
    VERSION_EVALUATE = "version.evaluate"
    ALIAS_MOVE = "alias.move"  # the routing changed: the alias history lists these
    ALIAS_UPDATE = "alias.update"  # policy, protection or shadow only
    ALIAS_DELETE = "alias.delete"
    ALIAS_GATE_FAILED = "alias.gate_failed"
    ALIAS_ROLLBACK = "alias.rollback"  # the canary watch took a canary out of a split
    JOB_CREATE = "job.create"
    JOB_CANCEL = "job.cancel"
    JOB_RETRY = "job.retry"
    JOB_REQUEUE = "job.requeue"
    FEEDBACK_DATASET = "feedback.dataset"
    WEBHOOK_CREATE = "webhook.create"
    WEBHOOK_UPDATE = "webhook.update"
    WEBHOOK_DELETE = "webhook.delete"
    WEBHOOK_TEST = "webhook.test"


def choices(vocabulary: type[StrEnum], titled: bool = False) -> list[tuple[str, str]]:
    """Django `choices` for a vocabulary (`titled`: labels as Django's TextChoices spell them)."""
    return [(m.value, m.name.replace("_", " ").title() if titled else m.value) for m in vocabulary]


TASK_TUNE = "softserve.jobs.tune"
TASK_ENSEMBLE = "softserve.jobs.ensemble"
TASK_EVALUATE = "softserve.jobs.evaluate"
TASK_FOR_KIND: dict[str, str] = {
    JobKind.TUNE: TASK_TUNE,
    JobKind.ENSEMBLE: TASK_ENSEMBLE,
    JobKind.EVALUATE: TASK_EVALUATE,
}
# Periodic (Celery beat): re-queue stalled jobs, re-send lost messages. Workers only.
TASK_RECONCILE = "softserve.maintenance.reconcile"
# A version that became ready, scored on its prompt's evaluation set through the serving path.
TASK_EVALUATE_VERSION = "softserve.versions.evaluate_set"
# Webhooks: deliver one delivery row (retried with backoff); periodic: re-send deliveries that are due.
TASK_DELIVER_WEBHOOK = "softserve.webhooks.deliver"
TASK_SWEEP_WEBHOOKS = "softserve.webhooks.sweep"
# Periodic: forget the inputs that prediction records keep past their prompt's retention period.
TASK_EXPIRE_PREDICTION_INPUTS = "softserve.predictions.expire_inputs"

QUEUE_GPU = "gpu"
QUEUE_DEFAULT = "default"

JOB_KINDS = tuple(JobKind)
JOB_STATUSES = tuple(JobStatus)
METHODS = tuple(Method)
INITS = tuple(Init)


def inits_for(task_type: str) -> tuple[Init, ...]:
    """The inits a prompt of `task_type` can train from: `labels` needs class-label words."""
    return tuple(i for i in Init if i != Init.LABELS or task_type == TaskType.CLASSIFICATION)


@dataclass(frozen=True)
class JobPolicy:
    """The GPU-time limits both sides enforce: the platform validates job requests and cancels against
    them, the workers stop, fail and take over jobs by them. From SOFTSERVE_* variables (.env.example)."""

    # Wall-clock budget of a job that names no max_minutes, and the most one may ask for. The default is
    # the method's (common/defaults.py: DEFAULTS, from measurements); an operator who sets
    # SOFTSERVE_JOB_DEFAULT_MINUTES replaces it for every method. The budget counts every attempt (a
    # resumed job does not start its clock again); when it runs out, training stops and the job keeps its
    # best prompt so far.
    job_default_minutes: float | None = setting(settings.JOB_DEFAULT_MINUTES)
    job_max_minutes: float = setting(settings.JOB_MAX_MINUTES)
    # A job whose worker stops (killed, crashed) this many times in a row without the job reaching a new
    # checkpoint ends failed instead of being handed to yet another worker.
    job_max_attempts: int = setting(settings.JOB_MAX_ATTEMPTS)
    # A running job that has not written a heartbeat for this long has lost its worker.
    heartbeat_timeout_s: float = setting(settings.HEARTBEAT_TIMEOUT_S)

    def __post_init__(self) -> None:
        if self.job_default_minutes is not None:
            if not 0 < self.job_default_minutes <= self.job_max_minutes:
                raise ValueError("SOFTSERVE_JOB_DEFAULT_MINUTES must be > 0 and ≤ SOFTSERVE_JOB_MAX_MINUTES.")
        else:
            over = {m: d.max_minutes for m, d in DEFAULTS.items() if d.max_minutes > self.job_max_minutes}
            if over:
                raise ValueError(
                    f"SOFTSERVE_JOB_MAX_MINUTES={self.job_max_minutes:g} is below the default budget of "
                    f"{', '.join(f'{m} ({v:g} min)' for m, v in over.items())}; raise it, or set "
                    "SOFTSERVE_JOB_DEFAULT_MINUTES to a budget for every method."
                )
        if self.job_max_attempts < 1 or self.heartbeat_timeout_s <= 0:
            raise ValueError(
                "SOFTSERVE_JOB_MAX_ATTEMPTS ≥ 1 and SOFTSERVE_HEARTBEAT_TIMEOUT_S > 0 are required."
            )

    def default_minutes(self, method: str, kind: str) -> float:
        """The budget of a training job that names no max_minutes (an ensemble job: the ensemble's)."""
        if self.job_default_minutes is not None:
            return self.job_default_minutes
        return defaults_for(method, ensemble=kind == JobKind.ENSEMBLE).max_minutes

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobPolicy:
        """From the SOFTSERVE_JOB_* and SOFTSERVE_HEARTBEAT_TIMEOUT_S declarations (common/settings.py)."""
        return read_settings(cls, env)


class JobPayload(TypedDict):
    job_id: str


def job_payload(job_id: str) -> JobPayload:
    return {"job_id": str(job_id)}


# --- serving: the request stream of each base model, and where a reply goes ---------------------
SERVING_GROUP = "serving"
SERVING_REPLY_TTL_S = 300
SERVING_STATUSES = tuple(ServingStatus)


class ServingError(StrEnum):
    """Why a request failed: a reply's `code` when its status is "error"."""

    INTERNAL = "internal"
    TOO_LARGE = "too_large"
    INVALID_INPUT = "invalid_input"
    PROMPT_UNAVAILABLE = "prompt_unavailable"
    MODEL_UNAVAILABLE = "model_unavailable"
    GIVEN_UP = "given_up"


# The one message a tenant is shown for each code: stable text, never an exception's. The detail stays in
# the worker's log under the request id.
SERVING_ERRORS: dict[str, str] = {
    ServingError.INTERNAL: "The serving pool failed on this request.",
    ServingError.TOO_LARGE: (
        "An input needs more model positions than one batch holds (SERVING_MAX_BATCH_TOKENS / "
        "SERVING_MAX_BATCH_ROWS, counting a row per label for multi-token labels); shorten it."
    ),
    ServingError.INVALID_INPUT: "The prompt cannot be applied to this input.",
    ServingError.PROMPT_UNAVAILABLE: "The prompt version cannot be loaded by the serving pool.",
    ServingError.MODEL_UNAVAILABLE: "The serving pool cannot load this prompt's base model.",
    ServingError.GIVEN_UP: "Serving workers kept stopping while holding this request; it is not retried.",
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


class ShadowTarget(TypedDict):
    version: int
    version_id: str
    artifact_key: str
    artifact_sha256: str


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
    # An alias's shadow version: scores the same inputs in the same batch; the caller gets the primary's
    # outputs, the reply carries the shadow's as `shadow_outputs` (for agreement figures).
    shadow: NotRequired[ShadowTarget]


class ServeReply(TypedDict, total=False):
    request_id: str
    status: str  # one of SERVING_STATUSES
    outputs: list[dict[str, Any]]
    code: str  # status "error": a key of SERVING_ERRORS
    error: str  # status "error": SERVING_ERRORS[code], never internal detail
    worker: str
    # Milliseconds: enqueue to the start of its batch, and the batch's own time (for Server-Timing).
    queue_ms: float
    batch_ms: float
    # The request named a shadow: its outputs (absent if the shadow failed).
    shadow_outputs: list[dict[str, Any]]


@dataclass(frozen=True)
class StorageLocation:
    """Where objects live, one rule for the platform and the workers: an S3 bucket when S3_ENDPOINT_URL
    is set (or S3_USE_AWS=1, for AWS's own endpoint), else the folder STORAGE_DIR."""

    folder: str | None
    bucket: str = "softserve"
    endpoint_url: str | None = None
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageLocation:
        """The one rule, for the web, its /readyz, the tuning and the serving workers alike: the bucket
        when S3 is configured, else STORAGE_DIR, else the folder `storage` under SOFTSERVE_VAR_DIR."""
        endpoint = settings.S3_ENDPOINT_URL.read(env)
        if endpoint or settings.S3_USE_AWS.read(env):
            return cls(
                folder=None,
                bucket=settings.S3_BUCKET.read(env),
                endpoint_url=endpoint or None,
                region=settings.S3_REGION.read(env),
            )
        return cls(folder=settings.STORAGE_DIR.read(env) or str(settings.var_dir(env) / "storage"))
