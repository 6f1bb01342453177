"""The web process's probes: `/healthz` (alive, touches nothing) and `/readyz` (database, broker,
storage and, in redis serving mode, the serving Redis, each reachable within SOFTSERVE_READY_TIMEOUT_S).

`/readyz` is unauthenticated (the kubelet asks it), so its answer is shared: one run of the checks per
second per process at most (workers/health.py's CachedReadiness), with clients made once per configuration.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import connections

from common.contracts import StorageLocation
from softserve.serving.client import serving_mode
from workers.health import CachedReadiness, Check, Readiness, broker_check, redis_check, storage_check


def _database() -> None:
    # Runs in a probe thread: its own connection, closed afterwards so probes never leak connections.
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def _configuration() -> tuple:
    """What the checks depend on: a change (a test's settings) gets checks and a cache of their own."""
    # The location the platform stores to and the jobs read from: one rule (StorageLocation.from_env).
    where: StorageLocation = settings.SOFTSERVE_STORAGE
    serving_redis = settings.SERVING_REDIS_URL if serving_mode() == "redis" else ""
    return (settings.CELERY_BROKER_URL, where, serving_redis, settings.SOFTSERVE_READY_TIMEOUT_S)


def _checks(broker: str, where: StorageLocation, serving_redis: str, timeout: float) -> dict[str, Check]:
    out: dict[str, Check] = {
        "database": _database,
        "broker": broker_check(broker, timeout),
        "storage": storage_check(where, timeout),
    }
    if serving_redis:
        out["serving_redis"] = redis_check(serving_redis, timeout)
    return out


@functools.lru_cache(maxsize=8)
def _probe(configuration: tuple) -> CachedReadiness:
    return CachedReadiness(functools.partial(_checks, *configuration), configuration[-1])


def ready() -> Readiness:
    return _probe(_configuration())()
