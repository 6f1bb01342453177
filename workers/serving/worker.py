"""One serving worker process: load the frozen model once, consume the model's stream until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable

import redis
import torch

from workers.engine.base_model import load_base_model
from workers.serving.batcher import Batcher
from workers.serving.cache import PromptCache
from workers.serving.config import ServingConfig
from workers.serving.metrics import serve_metrics
from workers.serving.queueing import run_loop
from workers.serving.redis_queue import RedisSource
from workers.storage import default_store

log = logging.getLogger(__name__)
# While Redis is down or restarting the worker waits this long between attempts instead of exiting.
REDIS_RETRY_S = 1.0


def consumer_name() -> str:
    """Unique per process: a restarted worker must not inherit a dead one's pending entries by name."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _checks(config: ServingConfig) -> dict[str, Callable[[], None]]:
    """The serving worker's /readyz: its Redis stream and the object storage its prompts come from."""
    from common.contracts import StorageLocation
    from common.settings import READY_TIMEOUT_S
    from workers.health import redis_check, storage_check

    timeout = READY_TIMEOUT_S.read()
    return {
        "redis": redis_check(config.redis_url, timeout),
        "storage": storage_check(StorageLocation.from_env(), timeout),
    }


def serve(config: ServingConfig, stop: threading.Event | None = None) -> None:
    """Serve until `stop` is set (SIGTERM and SIGINT set it); the batch in hand is finished first."""
    if not config.redis_url:
        raise SystemExit("A serving worker needs SERVING_REDIS_URL (or REDIS_URL); see .env.example.")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if config.torch_threads:  # before the model loads: its first ops size torch's thread pool
        torch.set_num_threads(config.torch_threads)
    fm = load_base_model(config.base_model, device=config.device or None)
    consumer = consumer_name()
    cache = PromptCache(
        fm, default_store(), config.device_cache_prompts, config.host_cache_prompts, config.kv_cache
    )
    batcher = Batcher(fm, cache, config, worker=consumer)
    source = RedisSource(redis.Redis.from_url(config.redis_url), config, consumer)
    serve_metrics(config.metrics_port, lambda: _checks(config))
    log.info("serving %s as %s (torch threads: %d)", config.base_model, consumer, torch.get_num_threads())
    # On stdout whatever the log setup: supervisors, tests and benchmarks wait for this line.
    print(f"serving worker ready: {consumer}", flush=True)  # noqa: T201
    _serve_through_outages(source, batcher, config, stop, consumer)
    source.leave()
    log.info("stopped cleanly")


def _serve_through_outages(
    source: RedisSource, batcher: Batcher, config: ServingConfig, stop: threading.Event, consumer: str
) -> None:
    """The loop until `stop`, carried over Redis restarts: a lost connection is retried, not fatal. A
    batch whose replies could not be sent stays pending in the group and is delivered again after
    SERVING_CLAIM_IDLE_MS, so its callers still get their answers once Redis is back."""
    while not stop.is_set():
        try:
            run_loop(source, batcher, config, stop, worker=consumer)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning(
                "Redis unavailable (%s: %s); retrying in %.0f s", type(exc).__name__, exc, REDIS_RETRY_S
            )
            stop.wait(REDIS_RETRY_S)
