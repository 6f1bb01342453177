"""What every transport shares, free of torch (the web process imports it): a taken request and the loop."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from workers.contracts import ServeReply, ServeRequest
from workers.serving.config import ServingConfig


@dataclass
class Pending:
    """A request taken from a transport, with the transport's own handle (stream entry id, future)."""

    request: ServeRequest
    handle: Any = None

    @property
    def rows(self) -> int:
        return len(self.request["inputs"])


class Source(Protocol):
    def take(self, max_rows: int, max_wait_s: float, stop: threading.Event) -> list[Pending]: ...
    def reply(self, pending: Pending, reply: ServeReply) -> bool: ...


class Processor(Protocol):
    def process(self, batch: list[Pending]) -> list[ServeReply]: ...


def run_loop(source: Source, batcher: Processor, config: ServingConfig, stop: threading.Event) -> None:
    """Take a batch, answer it, repeat; `stop` is looked at between batches, so the batch in hand finishes."""
    while not stop.is_set():
        batch = source.take(config.max_batch_rows, config.max_wait_ms / 1000, stop)
        if not batch:
            continue
        for pending, reply in zip(batch, batcher.process(batch), strict=True):
            source.reply(pending, reply)
