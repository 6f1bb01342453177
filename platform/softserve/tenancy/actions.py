"""Writes with side effects: each changes rows and records an audit event in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.contracts import AuditAction
from softserve.errors import Forbidden, Invalid, NotFound
from softserve.tenancy.models import (
    ROLE_RANK,
    ApiKey,
    AuditEvent,
    Invitation,
    InvitationStatus,
    Membership,
    Quota,
    Role,
    Tenant,
)
from softserve.tenancy.permissions import AUDIT_BY, Actor


def record(
    actor: Actor | None, tenant: Tenant, action: AuditAction, target: Any, before=None, after=None
) -> AuditEvent:
    """One audit row. An operator or the platform is named in `after` under `by` (`operator:<email>`,
    `system:<name>`): the audit API shows that name, not a borrowed member's."""
    by = actor.audit_by if actor else None
    if by is not None:
        after = {**(after or {}), AUDIT_BY: by}
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
        raise Invalid({"name": [f"A tenant named {name!r} exists already."]})
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
    record(None, tenant, AuditAction.TENANT_CREATE, tenant, after={"name": name, "owner": owner_email})
    record(None, tenant, AuditAction.KEY_CREATE, key, after=key_view(key))
    return tenant, user, plaintext


@transaction.atomic
def create_key(
    actor: Actor, name: str, scopes: list[str], role: str | None, expires_at: datetime | None
) -> tuple[ApiKey, str]:
    role = role or actor.role
    if ROLE_RANK[role] > ROLE_RANK[actor.role]:
        raise Invalid({"role": [f"A key cannot have more than your own role ({actor.role})."]})
    if actor.key is not None:
        # A key minting a key: no scope it lacks, no life beyond its own.
        extra = sorted(set(scopes) - set(actor.key.scopes))
        if extra:
            raise Invalid({"scopes": [f"This key lacks the scope(s) {extra}; it cannot grant them."]})
        own = actor.key.expires_at
        if own is not None and (expires_at is None or expires_at > own):
            raise Invalid(
                {"expires_at": [f"A key made by this key must expire by {own.isoformat()}, as it does."]}
            )
    # A key made by a key answers to the same person: it stops working when they leave.
    creator = actor.user if actor.key is None else actor.key.created_by
    key, plaintext = ApiKey.mint(
        actor.tenant, name, scopes, role=role, expires_at=expires_at, created_by=creator
    )
    record(actor, actor.tenant, AuditAction.KEY_CREATE, key, after=key_view(key))
    return key, plaintext


@transaction.atomic
def revoke_key(actor: Actor, key: ApiKey) -> ApiKey:
    if ROLE_RANK[key.role] > ROLE_RANK[actor.role]:
        raise Forbidden(f"This key has the {key.role} role, above yours ({actor.role}).")
    before = key_view(key)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    record(actor, actor.tenant, AuditAction.KEY_REVOKE, key, before=before, after=key_view(key))
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
        raise Invalid({"role": ["The tenant's last owner cannot be removed or demoted."]})


def _guard_rank(actor: Actor, role: str) -> None:
    if ROLE_RANK[role] > ROLE_RANK[actor.role]:
        raise Invalid({"role": [f"You cannot grant more than your own role ({actor.role})."]})


def invitation_view(invitation: Invitation) -> dict[str, Any]:
    return {"email": invitation.email, "role": invitation.role, "status": invitation.status}


@transaction.atomic
def invite(actor: Actor, email: str, role: str) -> Invitation:
    """Offer a role (no higher than the actor's own) to whoever signs in with this e-mail. Nothing is
    looked up about the address: the answer is the same whether or not it has an account, and nobody
    joins a team without saying yes. Inviting an address again while its invitation is pending updates
    that invitation's role."""
    _guard_rank(actor, role)
    email = email.strip().lower()
    Tenant.objects.select_for_update().filter(pk=actor.tenant.pk).first()  # one invite per address at once
    members = Membership.objects.for_tenant(actor.tenant)
    if members.filter(Q(user__email__iexact=email) | Q(user__username__iexact=email)).exists():
        # The team's member list shows this already: it says nothing about accounts elsewhere.
        raise Invalid({"email": [f"{email} is a member already."]})
    pending = Invitation.objects.for_tenant(actor.tenant).filter(email=email, status=InvitationStatus.PENDING)
    invitation = pending.first()
    before = invitation_view(invitation) if invitation else None
    if invitation is None:
        inviter = actor.user if actor.key is None else actor.key.created_by
        invitation = Invitation.objects.create(
            tenant=actor.tenant, email=email, role=role, invited_by=inviter
        )
    elif invitation.role != role:
        invitation.role = role
        invitation.save(update_fields=["role"])
    record(
        actor,
        actor.tenant,
        AuditAction.MEMBER_INVITE,
        invitation,
        before=before,
        after=invitation_view(invitation),
    )
    return invitation


@transaction.atomic
def withdraw_invitation(actor: Actor, invitation: Invitation) -> Invitation:
    """The team takes back a pending invitation (no higher than the actor's own role)."""
    _guard_rank(actor, invitation.role)
    before = invitation_view(invitation)
    updated = Invitation.objects.for_tenant(actor.tenant).filter(
        pk=invitation.pk, status=InvitationStatus.PENDING
    )
    if not updated.update(status=InvitationStatus.WITHDRAWN, answered_at=timezone.now()):
        raise Invalid({"invitation": ["This invitation was answered or withdrawn already."]})
    invitation.refresh_from_db()
    record(
        actor,
        actor.tenant,
        AuditAction.MEMBER_UNINVITE,
        invitation,
        before=before,
        after=invitation_view(invitation),
    )
    return invitation


@transaction.atomic
def answer_invitation(user, invitation_id, accept: bool) -> Invitation:
    """The invited person, signed in, accepts (joins the team with the offered role) or declines. Only
    invitations addressed to the account's own e-mail are found; any other is a 404."""
    invitation = (
        Invitation.objects.for_invitee(user)
        .select_for_update()
        .select_related("tenant")
        .filter(pk=invitation_id)
    ).first()
    if invitation is None:
        raise NotFound("No such invitation.")
    before = invitation_view(invitation)
    tenant = invitation.tenant
    if accept:
        # An account that joined by another way meanwhile keeps the role it has.
        Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": invitation.role})
    invitation.status = InvitationStatus.ACCEPTED if accept else InvitationStatus.DECLINED
    invitation.answered_at = timezone.now()
    invitation.save(update_fields=["status", "answered_at"])
    actor = Actor(tenant=tenant, role=invitation.role, user=user)
    action = AuditAction.MEMBER_ACCEPT if accept else AuditAction.MEMBER_DECLINE
    record(actor, tenant, action, invitation, before=before, after=invitation_view(invitation))
    return invitation


@transaction.atomic
def change_role(actor: Actor, membership: Membership, role: str) -> Membership:
    _lock_tenant(actor.tenant, membership)
    _guard_rank(actor, role)
    _guard_rank(actor, membership.role)
    _guard_last_owner(membership, role)
    before = {"email": membership.user.email, "role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    record(
        actor,
        actor.tenant,
        AuditAction.MEMBER_ROLE,
        membership,
        before=before,
        after={**before, "role": role},
    )
    return membership


@transaction.atomic
def remove_member(actor: Actor, membership: Membership) -> None:
    _lock_tenant(actor.tenant, membership)
    _guard_rank(actor, membership.role)
    _guard_last_owner(membership, None)
    record(
        actor,
        actor.tenant,
        AuditAction.MEMBER_REMOVE,
        membership,
        before={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()
