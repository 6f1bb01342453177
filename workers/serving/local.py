"""The embedded pool: the same batching loop in a thread of the web process, no Redis (the default).

One thread per base model, started on the first request for it; the model loads in that thread. A
bounded in-memory queue stands in for the stream: over it, `QueueFull` (the platform answers 503).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from workers.contracts import ServeReply, ServeRequest, ServingStatus
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending, run_loop

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More requests wait than the queue holds."""


class LocalSource:
    def __init__(self, queue_max: int):
        self.queue: queue.Queue[Pending] = queue.Queue(maxsize=queue_max)

    def put(self, request: ServeRequest) -> Future:
        future: Future = Future()
        try:
            self.queue.put_nowait(Pending(request=request, handle=future))
        except queue.Full:
            raise QueueFull from None
        return future

    def take(self, max_rows: int, max_wait_s: float, stop: threading.Event) -> list[Pending]:
        try:
            batch = [self.queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        closes = time.monotonic() + max_wait_s
        while sum(p.rows for p in batch) < max_rows:
            left = closes - time.monotonic()
            try:
                batch.append(self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def reply(self, pending: Pending, reply: ServeReply) -> bool:
        if pending.handle.done():
            return False
        pending.handle.set_result(reply)
        return True


class LocalPool:
    """One base model served in a daemon thread of this process."""

    def __init__(self, config: ServingConfig):
        self.config = config
        self.source = LocalSource(config.queue_max)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"serving:{config.base_model}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # torch is imported here, in the serving thread, never when the web app imports this module.
        from workers.engine.base_model import load_base_model
        from workers.serving.batcher import Batcher
        from workers.serving.cache import PromptCache
        from workers.storage import default_store

        config = self.config
        try:
            fm = load_base_model(config.base_model, device=config.device or None)
        except Exception as exc:  # answer every request with the reason rather than hang them
            log.exception("cannot load %s", config.base_model)
            self._refuse_all(f"The serving model {config.base_model!r} cannot be loaded: {exc}")
            return
        cache = PromptCache(
            fm, default_store(), config.device_cache_prompts, config.host_cache_prompts, config.kv_cache
        )
        run_loop(self.source, Batcher(fm, cache, config), config, self.stop)

    def _refuse_all(self, message: str) -> None:
        while not self.stop.is_set():
            for pending in self.source.take(self.config.max_batch_rows, 0, self.stop):
                reply: ServeReply = {
                    "request_id": pending.request["request_id"],
                    "status": ServingStatus.ERROR,
                    "error": message,
                }
                self.source.reply(pending, reply)

    def submit(self, request: ServeRequest, timeout_s: float) -> ServeReply | None:
        """The reply, or None when none came within `timeout_s`. Raises QueueFull."""
        future = self.source.put(request)
        try:
            return future.result(timeout=max(0.0, timeout_s))
        except FutureTimeout:
            future.cancel()
            return None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


_pools: dict[str, LocalPool] = {}
_pools_lock = threading.Lock()


def submit(request: ServeRequest, timeout_s: float, config: ServingConfig | None = None) -> ServeReply | None:
    """Send one request to this process's pool for its base model (started on first use)."""
    with _pools_lock:
        pool = _pools.get(request["base_model"])
        if pool is None:
            pool = LocalPool(config or ServingConfig.from_env(base_model=request["base_model"]))
            _pools[request["base_model"]] = pool
    return pool.submit(request, timeout_s)


def close_pools() -> None:
    """Stop every embedded pool (tests; a web server simply exits)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
