from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from softserve.tenancy.models import SCOPES, ApiKey, AuditEvent, Invitation, Membership, Role
from softserve.tenancy.permissions import AUDIT_BY, ActorKind


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "role",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPES), min_length=1)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_scopes(self, value: list[str]) -> list[str]:
        return sorted(set(value))

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key itself: shown once, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = ["id", "email", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InvitationSerializer(serializers.ModelSerializer):
    """A pending invitation as its team sees it."""

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "created_at", "answered_at"]
        read_only_fields = fields


class ReceivedInvitationSerializer(serializers.ModelSerializer):
    """An invitation as the invited person sees it: which team, which role."""

    team = serializers.CharField(source="tenant.name", read_only=True)
    team_id = serializers.UUIDField(source="tenant_id", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "team", "team_id", "role", "status", "created_at", "answered_at"]
        read_only_fields = fields


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "action", "target_type", "target_id", "before", "after"]
        read_only_fields = fields

    def get_actor(self, event: AuditEvent) -> str | None:
        # An operator (`operator:<email>`) or the platform (`system:canary-watch`) names itself in `after`
        # (tenancy.actions.record); an operator's row keeps its user too, so this comes first.
        by = event.after.get(AUDIT_BY) if isinstance(event.after, dict) and not event.actor_key_id else None
        if isinstance(by, str) and by.startswith((f"{ActorKind.OPERATOR}:", f"{ActorKind.SYSTEM}:")):
            return by
        if event.actor_key_id:
            return f"key:{event.actor_key.prefix}"
        if event.actor_user_id:
            return f"user:{event.actor_user.email}"
        return None
