"""Writes with side effects: each changes rows and records an audit event in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from softserve.tenancy.models import ROLE_RANK, ApiKey, AuditEvent, Membership, Quota, Role, Tenant
from softserve.tenancy.permissions import Actor


def record(
    actor: Actor | None, tenant: Tenant, action: str, target: Any, before=None, after=None
) -> AuditEvent:
    return AuditEvent.objects.create(
        tenant=tenant,
        actor_user=actor.user if actor else None,
        actor_key=actor.key if actor else None,
        action=action,
        target_type=type(target).__name__,
        target_id=str(target.pk),
        before=before,
        after=after,
    )


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "role": key.role,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked": key.revoked_at is not None,
    }


@transaction.atomic
def create_tenant(name: str, owner_email: str, password: str | None = None) -> tuple[Tenant, object, str]:
    """A tenant, its owner (created if new) and an API key with every scope; returns the key's plaintext.

    With `password`, a new owner can also sign in to the web UI with it. An owner who has an account
    already keeps it as it is: making a team never changes anyone's password (`user.created_now` says
    which case it was)."""
    if Tenant.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A tenant named {name!r} exists already."]})
    tenant = Tenant.objects.create(name=name)
    Quota.objects.create(tenant=tenant)
    user, created = get_user_model().objects.get_or_create(
        username=owner_email, defaults={"email": owner_email}
    )
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()  # no password yet: nobody can sign in as them until one is set
        user.save(update_fields=["password"])
    user.created_now = created
    Membership.objects.create(tenant=tenant, user=user, role=Role.OWNER)
    key, plaintext = ApiKey.mint(
        tenant, "bootstrap", ["read", "write", "predict"], role=Role.OWNER, created_by=user
    )
    record(None, tenant, "tenant.create", tenant, after={"name": name, "owner": owner_email})
    record(None, tenant, "key.create", key, after=key_view(key))
    return tenant, user, plaintext


@transaction.atomic
def create_key(
    actor: Actor, name: str, scopes: list[str], role: str | None, expires_at: datetime | None
) -> tuple[ApiKey, str]:
    role = role or actor.role
    if ROLE_RANK[role] > ROLE_RANK[actor.role]:
        raise ValidationError({"role": [f"A key cannot have more than your own role ({actor.role})."]})
    if actor.key is not None:
        # A key minting a key: no scope it lacks, no life beyond its own.
        extra = sorted(set(scopes) - set(actor.key.scopes))
        if extra:
            raise ValidationError({"scopes": [f"This key lacks the scope(s) {extra}; it cannot grant them."]})
        own = actor.key.expires_at
        if own is not None and (expires_at is None or expires_at > own):
            raise ValidationError(
                {"expires_at": [f"A key made by this key must expire by {own.isoformat()}, as it does."]}
            )
    # A key made by a key answers to the same person: it stops working when they leave.
    creator = actor.user if actor.key is None else actor.key.created_by
    key, plaintext = ApiKey.mint(
        actor.tenant, name, scopes, role=role, expires_at=expires_at, created_by=creator
    )
    record(actor, actor.tenant, "key.create", key, after=key_view(key))
    return key, plaintext


@transaction.atomic
def revoke_key(actor: Actor, key: ApiKey) -> ApiKey:
    from django.utils import timezone

    if ROLE_RANK[key.role] > ROLE_RANK[actor.role]:
        raise PermissionDenied(f"This key has the {key.role} role, above yours ({actor.role}).")
    before = key_view(key)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    record(actor, actor.tenant, "key.revoke", key, before=before, after=key_view(key))
    return key


def _lock_tenant(tenant: Tenant, membership: Membership) -> None:
    """Serialises membership changes of one tenant until commit (two owners demoting each other at once
    must not both see the other still there), then re-reads the membership as of the lock."""
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    try:
        membership.refresh_from_db(fields=["role"])
    except Membership.DoesNotExist:
        raise NotFound("No such member.") from None


def _guard_last_owner(membership: Membership, new_role: str | None) -> None:
    if membership.role != Role.OWNER or new_role == Role.OWNER:
        return
    owners = Membership.objects.for_tenant(membership.tenant).filter(role=Role.OWNER).count()
    if owners <= 1:
        raise ValidationError({"role": ["The tenant's last owner cannot be removed or demoted."]})


def _guard_rank(actor: Actor, role: str) -> None:
    if ROLE_RANK[role] > ROLE_RANK[actor.role]:
        raise ValidationError({"role": [f"You cannot grant more than your own role ({actor.role})."]})


NO_SUCH_USER = "No user has this e-mail; ask them to get an account first, then invite them again."


def existing_user(email: str):
    """The active account with this e-mail (case-insensitive; the username is the e-mail for accounts
    made by `createtenant`), or a field error: inviting never creates an account."""
    users = get_user_model().objects.filter(is_active=True)
    user = users.filter(email__iexact=email).order_by("pk").first() or (
        users.filter(username__iexact=email).order_by("pk").first()
    )
    if user is None:
        raise ValidationError({"email": [NO_SUCH_USER]})
    return user


@transaction.atomic
def add_member(actor: Actor, email: str, role: str) -> Membership:
    """Invite an existing user by e-mail, with a role no higher than the actor's own."""
    _guard_rank(actor, role)
    user = existing_user(email)
    if Membership.objects.for_tenant(actor.tenant).filter(user=user).exists():
        raise ValidationError({"email": [f"{email} is a member already."]})
    membership = Membership.objects.create(tenant=actor.tenant, user=user, role=role)
    record(actor, actor.tenant, "member.add", membership, after={"email": email, "role": role})
    return membership


@transaction.atomic
def change_role(actor: Actor, membership: Membership, role: str) -> Membership:
    _lock_tenant(actor.tenant, membership)
    _guard_rank(actor, role)
    _guard_rank(actor, membership.role)
    _guard_last_owner(membership, role)
    before = {"email": membership.user.email, "role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    record(actor, actor.tenant, "member.role", membership, before=before, after={**before, "role": role})
    return membership


@transaction.atomic
def remove_member(actor: Actor, membership: Membership) -> None:
    _lock_tenant(actor.tenant, membership)
    _guard_rank(actor, membership.role)
    _guard_last_owner(membership, None)
    record(
        actor,
        actor.tenant,
        "member.remove",
        membership,
        before={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()
