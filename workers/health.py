"""Readiness checks shared by the web process and the workers: is the database, the broker, the object
storage (and, where used, the serving Redis) reachable right now?

No Django, no torch: the web side passes its own database check, the workers pass SQLAlchemy's. Every
check has its own short network timeout, and `readiness` runs them side by side under one deadline, so a
probe answers within about `timeout_s` whatever hangs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from workers.contracts import StorageLocation

logger = logging.getLogger(__name__)

Check = Callable[[], None]  # returns when the dependency answers, raises when it does not

# Bounded: a dependency that hangs holds at most these threads; later probes then time out instead of
# piling up more threads.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what went wrong

    @property
    def failing(self) -> list[str]:
        return [name for name, result in self.checks.items() if result != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failing

    def body(self) -> dict:
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


def readiness(checks: Mapping[str, Check], timeout_s: float) -> Readiness:
    """Runs every check at once; one that has not answered within `timeout_s` counts as failing."""
    futures = {name: _POOL.submit(check) for name, check in checks.items()}
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


def redis_check(url: str, timeout_s: float) -> Check:
    def check() -> None:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            client.ping()
        finally:
            client.close()

    return check


def sqlalchemy_check(url: str, timeout_s: float) -> Check:
    """A fresh connection (never a pooled one that may be stale) that runs SELECT 1."""

    def check() -> None:
        import sqlalchemy as sa

        connect_args = {"connect_timeout": max(1, int(timeout_s))} if url.startswith("postgres") else {}
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

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
    """S3: HEAD the bucket without botocore's retries (one try, short timeouts); a folder: it exists."""

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
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=where.endpoint_url,
            region_name=where.region,
            config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}),
        )
        client.head_bucket(Bucket=where.bucket)

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

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/")
        if path == "/healthz":
            body, status, kind = json.dumps({"status": "ok"}).encode(), "200 OK", "application/json"
        elif path == "/readyz":
            result = readiness(checks(), timeout_s)
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
