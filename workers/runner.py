"""Running one claimed job: data and checkpoints from storage, the engine, progress and the outcome
to the job row. Called by the thin Celery tasks in `workers/tasks.py`; no Celery here.

What a tenant reads in a failed job's `error` is a sentence this module writes (or the engine's own
message about their data or hyper-parameters), never an exception's text: an unexpected exception is
logged with its traceback and kept in the operator-only `error_detail`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

import structlog

from common.contracts import (
    FailureReason,
    JobKind,
    JobStatus,
    Method,
    ParityStatus,
    RunOutcome,
    VersionStatus,
)
from common.defaults import DEFAULT_PRECISION, JOB_DEFAULTS, PROMPT_LENGTH, STEPS, eval_every_for
from common.errors import EngineError
from common.formats import PEFT_ZIP, peft_unavailable
from common.task import Example, TaskSpec
from workers import evalset, fleet
from workers import metrics as prom  # `metrics` is the name of a job's figures here
from workers.config import WorkerConfig, worker_config
from workers.curves import CurvePoints
from workers.engine.artifacts.artifact import PromptArtifact, artifact_bytes, artifact_from_bytes
from workers.engine.artifacts.inspection import version_inspection
from workers.engine.artifacts.interop import export_peft_zip
from workers.engine.base_model import FrozenModel, load_base_model
from workers.engine.inference.evaluation import evaluate
from workers.engine.inference.predict import LoadedPrompt
from workers.engine.precision import resolved_precision
from workers.engine.training.checkpoint import BankState
from workers.engine.training.config import TrainConfig
from workers.engine.training.pipeline import train_task
from workers.engine.training.results import Progress
from workers.jobdb import JobContext, JobDB
from workers.storage import ObjectMissing, ObjectStore, prompt_key

logger = logging.getLogger(__name__)
CONFIG = worker_config()
# The shortest time budget handed to the trainer: one more step, then it keeps its best prompt.
_LAST_STEP_MINUTES = 1e-3


class JobFailed(Exception):
    """The job cannot succeed as asked (bad data, bad hyper-parameters, no memory): fail it, no retry.
    The message is for the tenant."""

    def __init__(self, message: str, reason: FailureReason = FailureReason.BAD_INPUT):
        super().__init__(message)
        self.reason = reason


class NotClaimable(Exception):
    """The job waits for its tenant's running jobs (its quota); try again later."""


class JobLost(Exception):
    """This worker no longer owns the job (it was re-queued while this one stalled): record nothing."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@cache
def base_model(model_id: str) -> FrozenModel:
    """Loaded once per worker process, on its first job (never in a pool's parent: no CUDA before fork)."""
    import torch

    return load_base_model(model_id, device="cuda" if torch.cuda.is_available() else None)


class Beat:
    """A background heartbeat: writes the latest progress, new dev evaluations and the job's worker time
    every few seconds, and turns a cancel request or a lost claim into `should_stop`."""

    def __init__(
        self,
        db: JobDB,
        context: JobContext,
        worker: str,
        config: WorkerConfig,
        started: float | None = None,
    ):
        self.db, self.job_id, self.worker, self.config = db, context.job["id"], worker, config
        # Worker time of the earlier attempts; this attempt's (from its claim: `started`, time.monotonic())
        # is added as it runs.
        self.gpu_seconds_before = float(context.job.get("gpu_seconds") or 0.0)
        self._started = time.monotonic() if started is None else started
        self.progress: dict[str, Any] | None = None
        self.pending_history: list[dict[str, Any]] = []
        self.cancelled = self.lost = False
        self._lock, self._done = threading.Lock(), threading.Event()
        self.failures = 0
        # The thread logs with the job's context (job_id, attempt, worker) bound by run_job.
        thread_context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=thread_context.run, args=(self._loop,), name=f"heartbeat-{self.job_id}", daemon=True
        )

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def gpu_seconds(self) -> float:
        return round(self.gpu_seconds_before + time.monotonic() - self._started, 3)

    def update(self, progress: dict[str, Any], history: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.progress = {**(self.progress or {}), **progress}
            if history:
                self.pending_history.append(history)

    def flush(self) -> None:
        with self._lock:
            progress, history, self.pending_history = self.progress, self.pending_history, []
        try:
            owned, cancel = self.db.heartbeat(self.job_id, self.worker, progress, history, self.gpu_seconds())
        except Exception:
            # A database blip: the next beat tries again and the reconciler allows a margin, but never
            # silently: logged with its traceback and counted (softserve_worker_heartbeat_failures_total).
            with self._lock:
                self.pending_history = history + self.pending_history
            self.failures += 1
            prom.HEARTBEAT_FAILURES.labels(kind="job").inc()
            logger.warning("job heartbeat failed (%d so far)", self.failures, exc_info=True)
            return
        self.lost = self.lost or not owned
        self.cancelled = self.cancelled or cancel

    def _loop(self) -> None:
        while not self._done.wait(self.config.heartbeat_s):
            self.flush()

    def should_stop(self) -> bool:
        return self.cancelled or self.lost


def _examples(store: ObjectStore, context: JobContext) -> tuple[list[Example], list[Example]]:
    if context.dataset is None:
        raise JobFailed("The job's dataset version was deleted.", FailureReason.DATA_MISSING)
    fields = list(context.dataset["columns"])
    train: list[Example] = []
    dev: list[Example] = []
    try:
        data = store.get_bytes(context.dataset["storage_key"])
    except ObjectMissing as exc:
        logger.error("job %s: dataset rows missing: %s", context.job["id"], exc)
        raise JobFailed(
            "The dataset's stored rows are missing; upload the dataset again.", FailureReason.DATA_MISSING
        ) from exc
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            example = Example({name: row[name] for name in fields}, row["label"])
            (dev if row.get("split") == "dev" else train).append(example)
    return train, dev


def _spec(context: JobContext) -> TaskSpec:
    prompt = context.prompt
    return TaskSpec(
        prompt["task_type"], prompt["template"], list(prompt["labels"]), dict(prompt["verbalizer"] or {})
    )


def budget_minutes(spec: dict[str, Any], kind: str, config: WorkerConfig) -> float:
    """The job's wall-clock budget: its own max_minutes (the platform writes one into every training
    job's spec), else its method's default; never above the maximum."""
    policy = config.policy
    default = policy.default_minutes(spec.get("method", Method.PROMPT), kind)
    return min(float(spec.get("max_minutes") or default), policy.job_max_minutes)


def _train_config(spec: dict[str, Any], kind: str, max_minutes: float) -> TrainConfig:
    try:
        return TrainConfig(
            method=spec.get("method", Method.PROMPT),
            prompt_length=spec.get("prompt_length", PROMPT_LENGTH),
            # Missing (a spec written before the platform recorded them): the method's defaults.
            init=spec.get("init"),
            init_text=spec.get("init_text"),
            optimizer=spec.get("optimizer"),
            learning_rate=spec.get("learning_rate"),
            batch_size=spec.get("batch_size", JOB_DEFAULTS.batch_size),
            steps=spec.get("steps", STEPS),
            eval_every=spec.get("eval_every", eval_every_for(spec.get("steps", STEPS))),
            max_minutes=max_minutes,
            ensemble_size=spec.get("members", JOB_DEFAULTS.members) if kind == JobKind.ENSEMBLE else 1,
            seed=spec.get("seed", JOB_DEFAULTS.seed),
        )
    except (EngineError, ValueError) as exc:
        raise JobFailed(f"Bad hyper-parameters: {exc}") from exc
    except TypeError as exc:  # a spec the platform would not write: its text is Python's, not the tenant's
        raise JobFailed("Bad hyper-parameters: the job's spec has a value of the wrong type.") from exc


def _keys(context: JobContext) -> tuple[str, str]:
    version = context.version
    base = (version["tenant_id"], version["prompt_id"], version["number"])
    return prompt_key(*base, "prompt.safetensors"), prompt_key(*base, "checkpoint.safetensors")


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def _crash_if_poisoned(spec: dict[str, Any], config: WorkerConfig) -> None:
    """Tests only (SOFTSERVE_TEST_CRASH_SEED, off by default): die the way a native crash does."""
    if config.test_crash_seed >= 0 and spec.get("seed") == config.test_crash_seed:
        logger.error("SOFTSERVE_TEST_CRASH_SEED: this job kills its worker process (a test's poison job)")
        os.kill(os.getpid(), signal.SIGKILL)


def run_training(
    db: JobDB,
    store: ObjectStore,
    context: JobContext,
    kind: str,
    worker: str,
    config: WorkerConfig = CONFIG,
    started: float | None = None,
) -> str:
    """tune / ensemble: train (resuming from the last checkpoint) within the job's time budget, store the
    artifact, mark the version.

    The budget counts from the claim (`started`, time.monotonic()): reading the data, loading the model
    (a worker's first job), training, the final evaluation and everything after it. The trainer gets what
    is left when it starts and keeps back the time its final work will take
    (workers/engine/training/budget.py)."""
    started = time.monotonic() if started is None else started
    job_id = context.job["id"]
    spec = _spec(context)
    artifact_key, checkpoint_key = _keys(context)
    train, dev = _examples(store, context)
    fm = base_model(context.prompt["base_model"])
    resume = None
    with contextlib.suppress(ObjectMissing):
        resume = BankState.from_bytes(store.get_bytes(checkpoint_key))
    with Beat(db, context, worker, config, started) as beat:
        train_config = _start_attempt(context, kind, config, beat, fm, resume, started)
        on_progress, on_checkpoint = _reporters(beat, store, checkpoint_key, config, resume)
        try:
            artifact = train_task(
                fm,
                spec,
                train,
                dev,
                train_config,
                on_progress,
                beat.should_stop,
                resume,
                on_checkpoint,
                config.checkpoint_every,
            )
        except EngineError as exc:
            raise JobFailed(str(exc)) from exc
        except (RuntimeError, MemoryError) as exc:
            if _out_of_memory(exc):
                raise JobFailed(
                    f"Out of memory at batch size {train_config.batch_size}: retry with a smaller batch_size "
                    f"(e.g. {max(1, train_config.batch_size // 2)}) or a shorter prompt_length.",
                    FailureReason.OUT_OF_MEMORY,
                ) from exc
            raise
        beat.flush()
    if beat.lost:
        raise JobLost(job_id)
    if beat.cancelled:
        db.finish(
            job_id,
            worker,
            JobStatus.CANCELLED,
            {"stopped_at_step": artifact.metrics["steps_run"]},
            version={"id": context.version["id"], "status": VersionStatus.CANCELLED},
            gpu_seconds=beat.gpu_seconds(),
        )
        return JobStatus.CANCELLED
    rows = {"train_rows": len(train), "dev_rows": len(dev)}
    return _record_version(db, store, context, worker, beat, fm, artifact, artifact_key, rows)


def _start_attempt(
    context: JobContext,
    kind: str,
    config: WorkerConfig,
    beat: Beat,
    fm: FrozenModel,
    resume: BankState | None,
    started: float,
) -> TrainConfig:
    """The attempt's training settings, with what is left of the job's budget; the claim and the resume
    point on record before the first step."""
    # The budget counts every attempt. The trainer counts the time up to its checkpoint itself
    # (resume.elapsed_s); what the earlier attempts spent beyond that (loading, steps lost to a crash)
    # comes off the top, so a resumed job never gets its clock back, and so does what this attempt
    # spent before training (the claim, the data, the model on a worker's first job).
    budget_s = 60 * budget_minutes(context.job["spec"], kind, config)
    lost_s = max(0.0, beat.gpu_seconds_before - (resume.elapsed_s if resume else 0.0))
    lost_s += time.monotonic() - started
    left_minutes = max((budget_s - lost_s) / 60, _LAST_STEP_MINUTES)
    train_config = _train_config(context.job["spec"], kind, left_minutes)
    import torch  # loaded with the model already; here for the figures that decide training speed

    logger.info(
        "training starts",
        extra={
            "torch_threads": torch.get_num_threads(),
            "precision": resolved_precision(train_config.precision, fm.device),
            "budget_left_s": round(60 * left_minutes, 1),
            "before_training_s": round(time.monotonic() - started, 1),
        },
    )
    start = resume.step if resume else 0
    resumed = {"event": "resumed", "step": start, "attempt": context.job["attempts"]}
    beat.update(
        {"step": start, "total_steps": train_config.steps, "resumed_from": start},
        resumed if resume else None,
    )
    beat.flush()  # the claim and the resume point are on record before the first step
    _crash_if_poisoned(context.job["spec"], config)
    return train_config


def _reporters(
    beat: Beat, store: ObjectStore, checkpoint_key: str, config: WorkerConfig, resume: BankState | None
) -> tuple[Callable[[Progress], None], Callable[[BankState], None]]:
    """The trainer's callbacks: progress into the heartbeat (and the step metrics), checkpoints into
    storage while the job is still this worker's."""
    clock = {"step": resume.step if resume else 0, "at": time.perf_counter()}
    curve = CurvePoints(config.curve_every_s)

    def on_progress(p: Progress) -> None:
        now = time.perf_counter()
        if p.step > clock["step"]:
            prom.STEP_SECONDS.observe((now - clock["at"]) / (p.step - clock["step"]))
        clock.update(step=p.step, at=now)
        prom.TOKENS_PER_SECOND.set(p.tokens_per_s)
        figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(p).items()}
        # Memory only: the heartbeat thread writes progress and new points every heartbeat_s.
        beat.update(figures, curve.point(p, now))

    def on_checkpoint(state: BankState) -> None:
        # Only while the job is still this worker's: a worker that stalled and was taken over must
        # not overwrite the new owner's checkpoint (least of all with its own stopped state).
        beat.flush()
        if beat.lost:
            return
        with prom.CHECKPOINT_SECONDS.time():
            store.put_bytes(checkpoint_key, state.to_bytes())
        beat.update({"checkpoint_step": state.step})

    return on_progress, on_checkpoint


def _record_version(
    db: JobDB,
    store: ObjectStore,
    context: JobContext,
    worker: str,
    beat: Beat,
    fm: FrozenModel,
    artifact: PromptArtifact,
    artifact_key: str,
    rows: dict[str, int],
) -> str:
    """A trained job's outcome: the artifact (and its PEFT zip) stored, the version ready, the job
    succeeded, the version's evaluation queued where its prompt pins a set."""
    job_id = context.job["id"]
    data = artifact_bytes(artifact)
    store.put_bytes(artifact_key, data)
    peft_key = _store_peft(store, context, artifact, fm)
    metrics = {**artifact.metrics, **rows}
    version = {
        "id": context.version["id"],
        "status": VersionStatus.READY,
        "artifact_key": artifact_key,
        "artifact_sha256": hashlib.sha256(data).hexdigest(),
        "peft_key": peft_key,
        # Computed here, next to the model: the platform never imports torch.
        "inspection": version_inspection(fm, artifact),
        "metrics": metrics,
    }
    # A prompt that pins an evaluation set has each new version scored on it through the serving pool.
    scored = bool(context.prompt.get("eval_dataset_version_id"))
    if scored:  # queued_at: the reconciler re-sends an evaluation whose message was lost
        version["parity"] = ParityStatus.PENDING
        version["evaluation"] = {"queued_at": datetime.now(UTC).isoformat(timespec="seconds")}
    outcome = db.finish(
        job_id, worker, JobStatus.SUCCEEDED, metrics, version=version, gpu_seconds=beat.gpu_seconds()
    )
    if outcome is None:
        raise JobLost(job_id)
    if outcome == JobStatus.SUCCEEDED and scored:
        _send_evaluation(context.version["id"])
    if outcome == JobStatus.CANCELLED:  # cancelled after the last heartbeat: cancel wins
        for key in filter(None, (artifact_key, peft_key)):
            with contextlib.suppress(ObjectMissing):
                store.delete(key)
    return outcome


def _send_evaluation(version_id: str) -> None:
    """The version is ready whatever happens here: an unsent message leaves it pending, and the
    reconciler re-sends it (`reconcile`; or re-run it: POST .../versions/{n}/evaluate)."""
    try:
        evalset.send_evaluation(version_id)
    except Exception:
        logger.exception("version %s is ready but its evaluation was not queued", version_id)


def _store_peft(store: ObjectStore, context: JobContext, artifact: PromptArtifact, fm: FrozenModel) -> str:
    """The version's PEFT adapter zip next to its artifact; "" (no download) where PEFT cannot hold it
    (a prefix, an ensemble: `peft_unavailable` says why, in the platform's words too)."""
    if peft_unavailable(artifact.layout_method, artifact.ensemble_size):
        return ""
    version = context.version
    key = prompt_key(version["tenant_id"], version["prompt_id"], version["number"], PEFT_ZIP)
    store.put_bytes(key, export_peft_zip(artifact, fm.is_encoder_decoder))
    return key


def run_evaluation(
    db: JobDB, store: ObjectStore, context: JobContext, worker: str, config: WorkerConfig = CONFIG
) -> str:
    """evaluate: score a ready version on a dataset version's dev rows (another dataset: domain transfer)."""
    job_id = context.job["id"]
    _, dev = _examples(store, context)
    # _examples fails the job when its dataset version is gone, so here it is present.
    dataset = cast(dict[str, Any], context.dataset)
    fm = base_model(context.prompt["base_model"])
    try:
        stored = store.get_bytes(context.version["artifact_key"])
    except ObjectMissing as exc:
        raise JobFailed("The version's stored prompt is missing.", FailureReason.DATA_MISSING) from exc
    artifact: PromptArtifact = artifact_from_bytes(stored, "the stored prompt")
    with Beat(db, context, worker, config) as beat:
        beat.update({"rows": len(dev)})
        try:
            artifact.check_fits(fm)
            prompt = LoadedPrompt.from_artifact(fm, artifact)
            # Training's precision policy; an ensemble's members are scored in the same pass.
            metrics = evaluate(fm, prompt, dev, detail=True, precision=DEFAULT_PRECISION)
            members = (
                [
                    evaluate(fm, prompt.member(k), dev, precision=DEFAULT_PRECISION)
                    for k in range(len(prompt.members))
                ]
                if len(prompt.members) > 1 and "members" not in metrics
                else []
            )
        except EngineError as exc:
            raise JobFailed(str(exc)) from exc
        beat.flush()
    if beat.lost:
        raise JobLost(job_id)
    result = {**metrics, "dataset_version": dataset["id"], "evaluated_at": round(time.time())}
    if members:
        result["members"] = members
    outcome = db.finish(job_id, worker, JobStatus.SUCCEEDED, result, gpu_seconds=beat.gpu_seconds())
    if outcome is None:
        raise JobLost(job_id)
    if outcome == JobStatus.SUCCEEDED:
        db.merge_version_metrics(context.version["id"], dataset["id"], result)
    return outcome


def internal_error_message(job_id: str) -> str:
    """What the tenant reads for a failure that is not theirs: no exception text, a reference instead."""
    return (
        f"The job stopped on an internal error on the worker (job {job_id}); the operators have the "
        "details. Retrying the job may help."
    )


def _fail(
    db: JobDB,
    version_id: str | None,
    job_id: str,
    worker: str,
    message: str,
    reason: FailureReason,
    detail: str = "",
) -> None:
    version = {"id": version_id, "status": VersionStatus.FAILED} if version_id else None
    db.finish(
        job_id,
        worker,
        JobStatus.FAILED,
        error=message,
        version=version,
        error_code=reason,
        error_detail=detail,
    )


def _waited_s(queued_at: datetime | None) -> float | None:
    if queued_at is None:
        return None
    if queued_at.tzinfo is None:  # SQLite keeps naive UTC
        queued_at = queued_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - queued_at).total_seconds())


def run_job(
    db: JobDB,
    store: ObjectStore,
    job_id: str,
    transient: tuple[type[BaseException], ...],
    config: WorkerConfig = CONFIG,
) -> str:
    """A job message is a wake-up: take over the named job if its worker died, else claim the next job in
    fair order (`JobDB.claim_next`), run it and record the outcome. Safe to deliver twice: a finished or
    running job is left alone, a queued one that must wait for its tenant's quota is retried later.

    While it runs, every log line of this process carries job_id, attempt and worker; the outcome is
    counted in softserve_worker_jobs_finished_total."""
    worker = worker_id()
    taken_over = db.claim(job_id, worker, config.heartbeat_timeout_s, config.policy, queued=False)
    claimed = job_id if taken_over else db.claim_next(worker)
    claimed_at = time.monotonic()  # the job's budget and worker time count from here
    if claimed is None:
        job = db.job(job_id)
        if job is None:
            return RunOutcome.MISSING
        if job["status"] == JobStatus.QUEUED and not job["cancel_requested"]:
            raise NotClaimable(job_id)  # its tenant runs its quota's worth of jobs: wait for one to end
        return RunOutcome.left_alone(job["status"])
    with structlog.contextvars.bound_contextvars(job_id=claimed, worker=worker):
        # A RunOutcome, or the job status that the run ended in (the first three outcomes are statuses).
        outcome: str = RunOutcome.ERROR
        kind = "unknown"
        prom.JOBS_RUNNING.inc()
        fleet.set_job(claimed)
        try:
            context = db.context(claimed)
            kind = context.job["kind"]
            outcome = _run_claimed(db, store, context, transient, worker, config, claimed_at)
            return outcome
        except transient:
            outcome = RunOutcome.RETRY
            try:  # hand it back to the queue; if that fails too, the heartbeat goes stale instead
                db.release(claimed, worker)
            except Exception:
                logger.warning("could not hand job %s back to the queue", claimed, exc_info=True)
            raise
        finally:
            prom.JOBS_RUNNING.dec()
            prom.TOKENS_PER_SECOND.set(0)
            fleet.set_job(None)
            prom.JOBS_FINISHED.labels(kind=kind, outcome=outcome).inc()
            logger.info("job ended: %s", outcome, extra={"outcome": outcome})
            structlog.contextvars.unbind_contextvars("attempt")


def _run_claimed(
    db: JobDB,
    store: ObjectStore,
    context: JobContext,
    transient: tuple[type[BaseException], ...],
    worker: str,
    config: WorkerConfig,
    claimed_at: float | None = None,
) -> str:
    job_id, kind, version_id = context.job["id"], context.job["kind"], None
    try:
        structlog.contextvars.bind_contextvars(attempt=context.job["attempts"], kind=kind)
        waited = _waited_s(context.job["queued_at"])
        if waited is not None and context.job["attempts"] == 1:
            prom.QUEUE_WAIT.observe(waited)  # enqueue to first claim (a resume is not a queue wait)
        logger.info("job claimed", extra={"waited_s": round(waited or 0, 3)})
        if kind == JobKind.EVALUATE:
            return run_evaluation(db, store, context, worker, config)
        version_id = context.version["id"]  # evaluate scores a version; only training owns its status
        return run_training(db, store, context, kind, worker, config, claimed_at)
    except JobFailed as exc:
        _fail(db, version_id, job_id, worker, str(exc), exc.reason)
        return JobStatus.FAILED
    except EngineError as exc:  # a base model that cannot load, a bad stored prompt: the engine's words
        _fail(db, version_id, job_id, worker, str(exc), FailureReason.BAD_INPUT)
        return JobStatus.FAILED
    except JobLost:
        logger.warning("job %s was taken from %s while it ran; its result is not recorded", job_id, worker)
        return RunOutcome.LOST
    except transient:
        raise  # run_job hands the job back to the queue; Celery retries with backoff
    except Exception:
        logger.exception("job failed with an internal error")
        detail = traceback.format_exc()
        _fail(db, version_id, job_id, worker, internal_error_message(job_id), FailureReason.INTERNAL, detail)
        return JobStatus.FAILED


def reconcile(
    db: JobDB,
    send: Any,
    requeue_after_s: float,
    config: WorkerConfig = CONFIG,
    send_evaluation: Callable[[str], None] | None = None,
) -> dict[str, list[str]]:
    """Re-queue jobs whose worker stopped beating (or end them: past the attempt cap, or asked to cancel)
    and re-send jobs nobody claimed (a lost message). A duplicate message is harmless: it is a wake-up.
    With `send_evaluation`, evaluations pending longer than `requeue_after_s` are re-sent too."""
    stalled = db.requeue_stalled(config.heartbeat_timeout_s, config.policy)
    unclaimed = db.unclaimed(requeue_after_s)
    for job_id, kind in stalled + unclaimed:
        send(job_id, kind)
    out = {"requeued": [j for j, _ in stalled], "resent": [j for j, _ in unclaimed]}
    if send_evaluation is not None:
        out["evaluations"] = db.stale_evaluations(requeue_after_s)
        for version_id in out["evaluations"]:
            send_evaluation(version_id)
    return out
