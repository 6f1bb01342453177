"""Writes to a team's webhooks: each in one transaction with its audit row; deliveries reach a worker
after commit (never sent from the web request)."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.contracts import WEBHOOK_TEST_EVENT, AuditAction
from softserve.errors import Invalid
from softserve.tenancy.actions import record
from softserve.tenancy.models import Tenant
from softserve.tenancy.permissions import Actor
from softserve.webhooks import events
from softserve.webhooks.models import Webhook, WebhookDelivery

SECRET_PREFIX = "whsec_"


def hook_view(hook: Webhook) -> dict[str, Any]:
    """What the audit log keeps of a hook: never its secret."""
    return {
        "url": hook.url,
        "events": hook.events,
        "description": hook.description,
        "enabled": hook.enabled,
    }


@transaction.atomic
def create_webhook(actor: Actor, url: str, subscribed: list[str], description: str = "") -> Webhook:
    """A hook with a fresh signing secret (the caller shows it once). At most WEBHOOKS_MAX_PER_TEAM."""
    # One creation per team at a time, so two at once cannot both pass the count.
    Tenant.objects.select_for_update().filter(pk=actor.tenant.pk).first()
    limit = settings.WEBHOOKS_MAX_PER_TEAM
    if Webhook.objects.for_tenant(actor.tenant).count() >= limit:
        raise Invalid({"url": [f"A team has at most {limit} webhooks; delete one first."]})
    hook = Webhook.objects.create(
        tenant=actor.tenant,
        url=url,
        events=subscribed,
        description=description,
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
    )
    record(actor, actor.tenant, AuditAction.WEBHOOK_CREATE, hook, after=hook_view(hook))
    return hook


@transaction.atomic
def update_webhook(actor: Actor, hook: Webhook, changes: dict[str, Any]) -> Webhook:
    """events, description, enabled. Enabling a hook again forgets its failures and why it was off."""
    hook = Webhook.objects.for_tenant(actor.tenant).select_for_update().get(pk=hook.pk)
    before = hook_view(hook)
    fields = []
    for name in ("events", "description", "enabled"):
        if name in changes and getattr(hook, name) != changes[name]:
            setattr(hook, name, changes[name])
            fields.append(name)
    if changes.get("enabled") is True and (hook.consecutive_failures or hook.disabled_reason):
        hook.consecutive_failures, hook.disabled_reason = 0, ""
        fields += ["consecutive_failures", "disabled_reason"]
    if fields:
        hook.save(update_fields=fields)
    record(actor, actor.tenant, AuditAction.WEBHOOK_UPDATE, hook, before=before, after=hook_view(hook))
    return hook


@transaction.atomic
def delete_webhook(actor: Actor, hook: Webhook) -> None:
    """The hook and its delivery log; deliveries not sent yet are never sent."""
    record(actor, actor.tenant, AuditAction.WEBHOOK_DELETE, hook, before=hook_view(hook))
    hook.delete()


@transaction.atomic
def send_test(actor: Actor, hook: Webhook) -> WebhookDelivery:
    """A `ping` delivery to this hook alone (enabled or not, whatever it subscribes to): signed and
    logged as any other, sent by a worker after commit; it never counts towards disabling the hook."""
    data = {
        "webhook": str(hook.pk),
        "message": "A test delivery from Softserve.",
        "at": timezone.now().isoformat(),
    }
    delivery = events.queue(actor.tenant, hook, WEBHOOK_TEST_EVENT, data)
    record(actor, actor.tenant, AuditAction.WEBHOOK_TEST, hook, after={"delivery": str(delivery.pk)})
    return delivery
