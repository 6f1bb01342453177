"""Running one claimed job: data and checkpoints from storage, the engine, progress and the outcome
to the job row. Called by the thin Celery tasks in `workers/tasks.py`; no Celery here.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any

import structlog

from workers import fleet
from workers import metrics as prom  # `metrics` is the name of a job's figures here
from workers.config import worker_config
from workers.contracts import JobKind, JobStatus, VersionStatus
from workers.engine.artifact import PromptArtifact, artifact_bytes, artifact_from_bytes
from workers.engine.base_model import FrozenModel, load_base_model
from workers.engine.checkpoint import BankState
from workers.engine.errors import EngineError
from workers.engine.evaluation import evaluate
from workers.engine.inference import LoadedPrompt
from workers.engine.pipeline import train_task
from workers.engine.task import Example, TaskSpec
from workers.engine.trainer import Progress, TrainConfig
from workers.jobdb import JobContext, JobDB
from workers.storage import ObjectMissing, ObjectStore, prompt_key

logger = logging.getLogger(__name__)
CONFIG = worker_config()
HEARTBEAT_S = CONFIG.heartbeat_s
STALE_AFTER_S = CONFIG.heartbeat_timeout_s
CHECKPOINT_EVERY = CONFIG.checkpoint_every


class JobFailed(Exception):
    """The job cannot succeed as asked (bad data, bad hyper-parameters, no memory): fail it, no retry."""


class NotClaimable(Exception):
    """Another live worker holds the job; try again once its heartbeat could have gone stale."""


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
    """A background heartbeat: writes the latest progress and new dev evaluations every few seconds,
    and turns a cancel request or a lost claim into `should_stop`."""

    def __init__(self, db: JobDB, job_id: str, worker: str):
        self.db, self.job_id, self.worker = db, job_id, worker
        self.progress: dict[str, Any] | None = None
        self.pending_history: list[dict[str, Any]] = []
        self.cancelled = self.lost = False
        self._lock, self._done = threading.Lock(), threading.Event()
        self.failures = 0
        # The thread logs with the job's context (job_id, attempt, worker) bound by run_job.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name=f"heartbeat-{job_id}", daemon=True
        )

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def update(self, progress: dict[str, Any], history: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.progress = {**(self.progress or {}), **progress}
            if history:
                self.pending_history.append(history)

    def flush(self) -> None:
        with self._lock:
            progress, history, self.pending_history = self.progress, self.pending_history, []
        try:
            owned, cancel = self.db.heartbeat(self.job_id, self.worker, progress, history)
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
        while not self._done.wait(HEARTBEAT_S):
            self.flush()

    def should_stop(self) -> bool:
        return self.cancelled or self.lost


def _examples(store: ObjectStore, context: JobContext) -> tuple[list[Example], list[Example]]:
    if context.dataset is None:
        raise JobFailed("The job's dataset version was deleted.")
    fields = list(context.dataset["columns"])
    train: list[Example] = []
    dev: list[Example] = []
    try:
        data = store.get_bytes(context.dataset["storage_key"])
    except ObjectMissing as exc:
        raise JobFailed(f"The dataset's stored rows are missing: {exc}") from exc
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


def _train_config(spec: dict[str, Any], kind: str) -> TrainConfig:
    try:
        return TrainConfig(
            method=spec.get("method", "prompt"),
            prompt_length=spec.get("prompt_length", 20),
            init=spec.get("init", "labels"),
            init_text=spec.get("init_text"),
            learning_rate=spec.get("learning_rate"),
            batch_size=spec.get("batch_size", 16),
            steps=spec.get("steps", 300),
            eval_every=spec.get("eval_every", max(1, min(50, spec.get("steps", 300) // 6))),
            max_minutes=spec.get("max_minutes"),
            ensemble_size=spec.get("members", 5) if kind == JobKind.ENSEMBLE else 1,
            seed=spec.get("seed", 0),
        )
    except (EngineError, TypeError, ValueError) as exc:
        raise JobFailed(f"Bad hyper-parameters: {exc}") from exc


def _keys(context: JobContext) -> tuple[str, str]:
    version = context.version
    base = (version["tenant_id"], version["prompt_id"], version["number"])
    return prompt_key(*base, "prompt.safetensors"), prompt_key(*base, "checkpoint.safetensors")


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def run_training(db: JobDB, store: ObjectStore, context: JobContext, kind: str, worker: str) -> str:
    """tune / ensemble: train (resuming from the last checkpoint), store the artifact, mark the version."""
    job_id = context.job["id"]
    spec = _spec(context)
    config = _train_config(context.job["spec"], kind)
    artifact_key, checkpoint_key = _keys(context)
    train, dev = _examples(store, context)
    fm = base_model(context.prompt["base_model"])
    resume = None
    with contextlib.suppress(ObjectMissing):
        resume = BankState.from_bytes(store.get_bytes(checkpoint_key))
    with Beat(db, job_id, worker) as beat:
        start = resume.step if resume else 0
        resumed = {"event": "resumed", "step": start, "attempt": context.job["attempts"]}
        beat.update(
            {"step": start, "total_steps": config.steps, "resumed_from": start}, resumed if resume else None
        )
        beat.flush()  # the claim and the resume point are on record before the first step

        clock = {"step": start, "at": time.perf_counter()}

        def on_progress(p: Progress) -> None:
            now = time.perf_counter()
            if p.step > clock["step"]:
                prom.STEP_SECONDS.observe((now - clock["at"]) / (p.step - clock["step"]))
            clock.update(step=p.step, at=now)
            prom.TOKENS_PER_SECOND.set(p.tokens_per_s)
            figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(p).items()}
            beat.update(
                figures, {"step": p.step, "loss": figures["loss"], **(p.dev or {})} if p.dev else None
            )

        def on_checkpoint(state: BankState) -> None:
            with prom.CHECKPOINT_SECONDS.time():
                store.put_bytes(checkpoint_key, state.to_bytes())
            beat.update({"checkpoint_step": state.step})

        try:
            artifact = train_task(
                fm,
                spec,
                train,
                dev,
                config,
                on_progress,
                beat.should_stop,
                resume,
                on_checkpoint,
                CHECKPOINT_EVERY,
            )
        except EngineError as exc:
            raise JobFailed(str(exc)) from exc
        except (RuntimeError, MemoryError) as exc:
            if _out_of_memory(exc):
                raise JobFailed(
                    f"Out of memory at batch size {config.batch_size}: retry with a smaller batch_size "
                    f"(e.g. {max(1, config.batch_size // 2)}) or a shorter prompt_length."
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
        )
        return JobStatus.CANCELLED
    data = artifact_bytes(artifact)
    store.put_bytes(artifact_key, data)
    metrics = {**artifact.metrics, "train_rows": len(train), "dev_rows": len(dev)}
    version = {
        "id": context.version["id"],
        "status": VersionStatus.READY,
        "artifact_key": artifact_key,
        "artifact_sha256": hashlib.sha256(data).hexdigest(),
        "metrics": metrics,
    }
    if not db.finish(job_id, worker, JobStatus.SUCCEEDED, metrics, version=version):
        raise JobLost(job_id)
    return JobStatus.SUCCEEDED


def run_evaluation(db: JobDB, store: ObjectStore, context: JobContext, worker: str) -> str:
    """evaluate: score a ready version on a dataset version's dev rows (another dataset: domain transfer)."""
    job_id = context.job["id"]
    _, dev = _examples(store, context)
    fm = base_model(context.prompt["base_model"])
    artifact: PromptArtifact = artifact_from_bytes(
        store.get_bytes(context.version["artifact_key"]), "the stored prompt"
    )
    with Beat(db, job_id, worker) as beat:
        beat.update({"rows": len(dev)})
        try:
            artifact.check_fits(fm)
            prompt = LoadedPrompt.from_artifact(fm, artifact)
            metrics = evaluate(fm, prompt, dev)
            members = (
                [evaluate(fm, prompt.member(k), dev) for k in range(len(prompt.members))]
                if len(prompt.members) > 1
                else []
            )
        except EngineError as exc:
            raise JobFailed(str(exc)) from exc
        beat.flush()
    if beat.lost:
        raise JobLost(job_id)
    result = {**metrics, "dataset_version": context.dataset["id"], "evaluated_at": round(time.time())}
    if members:
        result["members"] = members
    if not db.finish(job_id, worker, JobStatus.SUCCEEDED, result):
        raise JobLost(job_id)
    db.merge_version_metrics(context.version["id"], context.dataset["id"], result)
    return JobStatus.SUCCEEDED


def _fail(db: JobDB, context_version: str | None, job_id: str, worker: str, message: str) -> None:
    version = {"id": context_version, "status": VersionStatus.FAILED} if context_version else None
    db.finish(job_id, worker, JobStatus.FAILED, error=message, version=version)


def _waited_s(queued_at: datetime | None) -> float | None:
    if queued_at is None:
        return None
    if queued_at.tzinfo is None:  # SQLite keeps naive UTC
        queued_at = queued_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - queued_at).total_seconds())


def run_job(
    db: JobDB, store: ObjectStore, job_id: str, kind: str, transient: tuple[type[BaseException], ...]
) -> str:
    """Claim, run, record. Safe to deliver twice: a finished job is left alone, a live one is retried
    later (NotClaimable), a stalled one is taken over and resumed from its checkpoint.

    While it runs, every log line of this process carries job_id, attempt and worker; the outcome is
    counted in softserve_worker_jobs_finished_total."""
    worker = worker_id()
    with structlog.contextvars.bound_contextvars(job_id=str(job_id), worker=worker, kind=kind):
        if not db.claim(job_id, worker, STALE_AFTER_S):
            job = db.job(job_id)
            if job is None:
                return "missing"
            if job["status"] == JobStatus.RUNNING:
                raise NotClaimable(job_id)
            return f"left alone ({job['status']})"
        outcome = "error"
        prom.JOBS_RUNNING.inc()
        fleet.set_job(str(job_id))
        try:
            outcome = _run_claimed(db, store, job_id, kind, transient, worker)
            return outcome
        except transient:
            outcome = "retry"
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
    job_id: str,
    kind: str,
    transient: tuple[type[BaseException], ...],
    worker: str,
) -> str:
    trains, version_id = kind != JobKind.EVALUATE, None
    try:
        context = db.context(job_id)
        structlog.contextvars.bind_contextvars(attempt=context.job["attempts"])
        waited = _waited_s(context.job["queued_at"])
        if waited is not None and context.job["attempts"] == 1:
            prom.QUEUE_WAIT.observe(waited)  # enqueue to first claim (a resume is not a queue wait)
        logger.info("job claimed", extra={"waited_s": round(waited or 0, 3)})
        if not trains:
            return run_evaluation(db, store, context, worker)
        version_id = context.version["id"]  # evaluate scores a version; only training owns its status
        return run_training(db, store, context, kind, worker)
    except (JobFailed, EngineError) as exc:  # EngineError: a base model that cannot load, a bad prompt
        _fail(db, version_id, job_id, worker, str(exc))
        return JobStatus.FAILED
    except JobLost:
        return "lost"
    except transient:
        db.release(job_id, worker)  # best effort; if it fails too, the heartbeat goes stale instead
        raise
    except Exception as exc:
        logger.exception("job failed with an internal error")
        _fail(db, version_id, job_id, worker, f"Internal error ({type(exc).__name__}): {exc}")
        raise


def reconcile(db: JobDB, send, requeue_after_s: float) -> dict[str, list[str]]:
    """Re-queue jobs whose worker stopped beating and re-send jobs nobody claimed (a lost message).
    A duplicate message is harmless: only one delivery can claim a job."""
    stalled = db.requeue_stalled(STALE_AFTER_S)
    unclaimed = db.unclaimed(requeue_after_s)
    for job_id, kind in stalled + unclaimed:
        send(job_id, kind)
    return {"requeued": [j for j, _ in stalled], "resent": [j for j, _ in unclaimed]}
