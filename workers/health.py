"""Readiness checks shared by the web process and the workers: is the database, the broker, the object
storage (and, where used, the serving Redis) reachable right now?

No Django, no torch: the web side passes its own database check, the workers pass SQLAlchemy's. Every
check has its own short network timeout, and `readiness` runs them side by side under one deadline, so a
probe answers within about `timeout_s` whatever hangs.

A probe is unauthenticated, so its cost must not grow with how often it is asked: `CachedReadiness`
answers every caller within CACHE_S of the last run from that run (callers arriving while a run is under
way wait for it and share it), a check still running from an earlier probe is waited on again rather than
started twice (so a hanging dependency holds one thread per check, never a queue of them), and each check
keeps its client (Redis connection pool, boto3 client, SQLAlchemy engine) from one run to the next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from common.contracts import StorageLocation

logger = logging.getLogger(__name__)

Check = Callable[[], None]  # returns when the dependency answers, raises when it does not

# Bounded: a dependency that hangs holds at most these threads; and since a check is never started again
# while it still runs (`_in_flight`), nothing queues behind them either.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")
_in_flight: dict[Check, Future[None]] = {}
_in_flight_lock = threading.Lock()
# One run of the checks answers every probe within this many seconds of it.
CACHE_S = 1.0


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what went wrong

    @property
    def failing(self) -> list[str]:
        return [name for name, result in self.checks.items() if result != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failing

    def body(self) -> dict[str, Any]:
        """The JSON answer of a readiness probe: 200 with every check "ok", else 503 naming the failing."""
        if self.ok:
            return {"status": "ok", "checks": self.checks}
        names = ", ".join(self.failing)
        return {
            "status": "unavailable",
            "failing": self.failing,
            "checks": self.checks,
            "error": {
                "status": 503,
                "code": "not_ready",
                "message": f"Not reachable: {names}.",
                "fields": {name: [self.checks[name]] for name in self.failing},
            },
        }


def _start(check: Check) -> Future[None]:
    """The check's run still under way from an earlier probe, else a new one."""
    with _in_flight_lock:
        running = _in_flight.get(check)
        if running is not None and not running.done():
            return running
        for done in [c for c, f in _in_flight.items() if f.done()]:
            del _in_flight[done]
        future = _POOL.submit(check)
        _in_flight[check] = future
        return future


def readiness(checks: Mapping[str, Check], timeout_s: float) -> Readiness:
    """Runs every check at once; one that has not answered within `timeout_s` counts as failing."""
    futures = {name: _start(check) for name, check in checks.items()}
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = f"no answer within {timeout_s:g} s"
        except Exception as exc:
            # The probe is unauthenticated: the answer names the kind of failure, the log has the detail.
            results[name] = f"unreachable ({type(exc).__name__})"
            logger.warning("readiness check %s failed: %s", name, exc)
            continue
        if results[name] != "ok":
            logger.warning("readiness check %s failed: %s", name, results[name])
    return Readiness(results)


class CachedReadiness:
    """`readiness` of one set of checks, run at most once per CACHE_S: the checks (and the clients they
    hold) are built once, on first use, by `build`."""

    def __init__(self, build: Callable[[], Mapping[str, Check]], timeout_s: float, cache_s: float = CACHE_S):
        self._build, self.timeout_s, self.cache_s = build, timeout_s, cache_s
        self._checks: Mapping[str, Check] | None = None
        self._last: tuple[float, Readiness] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Readiness:
        # One caller runs the checks; those arriving meanwhile wait for its answer (at most about
        # timeout_s) instead of running their own.
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.cache_s:
                return self._last[1]
            if self._checks is None:
                self._checks = self._build()
            result = readiness(self._checks, self.timeout_s)
            self._last = (time.monotonic(), result)
            return result


def redis_check(url: str, timeout_s: float) -> Check:
    """PING on a client made once (its connection pool reconnects after an outage)."""
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, max_connections=4
    )

    def check() -> None:
        client.ping()

    return check


def sqlalchemy_check(url: str, timeout_s: float) -> Check:
    """A fresh connection each run (never a pooled one that may be stale) that runs SELECT 1, from an
    engine made once."""
    import sqlalchemy as sa

    connect_args = {"connect_timeout": max(1, int(timeout_s))} if url.startswith("postgres") else {}
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)

    def check() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    return check


def broker_check(url: str, timeout_s: float) -> Check:
    """Celery's broker: Redis (production), SQLAlchemy (the embedded default) or anything kombu speaks."""
    if url.startswith(("redis://", "rediss://")):
        return redis_check(url, timeout_s)
    if url.startswith("sqla+"):
        return sqlalchemy_check(url[len("sqla+") :], timeout_s)

    def check() -> None:
        from kombu import Connection

        with Connection(url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1)

    return check


def storage_check(where: StorageLocation, timeout_s: float) -> Check:
    """S3: HEAD the bucket without botocore's retries (one try, short timeouts), with one client made on
    first use (boto3 clients are thread-safe; making one is slow and not); a folder: it exists."""
    made: list[Any] = []
    lock = threading.Lock()

    def client() -> Any:
        with lock:
            if not made:
                import boto3
                from botocore.config import Config

                made.append(
                    boto3.session.Session().client(
                        "s3",
                        endpoint_url=where.endpoint_url,
                        region_name=where.region,
                        config=Config(
                            connect_timeout=timeout_s,
                            read_timeout=timeout_s,
                            retries={"max_attempts": 1},
                            max_pool_connections=2,
                        ),
                    )
                )
            return made[0]

    def check() -> None:
        if where.folder is not None:
            import os
            from pathlib import Path

            # The folder is made on first write; reachable means it exists (or can be made) and is writable.
            folder = Path(where.folder).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(f"the storage folder {folder} is not writable")
            return
        client().head_bucket(Bucket=where.bucket)

    return check


def serve_http(
    port: int,
    metrics: Callable[[], bytes],
    checks: Callable[[], Mapping[str, Callable[[], None]]],
    timeout_s: float,
) -> Any:
    """`/metrics`, `/healthz` and `/readyz` on `port` from daemon threads; returns the server."""
    import json
    import threading
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import CONTENT_TYPE_LATEST, ThreadingWSGIServer, _SilentHandler

    ready = CachedReadiness(checks, timeout_s)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/")
        if path == "/healthz":
            body, status, kind = json.dumps({"status": "ok"}).encode(), "200 OK", "application/json"
        elif path == "/readyz":
            result = ready()
            body = json.dumps(result.body()).encode()
            status = "200 OK" if result.ok else "503 Service Unavailable"
            kind = "application/json"
        elif path in ("/metrics", ""):
            body, status, kind = metrics(), "200 OK", CONTENT_TYPE_LATEST
        else:
            body, status, kind = b"not found\n", "404 Not Found", "text/plain"
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    server = make_server("0.0.0.0", port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name=f"metrics-{port}", daemon=True).start()
    return server
