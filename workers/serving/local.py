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

from common.contracts import ServeReply, ServeRequest
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending, error_reply, fair_pick, run_loop

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More requests wait than the queue holds."""


class TenantQueueFull(QueueFull):
    """This tenant already has as many requests queued or in flight as one tenant may."""


# A worker looks at up to this many batches' worth of queued requests to pick each batch fairly.
LOOKAHEAD_BATCHES = 2


class LocalSource:
    def __init__(self, queue_max: int):
        self.queue: queue.Queue[Pending] = queue.Queue(maxsize=queue_max)
        self._backlog: list[Pending] = []  # taken from the queue, not yet batched (this thread only)
        self._lock = threading.Lock()
        self._per_tenant: dict[str, int] = {}  # queued or in flight, per tenant

    def put(self, request: ServeRequest, tenant_max: int | None = None) -> Future[ServeReply]:
        """Queue the request; QueueFull when the pool is full, TenantQueueFull when its tenant's share is."""
        tenant = str(request["tenant_id"])
        with self._lock:
            if tenant_max is not None and self._per_tenant.get(tenant, 0) >= tenant_max:
                raise TenantQueueFull
            self._per_tenant[tenant] = self._per_tenant.get(tenant, 0) + 1
        future: Future[ServeReply] = Future()
        try:
            self.queue.put_nowait(Pending(request=request, handle=future))
        except queue.Full:
            self._release(tenant)
            raise QueueFull from None
        return future

    def queued(self, tenant: str) -> int:
        with self._lock:
            return self._per_tenant.get(tenant, 0)

    def _release(self, tenant: str) -> None:
        with self._lock:
            left = self._per_tenant.get(tenant, 0) - 1
            if left > 0:
                self._per_tenant[tenant] = left
            else:
                self._per_tenant.pop(tenant, None)

    def holding(self) -> int:
        return len(self._backlog)

    def _get(self, timeout: float | None) -> Pending | None:
        """The next request whose caller still waits (a cancelled one is dropped), or None."""
        while True:
            try:
                pending = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
            except queue.Empty:
                return None
            if pending.handle.set_running_or_notify_cancel():
                return pending
            self._release(pending.tenant)  # its caller gave up: never compute it

    def take(self, max_rows: int, max_wait_s: float, stop: threading.Event) -> list[Pending]:
        if not self._backlog and not stop.is_set():
            first = self._get(0.2)
            if first is None:
                return []
            self._backlog.append(first)
        closes = time.monotonic() + max_wait_s
        while not stop.is_set() and sum(p.rows for p in self._backlog) < max_rows:
            left = closes - time.monotonic()
            more = self._get(left if left > 0 else None)
            if more is None:
                break
            self._backlog.append(more)
        while not stop.is_set() and len(self._backlog) < LOOKAHEAD_BATCHES * max_rows:
            more = self._get(None)
            if more is None:
                break
            self._backlog.append(more)
        batch, self._backlog = fair_pick(self._backlog, max_rows)
        return batch

    def reply(self, pending: Pending, reply: ServeReply) -> bool:
        self._release(pending.tenant)
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
        except Exception:  # answer every request (with an error) rather than hang them
            log.exception("cannot load %s", config.base_model)
            self._refuse_all()
            return
        cache = PromptCache(
            fm, default_store(), config.device_cache_prompts, config.host_cache_prompts, config.kv_cache
        )
        run_loop(self.source, Batcher(fm, cache, config), config, self.stop, worker="local")

    def _refuse_all(self) -> None:
        while not self.stop.is_set():
            for pending in self.source.take(self.config.max_batch_rows, 0, self.stop):
                self.source.reply(pending, error_reply(pending.request, "model_unavailable", "local"))

    def submit(
        self, request: ServeRequest, timeout_s: float, tenant_max: int | None = None
    ) -> ServeReply | None:
        """The reply, or None when none came within `timeout_s`. Raises QueueFull (TenantQueueFull)."""
        future = self.source.put(request, tenant_max)
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


def submit(
    request: ServeRequest,
    timeout_s: float,
    config: ServingConfig | None = None,
    tenant_max: int | None = None,
) -> ServeReply | None:
    """Send one request to this process's pool for its base model (started on first use)."""
    with _pools_lock:
        pool = _pools.get(request["base_model"])
        if pool is None:
            pool = LocalPool(config or ServingConfig.from_env(base_model=request["base_model"]))
            _pools[request["base_model"]] = pool
    return pool.submit(request, timeout_s, tenant_max)


def close_pools() -> None:
    """Stop every embedded pool (tests; a web server simply exits)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()
