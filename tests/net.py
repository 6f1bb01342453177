"""Network helpers for tests that start servers of their own."""

from __future__ import annotations

import os
import socket

# The Redis server the tests use (its databases 12-14); a parallel run points this at a server of its own.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def redis_db_url(db: int) -> str:
    """The URL of database `db` on the tests' Redis server."""
    return f"{TEST_REDIS_URL}/{db}"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
