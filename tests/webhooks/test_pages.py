"""The webhook pages through Django's test client: a bad form keeps what was typed with the message
beside the field, the secret once, actions and the delivery log, roles, another team's hook."""

from __future__ import annotations

import pytest
from django.test import Client

from softserve.webhooks.models import Webhook, WebhookDelivery
from tests.teams import join

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_bad_form_keeps_what_was_typed_and_a_good_one_shows_the_secret_once(
    acme, settings, allow_local, receiver
):
    page = browser(acme.owner)
    assert page.get("/app/webhooks").status_code == 200
    refused = page.post(
        "/app/webhooks", {"url": "https://10.0.0.1/hook", "events": ["job.failed"], "description": "ops"}
    )
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_hook_url-error"' in html and "private" in html
    assert 'value="https://10.0.0.1/hook"' in html and 'value="ops"' in html
    assert 'value="job.failed" checked' in html
    none = page.post("/app/webhooks", {"url": receiver.url})
    assert none.status_code == 422 and 'id="id_hook_events-error"' in none.content.decode()
    made = page.post("/app/webhooks", {"url": receiver.url, "events": ["version.ready", "job.failed"]})
    assert made.status_code == 200
    hook = Webhook.objects.get(tenant=acme.tenant)
    assert hook.secret in made.content.decode() and "no-store" in made["Cache-Control"]
    again = page.get("/app/webhooks").content.decode()
    assert hook.secret not in again and hook.secret[:10] in again and receiver.url in again


def test_actions_and_the_delivery_log(acme, allow_local, receiver, monkeypatch):
    monkeypatch.setattr("softserve.webhooks.events.producer.send", lambda *a, **k: None)
    page = browser(acme.owner)
    page.post("/app/webhooks", {"url": receiver.url, "events": ["version.ready"]})
    hook = Webhook.objects.get(tenant=acme.tenant)
    url = f"/app/webhooks/{hook.pk}"
    assert page.post(url, {"action": "test"}).status_code == 302
    delivery = WebhookDelivery.objects.get(webhook=hook)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=8, last_status_code=500, last_error="HTTP 500: boom"
    )
    assert page.post(url, {"action": "disable"}).status_code == 302
    Webhook.objects.filter(pk=hook.pk).update(disabled_reason="Disabled on 2026-12-07 09:00 UTC: 5 failed")
    shown = page.get(url).content.decode()
    assert "HTTP 500: boom" in shown and ">500<" in shown and "Disabled on 2026-12-07" in shown
    assert "Enable webhook" in shown
    page.post(url, {"action": "enable"})
    hook.refresh_from_db()
    assert hook.enabled and hook.disabled_reason == "" and hook.consecutive_failures == 0
    assert page.post(url, {"action": "nothing"}).status_code == 302
    assert page.post(url, {"action": "delete"})["Location"] == "/app/webhooks"
    assert not Webhook.objects.filter(pk=hook.pk).exists()


def test_owners_and_admins_only_and_another_teams_hook_is_not_found(acme, globex, allow_local, receiver):
    browser(acme.owner).post("/app/webhooks", {"url": receiver.url, "events": ["version.ready"]})
    hook = Webhook.objects.get(tenant=acme.tenant)
    member = join(acme, "member@acme.example", "member").user
    refused = browser(member).get("/app/webhooks")
    assert refused.status_code == 403 and refused.context["needed"] == "admin"
    admin = join(acme, "admin@acme.example", "admin").user
    assert browser(admin).get(f"/app/webhooks/{hook.pk}").status_code == 200
    other = browser(globex.owner)
    assert other.get(f"/app/webhooks/{hook.pk}").status_code == 404
    assert other.post(f"/app/webhooks/{hook.pk}", {"action": "delete"}).status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()
