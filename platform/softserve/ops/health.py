"""The web process's probes: `/healthz` (alive, touches nothing) and `/readyz` (database, broker,
storage and, in redis serving mode, the serving Redis, each reachable within SOFTSERVE_READY_TIMEOUT_S)."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connections

from softserve.serving.client import serving_mode
from workers.contracts import StorageLocation
from workers.health import Check, Readiness, broker_check, readiness, redis_check, storage_check


def _database() -> None:
    # Runs in a probe thread: its own connection, closed afterwards so probes never leak connections.
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def checks() -> dict[str, Check]:
    timeout = settings.SOFTSERVE_READY_TIMEOUT_S
    where = StorageLocation.from_env(os.environ, str(settings.VAR / "storage"))
    out: dict[str, Check] = {
        "database": _database,
        "broker": broker_check(settings.CELERY_BROKER_URL, timeout),
        "storage": storage_check(where, timeout),
    }
    if serving_mode() == "redis":
        out["serving_redis"] = redis_check(settings.SERVING_REDIS_URL, timeout)
    return out


def ready() -> Readiness:
    return readiness(checks(), settings.SOFTSERVE_READY_TIMEOUT_S)
