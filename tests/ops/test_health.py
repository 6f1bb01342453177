"""/healthz and /readyz on the real web server (gunicorn) against a PostgreSQL cluster the test stops."""

from __future__ import annotations

import time

import pytest
import requests

from tests.net import redis_db_url
from tests.ops.services import PgCluster, WebServer
from workers.health import CACHE_S


@pytest.fixture
def cluster():
    pg = PgCluster()
    pg.start()
    yield pg
    pg.destroy()


def _get(url: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = requests.get(url, timeout=10)
    return response.status_code, response.json(), time.monotonic() - started


def test_readyz_is_503_naming_the_database_while_it_is_down_and_200_after_restart(cluster, tmp_path):
    web = WebServer(
        {
            "DATABASE_URL": cluster.url,
            "CELERY_BROKER_URL": redis_db_url(14),
            "SOFTSERVE_VAR_DIR": str(tmp_path / "var"),
            "STORAGE_DIR": str(tmp_path / "storage"),
            "S3_ENDPOINT_URL": "",
            "SERVING_REDIS_URL": "",
            "REDIS_URL": "",
            "SOFTSERVE_READY_TIMEOUT_S": "2",
        },
        tmp_path / "web.log",
    )
    try:
        status, body, _ = _get(f"{web.url}/readyz")
        assert (status, body["checks"]) == (200, {"database": "ok", "broker": "ok", "storage": "ok"}), body

        cluster.stop()
        time.sleep(CACHE_S)  # the answer before the stop may be reused for up to CACHE_S
        status, body, took = _get(f"{web.url}/readyz")
        assert status == 503, body
        assert body["failing"] == ["database"]
        assert body["error"]["code"] == "not_ready" and "database" in body["error"]["message"]
        assert took < 3, f"/readyz took {took:.1f}s with the database down"
        # Alive is not ready: the process still answers, without touching the database.
        status, body, _ = _get(f"{web.url}/healthz")
        assert (status, body) == (200, {"status": "ok"})

        cluster.start()
        time.sleep(CACHE_S)
        status, body, _ = _get(f"{web.url}/readyz")
        assert status == 200, body
    finally:
        web.stop()


def test_probes_skip_host_checks_and_auth(client):
    """A kubelet probes by pod IP, which is in no ALLOWED_HOSTS; a probe needs no login."""
    response = client.get("/healthz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_names_an_unreachable_broker(client, settings, db):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["storage"] == "ok"
    assert "127.0.0.1" not in response.content.decode()  # an unauthenticated probe leaks no addresses
