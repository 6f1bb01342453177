"""Outages against gunicorn (the production server, configured from the environment like production): a
Redis that accepts connections but never answers, as the rate-limit cache and as the Celery broker, and
database connections that PostgreSQL ended (a restart) between requests."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connections

from softserve.jobs.models import Job
from tests.live import HangingServer, call, start_gunicorn, stop, subprocess_env
from tests.net import redis_db_url
from tests.teams import make_dataset_version, make_prompt

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT_S = 1  # REDIS_CONNECT_TIMEOUT_S and REDIS_SOCKET_TIMEOUT_S of the server under test
BOUND_S = 10  # a request that met a hanging Redis has finished by then


def _database_url() -> str:
    db = connections["default"].settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="module")
def hanging():
    server = HangingServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def web(hanging, django_db_setup, tmp_path_factory):
    """One gunicorn for the module, on the test database (created by django_db_setup)."""
    tmp_path = tmp_path_factory.mktemp("web")
    env = subprocess_env(
        {
            "DATABASE_URL": _database_url(),
            "REDIS_URL": f"redis://127.0.0.1:{hanging.port}/0",  # the rate-limit cache
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{hanging.port}/1",
            "SERVING_REDIS_URL": redis_db_url(13),
            "REDIS_CONNECT_TIMEOUT_S": str(TIMEOUT_S),
            "REDIS_SOCKET_TIMEOUT_S": str(TIMEOUT_S),
            "SOFTSERVE_VAR_DIR": str(tmp_path / "var"),
        }
    )
    proc, port = start_gunicorn(env, tmp_path / "web.log", threads=4)
    yield port
    stop(proc)


def test_a_redis_that_never_answers_costs_a_bounded_wait_not_a_thread(acme, web, hanging):
    make_prompt(acme)
    dataset = make_dataset_version(acme.tenant)
    listed = call(web, "GET", "/api/v1/jobs", acme.key, timeout=60)
    assert listed.status == 200, listed.body  # the documented policy: the rate limit fails open
    assert listed.seconds < BOUND_S
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(dataset.id), "steps": 5}
    created = call(web, "POST", "/api/v1/jobs", acme.key, body, timeout=60)
    assert created.status == 201, created.body  # committed; the broker send timed out and was logged
    assert created.seconds < BOUND_S
    assert Job.objects.get(pk=created.body["id"]).status == "queued"
    assert hanging.held, "the server under test never reached the hanging Redis"
    # Four threads, eight requests at once: none of them is stuck for good.
    started = time.monotonic()
    answers = [call(web, "GET", "/api/v1/prompts", acme.key, timeout=60) for _ in range(8)]
    assert {a.status for a in answers} == {200} and time.monotonic() - started < 8 * BOUND_S


def test_connections_postgresql_ended_are_replaced_not_answered_with_errors(acme, web):
    assert call(web, "GET", "/api/v1/jobs", acme.key).status == 200  # the server holds a connection now
    name = connections["default"].settings_dict["NAME"]
    with psycopg.connect(_database_url().rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchone()[0]
    connections["default"].close()  # the test's own connection may have been among them
    assert ended >= 1
    # CONN_HEALTH_CHECKS: the dead persistent connection is noticed and replaced before it is used.
    assert [call(web, "GET", "/api/v1/jobs", acme.key).status for _ in range(4)] == [200] * 4
