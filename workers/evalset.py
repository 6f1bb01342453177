"""Evaluation sets: a ready version scored through the serving pool, and its train/serve parity.

The rows go to the pool the way callers' predictions do, so what is measured is what callers get: in redis
serving mode as ServeRequests on the base model's stream, the replies read from their reply lists (as
platform/softserve/serving/client.py does); in embedded mode through this process's batching loop
(workers/serving/local.py), the artifact loaded by key and sha256 through the serving cache, at the pool's
precision. No Django here, no Celery either (the task in workers/tasks.py calls `evaluate_version`).

Parity: the pool re-scores the rows training's final dev score covered (the training job's dev split, or
the seeded sample of it the budget left room for) and the accuracy (generation: exact match) is compared
with that training-time score on the same rows. A gap above the tolerance marks the version
parity_failed: the pool serves something other than what was trained (the vLLM adapter bug class). Where
the dev rows cannot be re-scored (the training data deleted, or more rows than parity_max_dev_rows) the
evaluation set's score stands in, a coarser check on different rows; `gap_basis` says which.

The evaluation set's own score (`metrics`, `predictions`, `gold`, one per row in the set's order) is what
alias gates compare versions on.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from common.contracts import (
    QUEUE_DEFAULT,
    SERVING_ERRORS,
    TASK_EVALUATE_VERSION,
    ParityStatus,
    RunOutcome,
    ServeReply,
    ServeRequest,
    ServingMode,
    ServingStatus,
    TaskType,
    VersionStatus,
    serving_reply_key,
    serving_stream,
)
from common.task import Example, TaskSpec, template_fields
from workers.config import WorkerConfig
from workers.engine.inference.evaluation import headline, metrics_of
from workers.jobdb import EvaluationContext, JobDB
from workers.serving.config import ServingConfig
from workers.storage import ObjectMissing, ObjectStore

logger = logging.getLogger(__name__)

# Requests of one pass in flight at once: enough to fill the pool's batches, few enough to leave room
# in them for callers' live requests (the pool also picks each batch round-robin across teams).
IN_FLIGHT = 4
# Beyond a request's deadline, how long to wait for the pool's own "expired" answer.
REPLY_GRACE_S = 0.5
REPLY_POLL_S = 1.0
# The training-time dev figures an evaluation repeats beside its own (not the per-label tables).
HEADLINE_KEYS = ("accuracy", "macro_f1", "exact_match", "n")

# One pass: requests in, one reply per request out, in order.
Submit = Callable[[list[ServeRequest]], list[ServeReply]]


class EvaluationError(Exception):
    """The evaluation cannot run; the message is for the team (the version's evaluation.error)."""


def send_evaluation(version_id: str) -> None:
    """Queue TASK_EVALUATE_VERSION for a version (Celery imported here only: the runner has none)."""
    from workers.celeryconf import app

    app.send_task(TASK_EVALUATE_VERSION, kwargs={"version_id": str(version_id)}, queue=QUEUE_DEFAULT)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rows(
    store: ObjectStore, dataset: dict[str, Any], fields: list[str], split: str | None = None
) -> list[Example]:
    """A dataset version's stored rows (normalised JSONL) as examples of the template's fields, in order;
    `split` keeps only that split's rows."""
    data = store.get_bytes(dataset["storage_key"])
    out = []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if split is None or row.get("split") == split:
                out.append(Example({name: str(row[name]) for name in fields}, str(row["label"])))
    return out


def dev_rows_scored(
    store: ObjectStore, context: EvaluationContext, fields: list[str]
) -> list[Example] | None:
    """The rows training's final dev score covered, in the order it scored them: the job's dev split, or
    the seeded sample of it the budget left room for (workers/engine/training/pipeline.py: _final_evaluation).
    None when they cannot be had (the training dataset is gone)."""
    if context.train_dataset is None:
        return None
    try:
        dev = _rows(store, context.train_dataset, fields, split="dev")
    except (ObjectMissing, KeyError):
        return None
    metrics = context.version.get("metrics") or {}
    final = int(metrics.get("final_eval_rows") or len(dev))
    if final >= len(dev):
        return dev
    seed = int((context.version.get("hyperparameters") or {}).get("seed", 0))
    return random.Random(seed).sample(dev, final)


def _requests(
    context: EvaluationContext, rows: Sequence[Example], chunk: int, timeout_s: float
) -> list[ServeRequest]:
    version, prompt = context.version, context.prompt
    out: list[ServeRequest] = []
    for start in range(0, len(rows), chunk):
        out.append(
            {
                "request_id": f"eval-{uuid.uuid4().hex}",
                "tenant_id": str(version["tenant_id"]),
                "prompt": prompt["name"],
                "version": int(version["number"]),
                "version_id": str(version["id"]),
                "artifact_key": version["artifact_key"],
                "artifact_sha256": version["artifact_sha256"],
                "base_model": prompt["base_model"],
                "inputs": [dict(ex.fields) for ex in rows[start : start + chunk]],
                # Stamped again as each request is sent (a pass keeps IN_FLIGHT in the pool at once).
                "enqueued_at": 0.0,
                "deadline": timeout_s,
            }
        )
    return out


def _stamp(request: ServeRequest, timeout_s: float) -> ServeRequest:
    now = time.time()
    return {**request, "enqueued_at": now, "deadline": now + timeout_s}


def redis_submit(url: str, queue_max: int, timeout_s: float) -> Submit:
    """Requests onto the model's stream, replies from their lists: the platform client's protocol. The
    stream's bound (SERVING_QUEUE_MAX) is kept by waiting for room rather than being refused; the team's
    share of the queue (SERVING_TENANT_QUEUE_MAX) is the web's and is left to its live callers."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5 + REPLY_POLL_S)

    def send(request: ServeRequest) -> ServeRequest:
        stream = serving_stream(request["base_model"])
        gives_up = time.monotonic() + timeout_s
        while client.xlen(stream) >= queue_max:
            if time.monotonic() > gives_up:
                raise EvaluationError("The serving queue stayed full; the evaluation could not be sent.")
            time.sleep(0.2)
        request = _stamp(request, timeout_s)
        client.xadd(stream, {"body": json.dumps(request)})
        return request

    def receive(request: ServeRequest) -> ServeReply:
        ends = time.monotonic() + timeout_s + REPLY_GRACE_S
        while (left := ends - time.monotonic()) > 0:
            popped = client.blpop(
                [serving_reply_key(request["request_id"])], timeout=max(0.01, min(left, REPLY_POLL_S))
            )
            if popped is not None:
                reply: ServeReply = json.loads(popped[1])
                return reply
        raise EvaluationError(f"The serving pool did not answer within {timeout_s:g} s.")

    def submit(requests: list[ServeRequest]) -> list[ServeReply]:
        try:
            replies: list[ServeReply] = []
            window: list[ServeRequest] = []
            for request in requests:
                window.append(send(request))
                if len(window) >= IN_FLIGHT:
                    replies.append(receive(window.pop(0)))
            replies.extend(receive(r) for r in window)
            return replies
        except redis.RedisError as exc:
            logger.warning("serving queue unavailable for an evaluation: %r", exc)
            raise EvaluationError("The serving queue could not be reached.") from exc

    return submit


def embedded_submit(timeout_s: float) -> Submit:
    """This process's batching loop for the model (the serving worker's code: cache, batcher, precision)."""
    from workers.serving import local

    def one(request: ServeRequest) -> ServeReply:
        gives_up = time.monotonic() + timeout_s
        while True:
            try:
                reply = local.submit(
                    _stamp(request, timeout_s),
                    timeout_s + REPLY_GRACE_S,
                    config=ServingConfig.from_env(base_model=request["base_model"]),
                )
            except local.QueueFull:
                if time.monotonic() > gives_up:
                    raise EvaluationError("The serving queue stayed full.") from None
                time.sleep(0.2)
                continue
            if reply is None:
                raise EvaluationError(f"The serving pool did not answer within {timeout_s:g} s.")
            return reply

    return lambda requests: [one(r) for r in requests]


def serving_path(config: WorkerConfig) -> Submit:
    """The pool callers use, chosen as the platform chooses (SERVING_MODE, else redis when a serving
    Redis URL is set)."""
    serving = ServingConfig.from_env()
    mode = config.serving_mode or (ServingMode.REDIS if serving.redis_url else ServingMode.EMBEDDED)
    timeout_s = config.serving_timeout_ms / 1000
    if mode == ServingMode.REDIS:
        if not serving.redis_url:
            raise EvaluationError("SERVING_MODE is redis but no SERVING_REDIS_URL (or REDIS_URL) is set.")
        return redis_submit(serving.redis_url, serving.queue_max, timeout_s)
    return embedded_submit(timeout_s)


def score(
    context: EvaluationContext, rows: Sequence[Example], submit: Submit, chunk: int, timeout_s: float
) -> list[dict[str, Any]]:
    """One output per row, from the pool; an error or expired reply ends the evaluation."""
    outputs: list[dict[str, Any]] = []
    for reply in submit(_requests(context, rows, chunk, timeout_s)):
        status = reply.get("status")
        if status == ServingStatus.EXPIRED:
            raise EvaluationError("A request expired in the serving queue before it was computed.")
        if status != ServingStatus.OK:
            code = reply.get("code") or ""
            if code not in SERVING_ERRORS:
                code = "internal"
            raise EvaluationError(f"The serving pool refused a request: {SERVING_ERRORS[code]}")
        outputs.extend(reply["outputs"])
    if len(outputs) != len(rows):
        raise EvaluationError(f"The serving pool answered {len(outputs)} outputs for {len(rows)} rows.")
    return outputs


def _answers(spec: TaskSpec, outputs: Sequence[dict[str, Any]]) -> list[str]:
    key = "label" if spec.task_type == TaskType.CLASSIFICATION.value else "text"
    return [str(out[key]) for out in outputs]


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in HEADLINE_KEYS if k in metrics}


def evaluate(
    store: ObjectStore, context: EvaluationContext, submit: Submit, config: WorkerConfig
) -> tuple[dict[str, Any], str]:
    """(the version's evaluation, its parity) — the evaluation set scored through `submit`, and the dev
    rows too where they can be had. Raises EvaluationError when it cannot run."""
    prompt, version, dataset = context.prompt, context.version, context.eval_dataset
    assert dataset is not None
    spec = TaskSpec(
        prompt["task_type"], prompt["template"], list(prompt["labels"]), dict(prompt["verbalizer"] or {})
    )
    fields = template_fields(prompt["template"])
    missing = [f for f in fields if f not in (dataset.get("columns") or {})]
    if missing:
        raise EvaluationError(f"The evaluation set has no column for the template's fields {missing}.")
    try:
        rows = _rows(store, dataset, fields)
    except ObjectMissing as exc:
        raise EvaluationError("The evaluation set's stored rows are missing; pin another set.") from exc
    if not rows:
        raise EvaluationError("The evaluation set has no rows.")
    chunk, timeout_s = max(1, config.serving_max_inputs), config.serving_timeout_ms / 1000
    outputs = score(context, rows, submit, chunk, timeout_s)
    metrics = metrics_of(spec, 1, rows, outputs, detail=True)
    dev_metrics = (version.get("metrics") or {}).get("dev") or {}
    evaluation: dict[str, Any] = {
        "dataset_version": str(dataset["id"]),
        "rows": len(rows),
        "metrics": metrics,
        "dev_metrics": _headline(dev_metrics),
        "tolerance": config.parity_tolerance,
        "predictions": _answers(spec, outputs),
        "gold": [ex.target for ex in rows],
    }
    if not dev_metrics:
        evaluation["gap"] = None
        evaluation["error"] = "The version has no training-time dev score to compare with."
        evaluation["evaluated_at"] = _now_iso()
        return evaluation, ParityStatus.ERROR
    dev = dev_rows_scored(store, context, fields)
    if dev and len(dev) <= config.parity_max_dev_rows:
        serving_dev = metrics_of(spec, 1, dev, score(context, dev, submit, chunk, timeout_s))
        evaluation["serving_dev_metrics"] = _headline(serving_dev)
        evaluation["gap_basis"] = "dev_rows"
        served = headline(serving_dev)
    else:
        evaluation["gap_basis"] = "evaluation_set"
        served = headline(metrics)
    gap = round(abs(served - headline(dev_metrics)), 4)
    evaluation["gap"] = gap
    evaluation["evaluated_at"] = _now_iso()
    # A hair of slack: both scores are rounded to 4 places.
    parity = ParityStatus.PASSED if gap <= config.parity_tolerance + 1e-9 else ParityStatus.FAILED
    return evaluation, parity


def evaluate_version(
    db: JobDB,
    store: ObjectStore,
    version_id: str,
    config: WorkerConfig,
    transient: tuple[type[BaseException], ...] = (),
    submit: Submit | None = None,
) -> str:
    """Score one version on its prompt's evaluation set and record the result; returns the parity written
    (or why nothing was). Transient database or storage errors propagate (the task retries)."""
    context = db.evaluation_context(version_id)
    if context is None:
        return RunOutcome.MISSING
    if context.version["status"] != VersionStatus.READY or not context.version["artifact_key"]:
        return RunOutcome.left_alone(context.version["status"])
    if context.eval_dataset is None:  # unpinned since it was queued: nothing to score it on
        if context.version["parity"] == ParityStatus.PENDING:
            db.set_evaluation(version_id, {}, ParityStatus.NONE)
        return ParityStatus.NONE
    started = time.monotonic()
    try:
        evaluation, parity = evaluate(store, context, submit or serving_path(config), config)
    except transient:
        raise
    except EvaluationError as exc:
        evaluation, parity = _failed(context, str(exc)), ParityStatus.ERROR
    except Exception:
        logger.exception("evaluation of version %s failed with an internal error", version_id)
        message = (
            f"The evaluation stopped on an internal error (version {version_id}); the operators have the "
            "details. Re-run it from the version."
        )
        evaluation, parity = _failed(context, message), ParityStatus.ERROR
    db.set_evaluation(version_id, evaluation, parity)
    logger.info(
        "version evaluated",
        extra={
            "version_id": version_id,
            "parity": str(parity),
            "gap": evaluation.get("gap"),
            "rows": evaluation.get("rows"),
            "seconds": round(time.monotonic() - started, 2),
        },
    )
    return parity


def _failed(context: EvaluationContext, message: str) -> dict[str, Any]:
    dataset = context.eval_dataset or {}
    return {"dataset_version": str(dataset.get("id", "")), "error": message, "evaluated_at": _now_iso()}
