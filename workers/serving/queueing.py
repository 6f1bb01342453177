"""What every transport shares, free of torch (the web process imports it): a taken request, fair batch
formation across tenants, error replies, and the loop that no request can stop."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from common.contracts import SERVING_ERRORS, ServeReply, ServeRequest, ServingStatus
from workers.serving.config import ServingConfig

log = logging.getLogger(__name__)

# After a transport error (Redis gone), the loop waits this long before it tries again.
TRANSPORT_RETRY_S = 1.0


@dataclass
class Pending:
    """A request taken from a transport, with the transport's own handle (stream entry id, future)."""

    request: ServeRequest
    handle: Any = None

    @property
    def rows(self) -> int:
        """Inputs the request adds to a batch; twice that with a shadow version (its rows ride along)."""
        inputs = self.request.get("inputs") if isinstance(self.request, dict) else None
        if not isinstance(inputs, list):
            return 1
        return len(inputs) * (2 if self.request.get("shadow") else 1)

    @property
    def tenant(self) -> str:
        return str(self.request.get("tenant_id", "")) if isinstance(self.request, dict) else ""


class Source(Protocol):
    def take(self, max_rows: int, max_wait_s: float, stop: threading.Event) -> list[Pending]: ...
    def reply(self, pending: Pending, reply: ServeReply) -> bool: ...
    def holding(self) -> int: ...


# Called with (index in the batch, reply) when a request is done before its whole batch is.
Send = Callable[[int, ServeReply], None]


class Processor(Protocol):
    def process(self, batch: list[Pending], send: Send | None = None) -> list[ServeReply]: ...


def error_reply(
    request: ServeRequest, code: str, worker: str, exc: BaseException | None = None
) -> ServeReply:
    """The tenant sees SERVING_ERRORS[code] and the request id; the detail goes to this process's log."""
    request_id = str(request.get("request_id", "?")) if isinstance(request, dict) else "?"
    if exc is not None:
        if code == "internal":
            log.error("request %s failed: %r", request_id, exc, exc_info=exc)
        else:
            log.warning("request %s failed (%s): %s", request_id, code, exc)
    return {
        "request_id": request_id,
        "status": ServingStatus.ERROR,
        "code": code,
        "error": SERVING_ERRORS[code],
        "worker": worker,
    }


def fair_pick(backlog: Sequence[Pending], max_rows: int) -> tuple[list[Pending], list[Pending]]:
    """(this batch, what waits): requests taken round-robin across tenants, each tenant's in arrival
    order, up to `max_rows` inputs. A tenant with a burst queued gets one request per turn, like any
    other, so a quiet tenant's request rides in the next batch instead of behind the whole burst."""
    queues: OrderedDict[str, list[Pending]] = OrderedDict()
    for pending in backlog:
        queues.setdefault(pending.tenant, []).append(pending)
    chosen: list[Pending] = []
    rows = 0
    while queues:
        for tenant in list(queues):
            pending = queues[tenant][0]
            if chosen and rows + pending.rows > max_rows:
                del queues[tenant]  # this tenant's next request waits for the next batch
                continue
            chosen.append(queues[tenant].pop(0))
            rows += pending.rows
            if not queues[tenant]:
                del queues[tenant]
    taken = {id(p) for p in chosen}
    return chosen, [p for p in backlog if id(p) not in taken]


def answer(
    processor: Processor, batch: list[Pending], worker: str = "local", send: Send | None = None
) -> list[ServeReply]:
    """The processor's replies; if it raises (a bug no request should reach), the batch is answered in
    halves, then one by one, so only the request that raises gets an error."""
    try:
        replies = processor.process(batch, send)
        if len(replies) != len(batch):
            raise RuntimeError(f"{len(replies)} replies for a batch of {len(batch)}")
        return replies
    except Exception as exc:
        if len(batch) == 1:
            return [error_reply(batch[0].request, "internal", worker, exc)]
        log.warning("a batch of %d failed (%r); answering it in halves", len(batch), exc)
        half = len(batch) // 2
        late = None if send is None else (lambda i, reply: send(half + i, reply))
        return answer(processor, batch[:half], worker, send) + answer(processor, batch[half:], worker, late)


def run_loop(
    source: Source, batcher: Processor, config: ServingConfig, stop: threading.Event, worker: str = "local"
) -> None:
    """Take a batch, answer it, repeat; `stop` is looked at between batches, so the batch in hand (and
    whatever the transport already took for later batches) finishes.

    Nothing a request does ends the loop: a failing batch is answered request by request, and a
    transport error (Redis restarting) is logged and retried.
    """
    while not stop.is_set() or source.holding():
        try:
            batch = source.take(config.max_batch_rows, config.max_wait_ms / 1000, stop)
        except Exception:
            log.exception("taking a batch failed; retrying in %.0f s", TRANSPORT_RETRY_S)
            stop.wait(TRANSPORT_RETRY_S)
            continue
        if not batch:
            continue
        sent: set[int] = set()

        def send(i: int, reply: ServeReply, batch: list[Pending] = batch, sent: set[int] = sent) -> None:
            if i in sent:
                return  # answered already (a batch re-run in halves after a failure)
            sent.add(i)
            try:
                source.reply(batch[i], reply)
            except Exception:
                # Unanswered, it stays pending in the stream and is re-delivered (or given up) later.
                log.exception("replying to %s failed", reply.get("request_id"))

        for i, reply in enumerate(answer(batcher, batch, worker, send)):
            send(i, reply)
