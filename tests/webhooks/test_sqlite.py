"""The embedded default (SQLite, as `make run`): the workers' webhook SQL on Django's SQLite spellings
(UUIDs as hex, JSON as text, naive UTC times) announces, claims, delivers and records."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from common.contracts import DeliveryStatus, WebhookEvent
from tests.conftest import ROOT
from tests.webhooks.conftest import worker_config
from workers import webhooks
from workers.webhook_signing import verify_signature

SETUP = r"""
import json, sys
from softserve.tenancy.actions import create_tenant
from softserve.webhooks.models import Webhook
tenant, _, _ = create_tenant("acme", "owner@acme.example")
hook = Webhook.objects.create(tenant=tenant, url=sys.argv[1], events=["version.ready"], secret="whsec_s")
print(json.dumps({"tenant": str(tenant.pk), "hook": str(hook.pk)}))
"""


def test_webhook_sql_on_sqlite(tmp_path, receiver):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SOFTSERVE_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "sqlite-test-" + "k" * 50,
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
    }
    manage = [sys.executable, str(ROOT / "platform" / "manage.py")]
    migrated = subprocess.run(
        [*manage, "migrate", "-v0"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    made = subprocess.run(
        [*manage, "shell", "-c", SETUP.replace("sys.argv[1]", repr(receiver.url))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    ids = json.loads(made.stdout.strip().splitlines()[-1])
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db = webhooks.WebhookDB(engine)
    with engine.begin() as conn:
        (delivery_id,) = db.enqueue(conn, ids["tenant"], WebhookEvent.VERSION_READY, {"version": 1})
    assert db.due() == [delivery_id]
    assert webhooks.deliver(db, delivery_id, worker_config()) == DeliveryStatus.DELIVERED
    got = receiver.requests[0]
    assert verify_signature(
        "whsec_s", got.headers["Softserve-Timestamp"], got.body, got.headers["Softserve-Signature"]
    )
    assert json.loads(got.body)["tenant"] == ids["tenant"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.deliveries)).one()
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)
    assert db.due() == []
    engine.dispose()
