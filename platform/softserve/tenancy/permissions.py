"""Who may do what: one table from action to the least role, and the key scope each action needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied
from rest_framework.permissions import BasePermission

from softserve.tenancy.models import ROLE_RANK, ApiKey, Membership, Role, Tenant

# viewer reads; member uploads, trains, predicts and moves unprotected aliases; admin manages aliases
# (protected ones, policies), keys and members; owner manages the tenant itself.
PERMISSIONS: dict[str, Role] = {
    "read": Role.VIEWER,
    "upload": Role.MEMBER,
    "train": Role.MEMBER,
    "predict": Role.MEMBER,
    # The OpenAI-style model list: what a caller may name in `model`. A key made only to predict (the one
    # an OpenAI client holds) must reach it, and so must a read key: either scope opens it.
    "list_models": Role.VIEWER,
    # Aliases that are not protected (`staging`, a test alias) move with the member role; protected ones
    # (`production`), policies, protection and gate overrides need manage_aliases (prompts/actions.py).
    "move_aliases": Role.MEMBER,
    "manage_aliases": Role.ADMIN,
    "manage_keys": Role.ADMIN,
    "manage_members": Role.ADMIN,
    "manage_webhooks": Role.ADMIN,  # a hook's URL and secret, and its delivery log
    "manage_tenant": Role.OWNER,
}
# Each action's key scopes (any one of them will do); everything else needs "write".
SCOPE_FOR_ACTION: dict[str, tuple[str, ...]] = {
    "read": ("read",),
    "predict": ("predict",),
    "list_models": ("read", "predict"),
}


def scopes_for(action: str) -> tuple[str, ...]:
    return SCOPE_FOR_ACTION.get(action, ("write",))


# The audit log names members (e-mails) and keys (prefixes): those who manage members read it, and only
# they see who did what anywhere else (the alias history of the prompt page, for one).
AUDIT_ACTION = "manage_members"


class ActorKind(StrEnum):
    """Who acts, as the audit log names them."""

    MEMBER = "member"  # a member's session or an API key of the team: the row's user or key says who
    OPERATOR = "operator"  # staff acting on a team from /ops/, not a member of it: `operator:<email>`
    SYSTEM = "system"  # the platform itself (the canary watch): `system:<name>`


# Where an audit row names an operator or the platform (their rows carry no key, and a system's no user).
AUDIT_BY = "by"


@dataclass(frozen=True)
class Actor:
    """The caller within one tenant: a member's session or an API key; or an operator or the platform
    acting on the team with an owner's permissions, audited as themselves (`operator`, `system`)."""

    tenant: Tenant
    role: str
    user: object | None = None
    key: ApiKey | None = None
    kind: ActorKind = ActorKind.MEMBER
    name: str = ""  # a system actor's name (`canary-watch`)

    @classmethod
    def operator(cls, tenant: Tenant, user: object) -> Actor:
        """Staff acting on `tenant` from the operator pages: an owner's permissions there, audited as
        `operator:<email>` rather than as one of the team's owners."""
        return cls(tenant=tenant, role=Role.OWNER, user=user, kind=ActorKind.OPERATOR)

    @classmethod
    def system(cls, tenant: Tenant, name: str) -> Actor:
        """The platform acting on `tenant` by itself (no member, no key), audited as `system:<name>`."""
        return cls(tenant=tenant, role=Role.OWNER, kind=ActorKind.SYSTEM, name=name)

    @property
    def audit_by(self) -> str | None:
        """The name an audit row gives an operator or the platform (None: the row's user or key says)."""
        if self.kind == ActorKind.OPERATOR:
            email = getattr(self.user, "email", "") or getattr(self.user, "username", "")
            return f"{ActorKind.OPERATOR}:{email}"
        if self.kind == ActorKind.SYSTEM:
            return f"{ActorKind.SYSTEM}:{self.name}"
        return None

    def may(self, action: str) -> bool:
        if ROLE_RANK[self.role] < ROLE_RANK[PERMISSIONS[action]]:
            return False
        return self.key is None or any(self.key.has_scope(scope) for scope in scopes_for(action))


def resolve_actor(request) -> Actor:
    """The tenant and role behind a request, or 401 when there are no valid credentials."""
    if isinstance(request.auth, ApiKey):
        key = request.auth
        return Actor(tenant=key.tenant, role=key.effective_role, key=key)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise NotAuthenticated("Send an API key as `Authorization: Bearer ss_…` or log in.")
    memberships = Membership.objects.filter(user=user).select_related("tenant")
    wanted = request.headers.get("X-Tenant") or request.session.get("tenant_id")
    if wanted:
        memberships = memberships.filter(tenant_id=wanted) if _is_uuid(wanted) else memberships.none()
    chosen = list(memberships[:2])
    if len(chosen) != 1:
        # No membership, or several and none chosen: nothing of any tenant is visible.
        raise NotFound("No tenant selected; send X-Tenant with one of your tenants' ids.")
    return Actor(tenant=chosen[0].tenant, role=chosen[0].role, user=user)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def action_for(view, method: str) -> str | None:
    """The view's action for an HTTP method: its permission table's entry (HEAD as GET, OPTIONS, which
    only describes the endpoint, as read), or None: a method the table does not name is refused."""
    table = getattr(view, "actions_by_method", {})
    if method == "HEAD":
        method = "GET"
    if method == "OPTIONS":
        return "read"
    return table.get(method)


class TenantPermission(BasePermission):
    """Resolves `request.actor` and checks the view's action for the request method (fail closed)."""

    def has_permission(self, request, view) -> bool:
        actor = resolve_actor(request)
        request.actor = actor
        action = action_for(view, request.method)
        if action is None:
            method = request.method.lower()
            if method not in view.http_method_names or getattr(view, method, None) is None:
                return True  # a method the view does not take: DRF answers 405 and nothing runs
            raise PermissionDenied(f"{request.method} is not allowed for any role here.")
        if not actor.may(action):
            needed = PERMISSIONS[action]
            detail = f"This needs the {needed} role" + (
                f" and a key with the {' or '.join(scopes_for(action))} scope." if actor.key else "."
            )
            raise PermissionDenied(detail)
        return True
