"""The dynamic batcher: one batch of requests (any prompts, methods, ensembles) in few forward passes.

A transport (`RedisSource` for the pool, `LocalSource` embedded in the web process) collects requests
until the batch is full or the wait is over; `queueing.run_loop` hands each batch to `Batcher.process`
and sends the replies. Rows are sorted by length and cut into sub-batches under a row and token budget, so
padding stays low whatever the mix of prompts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.contracts import ServeReply, ServeRequest, ServingStatus
from workers.engine.base_model import FrozenModel
from workers.engine.errors import EngineError
from workers.engine.inference import LoadedPrompt, predict_mixed
from workers.serving import metrics
from workers.serving.cache import PromptCache
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending
from workers.storage import ObjectMissing

log = logging.getLogger(__name__)


@dataclass
class _Row:
    request: int  # index in the batch
    position: int  # index within the request's inputs
    prompt: LoadedPrompt
    version_id: str
    fields: dict[str, str]
    width: int  # positions this row takes in the forward pass


def _output(result: dict[str, Any]) -> dict[str, Any]:
    """The public shape: label and per-label probabilities (ensembles: votes too), or text."""
    if "text" in result:
        return {"text": result["text"], "finish_reason": result["finish_reason"]}
    out = {"label": result["label"], "scores": result["scores"]}
    if "votes" in result:
        out["votes"] = result["votes"]
    return out


class Batcher:
    def __init__(self, fm: FrozenModel, cache: PromptCache, config: ServingConfig, worker: str = "local"):
        self.fm = fm
        self.cache = cache
        self.config = config
        self.worker = worker

    def process(self, batch: Sequence[Pending]) -> list[ServeReply]:
        """One reply per request, in order: outputs, `expired` (deadline passed before compute) or `error`."""
        started = time.time()
        replies: list[ServeReply | None] = [None] * len(batch)
        rows: list[_Row] = []
        for i, pending in enumerate(batch):
            request = pending.request
            metrics.QUEUE_WAIT.observe(max(0.0, started - request["enqueued_at"]))
            if request["deadline"] <= started:
                replies[i] = self._reply(
                    request, ServingStatus.EXPIRED, error="The deadline passed before compute."
                )
                continue
            try:
                rows.extend(self._rows(i, request))
            except (EngineError, ObjectMissing) as exc:
                replies[i] = self._reply(request, ServingStatus.ERROR, error=str(exc))
        outputs: dict[int, list[dict[str, Any] | None]] = {
            i: [None] * len(p.request["inputs"]) for i, p in enumerate(batch) if replies[i] is None
        }
        failures: dict[int, str] = {}
        if rows:
            metrics.BATCH_ROWS.observe(sum(len(r.prompt.members) for r in rows))
            metrics.BATCH_PROMPTS.observe(len({r.version_id for r in rows}))
        for group in self.sub_batches(rows):
            tick = time.perf_counter()
            try:
                limits = [self._token_limit(batch[r.request].request) for r in group]
                results = predict_mixed(self.fm, [(r.prompt, r.fields) for r in group], limits)
            except Exception as exc:  # one bad sub-batch must not take the worker (or its batch-mates) down
                log.exception("forward pass failed")
                for r in group:
                    failures[r.request] = f"The model failed on this input: {exc}"
                continue
            finally:
                metrics.FORWARD.observe(time.perf_counter() - tick)
            for r, result in zip(group, results, strict=True):
                outputs[r.request][r.position] = _output(result)
        for i, outs in outputs.items():
            request = batch[i].request
            if i in failures:
                replies[i] = self._reply(request, ServingStatus.ERROR, error=failures[i])
            else:
                replies[i] = self._reply(request, ServingStatus.OK, outputs=outs)
        batch_ms = round(1000 * (time.time() - started), 2)
        for reply, pending in zip(replies, batch, strict=True):
            reply["queue_ms"] = round(max(0.0, 1000 * (started - pending.request["enqueued_at"])), 2)
            reply["batch_ms"] = batch_ms
        return replies  # type: ignore[return-value]

    def _token_limit(self, request: ServeRequest) -> int:
        """The request's own generation limit, never above this worker's."""
        return min(request.get("max_new_tokens") or self.config.max_new_tokens, self.config.max_new_tokens)

    def _rows(self, i: int, request: ServeRequest) -> list[_Row]:
        if request["base_model"] != self.config.base_model:
            raise EngineError(
                f"This worker serves {self.config.base_model!r}, not {request['base_model']!r}."
            )
        prompt = self.cache.get(request["version_id"], request["artifact_key"], request["artifact_sha256"])
        # Vector prompts that are not served from cached states still take P positions per row.
        extra = max((m.shape[0] for m in prompt.members if m.dim() == 2), default=0)
        return [
            _Row(i, j, prompt, request["version_id"], fields, len(prompt.encoder.input_ids(fields)) + extra)
            for j, fields in enumerate(request["inputs"])
        ]

    def sub_batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Length-sorted runs under the row and token budgets; the grouped baseline also cuts per prompt."""
        key = (lambda r: (r.version_id, r.width)) if self.config.group_by_prompt else (lambda r: r.width)
        groups: list[list[_Row]] = []
        current: list[_Row] = []
        used_rows = 0
        for row in sorted(rows, key=key):
            k = len(row.prompt.members)
            cut = current and (
                used_rows + k > self.config.max_batch_rows
                or (used_rows + k) * row.width > self.config.max_batch_tokens
                or (self.config.group_by_prompt and row.version_id != current[-1].version_id)
            )
            if cut:
                groups.append(current)
                current, used_rows = [], 0
            current.append(row)
            used_rows += k
        if current:
            groups.append(current)
        return groups

    def _reply(self, request: ServeRequest, status: str, **fields: Any) -> ServeReply:
        tenant, prompt = metrics.prompt_labels(request["tenant_id"], request["prompt"])
        metrics.REQUESTS.labels(tenant, prompt, status).inc()
        metrics.LATENCY.labels(tenant, prompt).observe(max(0.0, time.time() - request["enqueued_at"]))
        return {"request_id": request["request_id"], "status": status, "worker": self.worker, **fields}
