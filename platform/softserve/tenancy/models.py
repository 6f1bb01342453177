"""Tenants (teams), who belongs to them, their API keys, quotas and the audit log.

Every row that belongs to a tenant is reached through `for_tenant(tenant)`, which refuses to run
without a tenant: an unscoped query of tenant data is a bug, so it fails closed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_PREFIX = "ss"
SCOPES = ("read", "write", "predict")


class TenantRequired(Exception):
    """A tenant-owned table was queried without a tenant."""


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | None) -> TenantQuerySet:
        if tenant is None or not getattr(tenant, "pk", None):
            raise TenantRequired(f"{self.model.__name__} rows are only reachable through a tenant.")
        return self.filter(tenant=tenant)


class TenantOwned(models.Model):
    """A row that belongs to a tenant; opaque ids in URLs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(TenantOwned):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")]
        # Members in the order they joined (the settings page), without sorting all of them.
        indexes = [models.Index(fields=["tenant", "created_at"], name="membership_tenant_joined")]

    def at_least(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class InvitationStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


def invitee_email(user) -> str:
    """The address invitations to this account are sent to: its e-mail, lower-cased (accounts made by
    `createtenant` have the e-mail as username too); "" for an account without one."""
    email = (getattr(user, "email", "") or "").strip()
    if not email and "@" in (getattr(user, "username", "") or ""):
        email = user.username.strip()
    return email.lower()


class InvitationQuerySet(TenantQuerySet):
    def for_invitee(self, user) -> InvitationQuerySet:
        """The pending invitations addressed to this signed-in account, of any team: the one query of
        tenant rows that is not scoped to a tenant, so it is scoped to the person instead (fails closed
        for an account without an e-mail)."""
        email = invitee_email(user) if getattr(user, "is_authenticated", False) else ""
        if not email:
            return self.none()
        return self.filter(email=email, status=InvitationStatus.PENDING)


class Invitation(TenantOwned):
    """A role in a team offered to an e-mail address. Nothing changes for that person until they sign in
    and accept it; the inviter learns nothing about whether the address has an account."""

    email = models.EmailField(max_length=254)  # lower-cased
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=InvitationStatus.choices, default=InvitationStatus.PENDING
    )
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"],
                condition=models.Q(status=InvitationStatus.PENDING),
                name="one_pending_invitation_per_email",
            )
        ]
        indexes = [models.Index(fields=["email", "status"], name="invitation_invitee")]


class ApiKey(TenantOwned):
    """Shown once as `ss_<prefix>_<secret>`; only the prefix (for lookup) and a hash are kept."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    # A key acts with at most its creator's role, so a member cannot mint an admin's key; and at most
    # the creator's role of today (effective_role): demoting or removing a member demotes or ends their keys.
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # A team's newest keys first (the settings page), without sorting all of them.
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_recent")]

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def mint(cls, tenant: Tenant, name: str, scopes: list[str], **fields) -> tuple[ApiKey, str]:
        """A new key and its plaintext, which is never stored."""
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        key = cls.objects.create(
            tenant=tenant,
            name=name,
            prefix=prefix,
            secret_hash=cls.hash_secret(secret),
            scopes=scopes,
            **fields,
        )
        return key, f"{KEY_PREFIX}_{prefix}_{secret}"

    @classmethod
    def authenticate(cls, token: str) -> ApiKey | None:
        """The live key for a presented token, or None: unknown, wrong secret, revoked or expired."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        # The quota comes along (every API request's rate limit reads it), and so does the creator's
        # role in the key's tenant now: still one query per request.
        creator_role = Membership.objects.filter(
            tenant=models.OuterRef("tenant"), user=models.OuterRef("created_by")
        ).values("role")[:1]
        key = (
            cls.objects.select_related("tenant", "tenant__quota")
            .annotate(creator_role=models.Subquery(creator_role))
            .filter(prefix=parts[1])
            .first()
        )
        if key is None or not hmac.compare_digest(key.secret_hash, cls.hash_secret(parts[2])):
            return None
        return key if key.is_live and key.effective_role is not None else None

    @property
    def effective_role(self) -> str | None:
        """The role the key acts with: its own, bounded by its creator's current role in the tenant.
        None when the creator is no longer a member (or gone): such a key no longer works."""
        creator = getattr(self, "creator_role", None)
        if creator is None and not hasattr(self, "creator_role") and self.created_by_id:
            membership = Membership.objects.filter(tenant_id=self.tenant_id, user_id=self.created_by_id)
            creator = membership.values_list("role", flat=True).first()
        if creator is None:
            return None
        return min(self.role, creator, key=ROLE_RANK.__getitem__)

    @property
    def is_live(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class Quota(models.Model):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="quota")
    # Jobs running at once: enforced where a worker claims a job (workers/jobdb.py: claim_next).
    concurrent_jobs = models.PositiveIntegerField(default=2)
    # Jobs waiting to start: enforced when a job is created, so a team can queue settings or seeds and let
    # the scheduler run them in turn without one team's backlog growing without bound.
    queued_jobs = models.PositiveIntegerField(default=20)
    storage_bytes = models.PositiveBigIntegerField(default=5 * 2**30)
    requests_per_minute = models.PositiveIntegerField(default=600)


class AuditEvent(TenantOwned):
    """Who changed what, when, with the value before and after."""

    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
