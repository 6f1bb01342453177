"""Outages through the Django stack: a database that is gone, a rate-limit Redis that stopped, a broker
that is down when a job is created. Each is real (a closed port, a stopped redis-server), not a mock."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from common.contracts import QUEUE_GPU, TASK_TUNE
from softserve.api.errors import server_error
from softserve.jobs.models import Job
from softserve.producer import celery_app, send_job
from softserve.tenancy import throttling
from softserve.tenancy.models import Quota
from tests.net import free_port, redis_db_url
from tests.teams import make_dataset_version, make_prompt

pytestmark = pytest.mark.django_db(transaction=True)
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


@contextmanager
def database_down() -> Iterator[None]:
    """The default connection closed and pointed at a port nothing listens on: every query fails to
    connect (django.db.OperationalError), as while PostgreSQL restarts."""
    conn = connections["default"]
    port = conn.settings_dict["PORT"]
    conn.close()
    conn.settings_dict["PORT"] = str(free_port())
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict["PORT"] = port


def assert_json_503(response) -> dict:
    assert response.status_code == 503, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["status"] == 503 and error["code"] == "unavailable" and error["fields"] == {}
    assert "retry" in error["message"]
    return error


def test_database_down_is_a_json_503_for_keys_and_sessions_then_requests_work_again(acme):
    session = APIClient(raise_request_exception=False)
    session.force_login(acme.owner)
    with database_down():
        assert_json_503(acme.client.get("/api/v1/jobs"))  # the key lookup fails (authentication)
        assert_json_503(acme.client.post("/api/v1/prompts", {"name": "x"}, format="json"))
        assert_json_503(session.get("/api/v1/datasets"))  # the session lookup fails
    assert acme.client.get("/api/v1/jobs").status_code == 200


@pytest.mark.parametrize("method, path", [("post", "/accounts/logout/"), ("get", "/app/")])
def test_database_down_on_a_page_is_a_short_html_503_with_the_request_id(acme, method, path):
    browser = Client(raise_request_exception=False)
    browser.force_login(acme.owner)
    with database_down():
        response = getattr(browser, method)(path, HTTP_X_REQUEST_ID="req-outage-1")
    assert response.status_code == 503 and response["Retry-After"]
    assert response["Content-Type"].startswith("text/html") and response["X-Request-ID"] == "req-outage-1"
    page = response.content.decode()
    assert "Briefly unavailable" in page and "req-outage-1" in page and len(page) < 2000


def test_handler500_tells_an_outage_from_a_bug(rf):
    """Django calls handler500 inside its `except`, for exceptions outside any view (a middleware)."""
    for path, exc, status in [
        ("/app/", RuntimeError("bug"), 500),
        ("/api/v1/jobs", RuntimeError("bug"), 500),
        ("/app/", redis.exceptions.ConnectionError("down"), 503),
        ("/api/v1/jobs", redis.exceptions.TimeoutError("slow"), 503),
    ]:
        request = rf.get(path)
        request.request_id = "r-42"
        try:
            raise exc
        except Exception:
            response = server_error(request)
        assert response.status_code == status
        if path.startswith("/api/"):
            error = json.loads(response.content)["error"]
            assert error["status"] == status and set(error) == {"status", "code", "message", "fields"}
        else:
            assert b"r-42" in response.content and b"Traceback" not in response.content
        assert ("Retry-After" in response) == (status == 503)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A throwaway redis-server of this test's own (the test stops it)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.terminate()
    proc.wait(timeout=10)


def _redis_cache(settings, url: str) -> None:
    settings.CACHES = {
        "default": {"BACKEND": REDIS_CACHE, "LOCATION": url, "OPTIONS": settings.REDIS_CLIENT_OPTIONS}
    }


def test_rate_limit_cache_stopped_fails_open_with_a_warning_and_a_count(acme, settings, redis_server, caplog):
    url, proc = redis_server
    _redis_cache(settings, url)
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=2)
    assert [acme.client.get("/api/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]
    proc.terminate()
    proc.wait(timeout=10)
    before = throttling.UNTHROTTLED._value.get()
    throttling._last_log["at"] = 0.0  # the warning is logged at most every LOG_EVERY_S per process
    with caplog.at_level(logging.WARNING, logger="softserve.tenancy.throttling"):
        statuses = [acme.client.get("/api/v1/jobs").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # the documented policy: open, counted, logged
    assert throttling.UNTHROTTLED._value.get() - before == 3
    assert caplog.text.count("rate-limit cache unavailable") == 1


def test_rate_limit_cache_stopped_with_fail_closed_is_a_503(acme, settings):
    _redis_cache(settings, f"redis://127.0.0.1:{free_port()}/0")
    settings.RATE_LIMIT_FAIL_OPEN = False
    assert_json_503(APIClient(HTTP_AUTHORIZATION=f"Bearer {acme.key}").get("/api/v1/jobs"))


def _database_url() -> str:
    db = connections["default"].settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_broker_down_when_a_job_is_created_still_answers_201_and_the_reconciler_sends_it(
    acme, settings, caplog
):
    from workers.jobdb import JobDB, database_url
    from workers.runner import reconcile

    make_prompt(acme)
    dataset = make_dataset_version(acme.tenant)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    celery_app.cache_clear()
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(dataset.id), "steps": 5}
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="softserve.jobs.actions"):
        response = acme.client.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    assert time.monotonic() - started < 15
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "queued" and "the reconciler re-sends it" in caplog.text

    # Once the broker is back, the reconciler (the workers' periodic task) sends the queued job.
    broker = redis.Redis.from_url(redis_db_url(14))
    broker.flushdb()
    settings.CELERY_BROKER_URL = redis_db_url(14)
    celery_app.cache_clear()
    jobdb = JobDB(database_url({"DATABASE_URL": _database_url()}))
    try:
        sent = reconcile(jobdb, send_job, requeue_after_s=0)
        assert sent["resent"] == [str(job.pk)]
        messages = [json.loads(raw) for raw in broker.lrange(QUEUE_GPU, 0, -1)]
        assert [m["headers"]["task"] for m in messages] == [TASK_TUNE]
        assert [json.loads(base64.b64decode(m["body"]))[1] for m in messages] == [{"job_id": str(job.pk)}]
    finally:
        jobdb.engine.dispose()  # else the test database cannot be dropped at the end of the run
        broker.flushdb()
        celery_app.cache_clear()
