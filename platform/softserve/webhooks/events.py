"""Events the platform announces: one delivery row per subscribed, enabled hook, in the caller's
transaction; a worker sends each after commit (TASK_DELIVER_WEBHOOK), never the web request. The
workers announce their own events (version.ready, version.failed, job.failed) the same way, in SQL
(workers/webhooks.py), with the same body (contracts.webhook_envelope)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.contracts import TASK_DELIVER_WEBHOOK, WebhookEvent, webhook_envelope
from softserve import producer
from softserve.tenancy.models import Tenant
from softserve.webhooks.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)


def emit(tenant: Tenant, event: WebhookEvent, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Queue `event` with `data` for each of the tenant's enabled hooks that subscribe to it."""
    event = WebhookEvent(event)  # an unknown event is a bug of the caller: fail loudly, now
    hooks = [h for h in Webhook.objects.for_tenant(tenant).filter(enabled=True) if event in h.events]
    if not hooks:
        return []
    now = timezone.now()
    body = webhook_envelope(event, str(tenant.pk), now.isoformat(), data)
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(tenant=tenant, webhook=hook, event=event, payload=body, next_attempt_at=now)
        for hook in hooks
    )
    _after_commit([str(d.pk) for d in deliveries])
    return deliveries


def queue(tenant: Tenant, hook: Webhook, event: str, data: dict[str, Any]) -> WebhookDelivery:
    """One delivery to one hook (a test delivery), sent after commit like emit's."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        tenant=tenant,
        webhook=hook,
        event=event,
        payload=webhook_envelope(event, str(tenant.pk), now.isoformat(), data),
        next_attempt_at=now,
    )
    _after_commit([str(delivery.pk)])
    return delivery


def _after_commit(ids: list[str]) -> None:
    transaction.on_commit(lambda: _send(ids))


def _send(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        try:
            producer.send(TASK_DELIVER_WEBHOOK, delivery_id=delivery_id)
        except Exception:  # the broker is down: the periodic sweep sends due deliveries later
            log.warning("could not send webhook delivery %s now; the sweep will", delivery_id, exc_info=True)
