"""A real Celery worker (with its beat) delivers to a real HTTP receiver: the platform queues an event,
the delivery task sends it after commit, a 500 is retried by the periodic sweep after its backoff, and
the receiver verifies the signature with workers/webhook_signing.py."""

from __future__ import annotations

import os

import pytest
import redis
from django.db import transaction

from common.contracts import WebhookEvent
from softserve.producer import celery_app
from softserve.webhooks.events import emit
from softserve.webhooks.models import WebhookDelivery
from tests.net import redis_db_url
from tests.workers import conftest as worker_fixtures
from workers.webhook_signing import verify_signature

pytestmark = pytest.mark.django_db(transaction=True)

BROKER_URL = redis_db_url(10)  # a database of its own: the job tests' workers use 12


@pytest.fixture
def worker(settings, tmp_path):
    client = redis.Redis.from_url(BROKER_URL)
    client.ping()
    client.flushdb()
    settings.CELERY_BROKER_URL = BROKER_URL
    celery_app.cache_clear()
    env = {
        **os.environ,
        "DATABASE_URL": worker_fixtures.test_database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "SOFTSERVE_VAR_DIR": str(tmp_path / "var"),
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        "WEBHOOK_ALLOW_HTTP": "1",
        "WEBHOOK_BACKOFF_S": "0.5",
        "WEBHOOK_SWEEP_EVERY_S": "0.5",
        "HF_HUB_OFFLINE": "1",
    }
    (tmp_path / "var").mkdir()
    (tmp_path / "logs").mkdir()
    pool = worker_fixtures.Workers(env, tmp_path / "logs")
    pool.start()
    yield pool
    pool.stop_all()
    client.flushdb()
    celery_app.cache_clear()


def test_a_real_worker_delivers_retries_and_signs(acme, allow_local, receiver, worker):
    made = acme.client.post(
        "/api/v1/webhooks", {"url": receiver.url, "events": ["canary.rolled_back"]}, format="json"
    )
    assert made.status_code == 201, made.content
    secret = made.json()["secret"]
    receiver.answer(500)
    with transaction.atomic():
        (delivery,) = emit(acme.tenant, WebhookEvent.CANARY_ROLLED_BACK, {"prompt": "p", "version": 2})
    assert receiver.requests == []  # nothing from this process: a worker sends it

    def delivered():
        delivery.refresh_from_db()
        return delivery.status == "delivered"

    worker_fixtures.wait_for(delivered, 120, "the delivery, retried after a 500", worker)
    assert (delivery.attempts, delivery.last_status_code) == (2, 200)
    assert len(receiver.requests) == 2  # exactly once per attempt
    for got in receiver.requests:
        headers = got.headers
        assert headers["Softserve-Event"] == "canary.rolled_back"
        assert verify_signature(
            secret, headers["Softserve-Timestamp"], got.body, headers["Softserve-Signature"]
        )
    assert WebhookDelivery.objects.count() == 1
