"""Events the platform announces: one delivery row per subscribed, enabled hook, in the caller's
transaction; a worker sends each after commit (TASK_DELIVER_WEBHOOK), never the web request."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from softserve import producer
from softserve.tenancy.models import Tenant
from softserve.webhooks.models import Webhook, WebhookDelivery
from workers.contracts import TASK_DELIVER_WEBHOOK, WebhookEvent

log = logging.getLogger(__name__)


def emit(tenant: Tenant, event: WebhookEvent, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Queue `event` with `data` for each of the tenant's enabled hooks that subscribe to it."""
    hooks = [h for h in Webhook.objects.for_tenant(tenant).filter(enabled=True) if event in h.events]
    if not hooks:
        return []
    now = timezone.now()
    body = {"event": str(event), "tenant": str(tenant.pk), "created_at": now.isoformat(), "data": data}
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(tenant=tenant, webhook=hook, event=event, payload=body, next_attempt_at=now)
        for hook in hooks
    )
    ids = [str(d.pk) for d in deliveries]
    transaction.on_commit(lambda: _send(ids))
    return deliveries


def _send(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        try:
            producer.send(TASK_DELIVER_WEBHOOK, delivery_id=delivery_id)
        except Exception:  # the broker is down: the periodic sweep sends due deliveries later
            log.warning("could not send webhook delivery %s now; the sweep will", delivery_id, exc_info=True)
