"""Issue 22, finding 4, the load check: a flood of anonymous /readyz requests (full scale: 2,000 from 50
clients; `make test`: 400 from 20) against the web under gunicorn, on PostgreSQL, a Redis broker and S3
over HTTP, while a kubelet probes /readyz as web.yaml's readinessProbe does. Every kubelet probe must be
answered 200 within the probe's timeoutSeconds, or the pod would be taken out of service by strangers."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
import yaml
from django.db import connection

from tests.conftest import ROOT
from tests.net import redis_db_url
from tests.ops.services import WebServer
from tests.reliability.figures import record_figures, scaled

pytestmark = pytest.mark.django_db

REQUESTS = scaled(400, 2000)
CLIENTS = scaled(20, 50)
KUBELET_EVERY_S = 0.5


def _probe_timeout_s() -> float:
    """The web Deployment's readinessProbe timeoutSeconds (deploy/kubernetes/web.yaml)."""
    for doc in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "web.yaml").read_text()):
        if doc and doc["kind"] == "Deployment":
            return float(doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["timeoutSeconds"])
    raise AssertionError("no web Deployment in deploy/kubernetes/web.yaml")


def test_a_readyz_flood_leaves_the_kubelets_probe_answered_in_time(s3_endpoint, tmp_path):
    db = connection.settings_dict
    bucket = f"readyz-{uuid.uuid4().hex[:10]}"
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_keys(creds)).create_bucket(
        Bucket=bucket
    )
    timeout_s = _probe_timeout_s()
    web = WebServer(
        {
            **creds,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": redis_db_url(14),
            "S3_ENDPOINT_URL": s3_endpoint,
            "S3_BUCKET": bucket,
            "SERVING_REDIS_URL": "",
            "REDIS_URL": "",
            "SOFTSERVE_VAR_DIR": str(tmp_path / "var"),
        },
        tmp_path / "web.log",
    )
    kubelet: list[tuple[int, float]] = []
    flooding = threading.Event()

    def probe_like_the_kubelet() -> None:
        while flooding.is_set():
            started = time.monotonic()
            try:
                status = requests.get(f"{web.url}/readyz", timeout=timeout_s).status_code
            except requests.Timeout:
                status = 0
            kubelet.append((status, time.monotonic() - started))
            time.sleep(KUBELET_EVERY_S)

    def stranger(n: int) -> list[tuple[int, float]]:
        out = []
        with requests.Session() as session:
            for _ in range(n):
                started = time.monotonic()
                status = session.get(f"{web.url}/readyz", timeout=60).status_code
                out.append((status, time.monotonic() - started))
        return out

    try:
        assert requests.get(f"{web.url}/readyz", timeout=timeout_s).status_code == 200, web.logs()
        sessions_before = _sessions()
        flooding.set()
        watcher = threading.Thread(target=probe_like_the_kubelet)
        watcher.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            shares = [REQUESTS // CLIENTS + (i < REQUESTS % CLIENTS) for i in range(CLIENTS)]
            flood = [answer for answers in pool.map(stranger, shares) for answer in answers]
        took = time.monotonic() - started
        flooding.clear()
        watcher.join()
        time.sleep(1.5)  # PostgreSQL's statistics are flushed about once a second
        sessions = _sessions() - sessions_before
    finally:
        flooding.clear()
        web.stop()
    latencies = sorted(seconds for _, seconds in flood)
    slowest_probe = max(seconds for _, seconds in kubelet)
    figures = {
        "flood_requests": len(flood),
        "flood_clients": CLIENTS,
        "flood_seconds": round(took, 2),
        "flood_per_second": round(len(flood) / took, 1),
        "flood_not_200": sum(status != 200 for status, _ in flood),
        "flood_p50_ms": round(1000 * statistics.median(latencies), 1),
        "flood_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "kubelet_probes": len(kubelet),
        "kubelet_probe_timeout_s": timeout_s,
        "kubelet_not_200_in_time": sum(status != 200 or s >= timeout_s for status, s in kubelet),
        "kubelet_slowest_ms": round(1000 * slowest_probe, 1),
        "database_sessions_opened": sessions,
    }
    record_figures("readyz_flood", "Anonymous /readyz flood beside the kubelet's probe (gunicorn)", figures)
    assert len(flood) == REQUESTS and figures["flood_not_200"] == 0, figures
    assert kubelet, "the kubelet never probed during the flood"
    assert figures["kubelet_not_200_in_time"] == 0, (figures, kubelet)
    # The database check ran about once a second (one web process), not once per request.
    assert sessions <= 2 * (took + 2), figures


def _keys(creds: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": creds["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"],
    }


def _sessions() -> int:
    """Sessions PostgreSQL has seen on the test database (the readiness check opens one per run)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])
