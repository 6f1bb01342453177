"""A team's webhooks and every delivery of an event to them (signed, retried from a worker, logged)."""

from __future__ import annotations

from django.db import models

from common.contracts import DeliveryStatus, choices
from softserve.tenancy.models import TenantOwned


class Webhook(TenantOwned):
    """An HTTPS (or operator-allowed) endpoint told about the events it subscribes to."""

    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)  # values of contracts.WebhookEvent
    description = models.CharField(max_length=200, blank=True)
    # The HMAC-SHA256 key of every delivery's signature; shown to the team when the hook is created.
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    # Deliveries that gave up in a row; past the limit the hook is disabled and says why.
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]


class WebhookDelivery(TenantOwned):
    """One event for one hook: its body (signed as sent), attempts and the last answer."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=choices(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_recent"),
        ]
