"""Webhook settings in Debian's Chromium against the live server and a real Celery worker: a private
address is refused beside the field with the form kept, the secret is shown once, a test delivery
reaches a real HTTP receiver (a 500 first, retried by the sweep) and the log shows each step."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from softserve.tenancy.actions import create_tenant
from tests.webhooks.conftest import receiver
from tests.webui.conftest import look, sign_in
from workers.webhook_signing import verify_signature

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"
__all__ = ["receiver"]  # the real HTTP receiver fixture


@pytest.fixture(scope="module", autouse=True)
def operator_allows_local():
    """Before the module's worker starts (it takes this environment): loopback and http are allowed, as
    a test deployment would allow them, and retries come quickly."""
    wanted = {
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": "127.0.0.1",
        "WEBHOOK_ALLOW_HTTP": "1",
        "WEBHOOK_BACKOFF_S": "1",
        "WEBHOOK_SWEEP_EVERY_S": "1",
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_create_refuse_test_delivery_log_disable_delete(page, stack, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = "127.0.0.1"
    settings.WEBHOOK_ALLOW_HTTP = True
    _, user, _ = create_tenant("acme", "owner@acme.example", PASSWORD)
    sign_in(page, user.username, PASSWORD)
    page.get_by_role("link", name="Webhooks").click()
    page.wait_for_url("**/app/webhooks")

    page.get_by_label("Endpoint URL").fill("https://169.254.169.254/latest/meta-data")
    page.get_by_label("Description (optional)").fill("CI notifications")
    page.get_by_label("version.ready").check()
    page.get_by_label("job.failed").check()
    page.get_by_role("button", name="Create webhook").click()
    error = page.locator("#id_hook_url-error")
    expect(error).to_contain_text("WEBHOOK_ALLOW_PRIVATE_HOSTS")
    expect(page.get_by_label("Endpoint URL")).to_have_value("https://169.254.169.254/latest/meta-data")
    expect(page.get_by_label("Description (optional)")).to_have_value("CI notifications")
    expect(page.get_by_label("job.failed")).to_be_checked()
    expect(page.get_by_label("alias.moved")).not_to_be_checked()
    look(page, "webhooks-private-address-refused")

    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_role("button", name="Create webhook").click()
    secret = page.locator("#new-hook-secret")
    expect(secret).to_have_text(re.compile(r"^whsec_"))
    plaintext = secret.inner_text()
    expect(page.locator("#hooks")).to_contain_text(receiver.url)
    expect(page.locator("#hooks")).to_contain_text("enabled")
    look(page, "webhooks-created")

    receiver.answer(500)  # the first attempt fails: the sweep retries it after its backoff
    page.get_by_role("link", name="Send it a test delivery").click()
    page.wait_for_url(re.compile(r"/app/webhooks/[0-9a-f-]+$"))
    page.get_by_role("button", name="Send test delivery").click()
    expect(page.locator(".messages")).to_contain_text("test delivery (ping) is queued")
    for _ in range(120):
        page.reload()
        if "delivered" in page.locator("#deliveries").inner_text():
            break
        page.wait_for_timeout(500)
    row = page.locator("#deliveries tbody tr").first
    expect(row).to_contain_text("ping")
    expect(row).to_contain_text("delivered")
    expect(row.locator("td").nth(3)).to_have_text("2")  # attempts: the 500, then the retry
    assert len(receiver.requests) == 2
    got = receiver.requests[-1]
    assert verify_signature(
        plaintext, got.headers["Softserve-Timestamp"], got.body, got.headers["Softserve-Signature"]
    )
    look(page, "webhook-delivery-log")

    page.get_by_role("button", name="Disable webhook").click()
    expect(page.locator("#hook-state")).to_have_text("disabled")
    page.get_by_role("button", name="Delete webhook").click()
    page.wait_for_url("**/app/webhooks")
    expect(page.locator(".messages")).to_contain_text("is deleted")
    expect(page.locator("#new-hook-secret")).to_have_count(0)
    expect(page.get_by_text("No webhooks yet.")).to_be_visible()
