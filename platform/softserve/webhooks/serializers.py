"""A webhook as the team reads it (the secret by its prefix only), what may be sent to make or change
one, and its delivery log."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from common.contracts import WebhookEvent
from softserve.webhooks.models import Webhook, WebhookDelivery
from workers import webhook_net

SECRET_SHOWN = 10  # characters of the secret a read shows ("whsec_ab12…"): enough to tell two apart


def allowed() -> webhook_net.Allowed:
    """The operator's exceptions to the address rules (the workers apply the same at delivery)."""
    return webhook_net.Allowed.parse(settings.WEBHOOK_ALLOW_PRIVATE_HOSTS, settings.WEBHOOK_ALLOW_HTTP)


class WebhookSerializer(serializers.ModelSerializer):
    secret_prefix = serializers.SerializerMethodField()

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "description",
            "enabled",
            "consecutive_failures",
            "disabled_reason",
            "secret_prefix",
            "created_at",
        ]
        read_only_fields = fields

    def get_secret_prefix(self, hook: Webhook) -> str:
        return f"{hook.secret[:SECRET_SHOWN]}…"


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (HMAC-SHA256 key of Softserve-Signature): shown once, never again."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


def _events_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=[e.value for e in WebhookEvent]),
        min_length=1,
        max_length=len(WebhookEvent),
        help_text="Events to deliver: " + ", ".join(e.value for e in WebhookEvent) + ".",
        **kwargs,
    )


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=webhook_net.MAX_URL_CHARS,
        trim_whitespace=True,
        help_text="https:// (http:// only where the operator allows it); no private addresses.",
    )
    events = _events_field()
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate_url(self, value: str) -> str:
        try:
            webhook_net.resolve(value, allowed())
        except webhook_net.UnsafeURL as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        return sorted(set(value))


class WebhookUpdateSerializer(serializers.Serializer):
    events = _events_field(required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False, help_text="true again resets the failure count.")

    def validate_events(self, value: list[str]) -> list[str]:
        return sorted(set(value))

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError("Send at least one of events, description, enabled.")
        return data


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "created_at",
            "next_attempt_at",
            "delivered_at",
        ]
        read_only_fields = fields
