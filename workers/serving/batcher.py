"""The dynamic batcher: one batch of requests (any prompts, methods, ensembles) in few forward passes.

A transport (`RedisSource` for the pool, `LocalSource` embedded in the web process) collects requests
until the batch is full or the wait is over; `queueing.run_loop` hands each batch to `Batcher.process`
and sends the replies. Rows are sorted by length and cut into sub-batches under a row and token budget, so
padding stays low whatever the mix of prompts.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from common.contracts import ServeReply, ServeRequest, ServingStatus, ShadowTarget
from common.errors import ArtifactError, EngineError
from common.task import TemplateError
from workers.engine.base_model import FrozenModel
from workers.engine.inference.predict import LoadedPrompt, predict_mixed
from workers.serving import metrics
from workers.serving.cache import PromptCache
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending, error_reply
from workers.storage import ObjectMissing

log = logging.getLogger(__name__)


class TooLarge(EngineError):
    """One input alone needs more model rows or positions than a batch may hold."""


def failure_code(exc: BaseException) -> str:
    """The SERVING_ERRORS code a tenant is told for an exception; anything unforeseen is `internal`."""
    if isinstance(exc, TooLarge):
        return "too_large"
    if isinstance(exc, ArtifactError | TemplateError | ObjectMissing):
        return "prompt_unavailable"  # a stored artifact or template the pool cannot use
    if isinstance(exc, EngineError):
        return "invalid_input"
    return "internal"


def _enqueued_at(request: ServeRequest) -> float:
    try:
        return float(request["enqueued_at"])
    except (KeyError, TypeError, ValueError):
        return time.time()  # a malformed request still gets its (error) reply


@dataclass
class _Row:
    request: int  # index in the batch
    position: int  # index within the request's inputs
    prompt: LoadedPrompt
    version_id: str
    fields: dict[str, str]
    width: int  # positions one model row of this input takes in the forward pass
    # Model rows this input takes at the widest of its two passes: K for a K-member ensemble, times the
    # larger of 1 (the input's own pass) and the labels scored from its cached states (each of those
    # holds a copy of the input's key/value states, as wide as the input).
    model_rows: int = 1
    # Label tokens that run after the input, padded to its longest label (rank classification: every
    # label past its first token; an encoder-decoder's decoder over every label).
    label_positions: int = 0
    # The input's tokens as the template formats it (usage figures): no soft-prompt positions, no labels.
    prompt_tokens: int = 0
    # A row of the request's shadow version (the same input, another prompt): its output goes to the
    # reply's `shadow_outputs`, and its failure never fails the request.
    shadow: bool = False

    @property
    def positions(self) -> int:
        return self.model_rows * self.width + self.label_positions


def _generates(row: _Row) -> bool:
    return row.prompt.spec.task_type == "generation"


# Called with (index in the batch, reply) as soon as a request is done.
Send = Callable[[int, ServeReply], None]


def _output(result: dict[str, Any]) -> dict[str, Any]:
    """The public shape: label and per-label probabilities (ensembles: votes too), or text; with the
    tokens generated (`completion_tokens`: a generation's answer without its end-of-sequence token; 0 for
    classification, which scores its labels and generates nothing). The platform moves the token counts
    into the reply's usage figures (softserve.serving.actions)."""
    if "text" in result:
        return {
            "text": result["text"],
            "finish_reason": result["finish_reason"],
            "completion_tokens": result.get("completion_tokens", 0),
        }
    out = {"label": result["label"], "scores": result["scores"], "completion_tokens": 0}
    if "votes" in result:
        out["votes"] = result["votes"]
    return out


class Batcher:
    def __init__(self, fm: FrozenModel, cache: PromptCache, config: ServingConfig, worker: str = "local"):
        self.fm = fm
        self.cache = cache
        self.config = config
        self.worker = worker

    def process(self, batch: Sequence[Pending], send: Send | None = None) -> list[ServeReply]:
        """One reply per request, in order: outputs, `expired` (deadline passed before compute) or `error`.

        Whatever one request does (a prompt that cannot load, an input that breaks the forward pass, an
        exception nobody foresaw), it fails that request alone: its batch-mates are still answered.
        With `send`, each reply also goes out as soon as its request is done (classification sub-batches
        run first), so a short request does not wait for a batch-mate's long generation.

        A request that names a `shadow` version adds that version's rows for the same inputs to the same
        mixed batch (counted in the row and token budgets like any other rows); the reply carries their
        outputs as `shadow_outputs`, or leaves them out when the shadow fails (logged), never failing the
        request for it.
        """
        started = time.time()
        replies, rows, shadow_failures = self._admit(batch, started)
        outputs: dict[int, list[dict[str, Any] | None]] = {
            i: [None] * len(p.request["inputs"]) for i, p in enumerate(batch) if replies[i] is None
        }
        shadow_outputs: dict[int, list[dict[str, Any] | None]] = {
            i: [None] * len(batch[i].request["inputs"]) for i in {r.request for r in rows if r.shadow}
        }
        failures: dict[int, BaseException] = {}
        done: set[int] = set()

        def finish(i: int) -> None:
            request = batch[i].request
            reply = replies[i]
            if reply is None:
                reply = self._computed(request, i, outputs, failures, shadow_outputs, shadow_failures)
                replies[i] = reply
            reply["queue_ms"] = round(max(0.0, 1000 * (started - _enqueued_at(request))), 2)
            reply["batch_ms"] = round(1000 * (time.time() - started), 2)
            done.add(i)
            if send is not None:
                send(i, reply)

        for i in range(len(batch)):
            if replies[i] is not None:
                finish(i)  # refused before compute: answered at once
        if rows:
            metrics.BATCH_ROWS.observe(sum(r.model_rows for r in rows))
            metrics.BATCH_PROMPTS.observe(len({r.version_id for r in rows}))
        remaining = Counter(r.request for r in rows)
        for group in self.sub_batches(rows):
            self._forward(batch, group, outputs, failures, shadow_outputs, shadow_failures)
            for r in group:
                remaining[r.request] -= 1
                if not remaining[r.request]:
                    finish(r.request)
        for i in range(len(batch)):
            if i not in done:
                finish(i)
        return replies  # type: ignore[return-value]

    def _computed(
        self,
        request: ServeRequest,
        i: int,
        outputs: dict[int, list[dict[str, Any] | None]],
        failures: dict[int, BaseException],
        shadow_outputs: dict[int, list[dict[str, Any] | None]],
        shadow_failures: dict[int, BaseException],
    ) -> ServeReply:
        """The reply of request `i` once its rows ran: its outputs (and its shadow's), or its error."""
        if i in failures:
            return self._failed(request, failures[i])
        reply = self._reply(request, ServingStatus.OK, outputs=outputs[i])
        if i in shadow_failures:
            self._shadow_failed(request, shadow_failures[i])
        elif i in shadow_outputs:
            # Every row of the shadow has its output by the time its request finishes.
            reply["shadow_outputs"] = cast(list[dict[str, Any]], shadow_outputs[i])
        return reply

    def _admit(
        self, batch: Sequence[Pending], started: float
    ) -> tuple[list[ServeReply | None], list[_Row], dict[int, BaseException]]:
        """Each request's rows (and its shadow's), or its reply already: `expired` past its deadline,
        `error` when its rows cannot be made. A shadow whose rows cannot be made is only noted."""
        replies: list[ServeReply | None] = [None] * len(batch)
        rows: list[_Row] = []
        shadow_failures: dict[int, BaseException] = {}
        for i, pending in enumerate(batch):
            request = pending.request
            try:
                metrics.QUEUE_WAIT.observe(max(0.0, started - _enqueued_at(request)))
                if request["deadline"] <= started:
                    replies[i] = self._reply(
                        request, ServingStatus.EXPIRED, error="The deadline passed before compute."
                    )
                    continue
                rows.extend(self._rows(i, request))
            except Exception as exc:
                replies[i] = self._failed(request, exc)
                continue
            if request.get("shadow"):
                try:
                    rows.extend(self._rows(i, request, request["shadow"]))
                except Exception as exc:  # the caller still gets the primary's answer
                    shadow_failures[i] = exc
        return replies, rows, shadow_failures

    def _forward(
        self,
        batch: Sequence[Pending],
        group: list[_Row],
        outputs: dict[int, list[dict[str, Any] | None]],
        failures: dict[int, BaseException],
        shadow_outputs: dict[int, list[dict[str, Any] | None]],
        shadow_failures: dict[int, BaseException],
    ) -> None:
        """Run one sub-batch; when it fails, run its requests again in halves until the failing ones are
        alone, so a poison input fails its own request and no other tenant's. A request's shadow rows are
        a unit of their own here: a shadow that breaks the pass fails only the shadow."""
        tick = time.perf_counter()
        try:
            limits = [self._token_limit(batch[r.request].request) for r in group]
            results = predict_mixed(
                self.fm, [(r.prompt, r.fields) for r in group], limits, self.config.precision
            )
            answers = [_output(result) for result in results]
            if len(answers) != len(group):
                raise RuntimeError(f"{len(answers)} outputs for {len(group)} rows")
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        finally:
            metrics.FORWARD.observe(time.perf_counter() - tick)
        if error is None:
            for r, answer in zip(group, answers, strict=True):
                answer = {**answer, "prompt_tokens": r.prompt_tokens}
                (shadow_outputs if r.shadow else outputs)[r.request][r.position] = answer
            return
        units = list(dict.fromkeys((r.request, r.shadow) for r in group))
        if len(units) == 1:
            request, shadow = units[0]
            (shadow_failures if shadow else failures)[request] = error
            return
        log.warning("a sub-batch of %d requests failed (%r); isolating the cause", len(units), error)
        metrics.ISOLATION_RETRIES.inc()
        first = set(units[: len(units) // 2])
        for part in (
            [r for r in group if (r.request, r.shadow) in first],
            [r for r in group if (r.request, r.shadow) not in first],
        ):
            self._forward(batch, part, outputs, failures, shadow_outputs, shadow_failures)

    def _shadow_failed(self, request: ServeRequest, exc: BaseException) -> None:
        """The shadow's rows could not be scored: logged (and counted); the reply goes without them."""
        metrics.SHADOW_FAILURES.inc()
        log.warning(
            "shadow version %s of request %s failed (%s): %r",
            request.get("shadow", {}).get("version"),
            request.get("request_id", "?"),
            failure_code(exc),
            exc,
        )

    def _failed(self, request: ServeRequest, exc: BaseException) -> ServeReply:
        code = failure_code(exc)
        metrics.REQUESTS.labels(*self._labels(request), ServingStatus.ERROR).inc()
        return error_reply(request, code, self.worker, exc)

    def _token_limit(self, request: ServeRequest) -> int:
        """The request's own generation limit, never above this worker's."""
        return min(request.get("max_new_tokens") or self.config.max_new_tokens, self.config.max_new_tokens)

    def _rows(self, i: int, request: ServeRequest, shadow: ShadowTarget | None = None) -> list[_Row]:
        """The model rows of a request's inputs under its version, or under its `shadow` version."""
        if request["base_model"] != self.config.base_model:
            raise EngineError(
                f"This worker serves {self.config.base_model!r}, not {request['base_model']!r}."
            )
        target = shadow or request
        prompt = self.cache.get(target["version_id"], target["artifact_key"], target["artifact_sha256"])
        # Vector prompts that are not served from cached states still take P positions per row.
        extra = max((m.shape[0] for m in prompt.members if m.dim() == 2), default=0)
        tail, continued, label_positions = self._expansion(prompt, request)
        members = len(prompt.members)
        model_rows = members * max(1, continued)
        rows = []
        for j, fields in enumerate(request["inputs"]):
            tokens = len(prompt.encoder.input_ids(fields))
            row = _Row(
                i,
                j,
                prompt,
                target["version_id"],
                fields,
                width=tokens + extra + tail,
                model_rows=model_rows,
                label_positions=members * label_positions,
                prompt_tokens=tokens,
                shadow=shadow is not None,
            )
            if model_rows > self.config.max_batch_rows or row.positions > self.config.max_batch_tokens:
                raise TooLarge(
                    f"input {j} needs {model_rows} model rows and {row.positions} positions; a batch "
                    f"holds {self.config.max_batch_rows} rows and {self.config.max_batch_tokens} positions"
                )
            rows.append(row)
        return rows

    def _expansion(self, prompt: LoadedPrompt, request: ServeRequest) -> tuple[int, int, int]:
        """(positions added to each model row, labels continued from the input's cached states, label
        positions that run after it) of one input of this prompt, per ensemble member.

        Generation grows each row by up to its token limit. Rank classification runs the input once; its
        last position predicts every label's first token, and each label of more tokens continues from a
        copy of the input's cached states (an encoder-decoder: every label, through the decoder), its
        tokens padded to the longest such label.
        """
        if prompt.spec.task_type != "classification":
            return self._token_limit(request), 0, 0
        targets = prompt.encoder.class_targets
        if self.fm.is_encoder_decoder:
            return 0, len(targets), len(targets) * max(len(t) for t in targets)
        continued = [len(t) - 1 for t in targets if len(t) > 1]
        return 0, len(continued), len(continued) * max(continued, default=0)

    def sub_batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Length-sorted runs under the row and token budgets, counting each input's expanded model rows;
        the grouped baseline also cuts per prompt."""
        # Classification first, and never in one pass with generation: its rows need one forward pass,
        # not a decoding loop, and their replies go out as soon as that pass is done.
        key = (
            (lambda r: (r.version_id, r.width))
            if self.config.group_by_prompt
            else (lambda r: (_generates(r), r.width))
        )
        groups: list[list[_Row]] = []
        current: list[_Row] = []
        used_rows = used_labels = 0
        for row in sorted(rows, key=key):
            k = row.model_rows
            # Inputs pad to the widest in the run; label positions add as they are.
            cut = current and (
                used_rows + k > self.config.max_batch_rows
                or (used_rows + k) * max(row.width, current[-1].width) + used_labels + row.label_positions
                > self.config.max_batch_tokens
                or (self.config.group_by_prompt and row.version_id != current[-1].version_id)
                or _generates(row) != _generates(current[-1])
            )
            if cut:
                groups.append(current)
                current, used_rows, used_labels = [], 0, 0
            current.append(row)
            used_rows += k
            used_labels += row.label_positions
        if current:
            groups.append(current)
        return groups

    def _labels(self, request: ServeRequest) -> tuple[str, str]:
        return metrics.prompt_labels(str(request.get("tenant_id", "")), str(request.get("prompt", "")))

    def _reply(self, request: ServeRequest, status: str, **fields: Any) -> ServeReply:
        metrics.REQUESTS.labels(*self._labels(request), status).inc()
        metrics.LATENCY.labels(*self._labels(request)).observe(max(0.0, time.time() - _enqueued_at(request)))
        return cast(
            ServeReply,
            {"request_id": request["request_id"], "status": status, "worker": self.worker, **fields},
        )
