"""The signed-in user's current team: the session's choice among their memberships.

Pages act as an `Actor` (the same object the API resolves), so every action and every `for_tenant`
query is scoped exactly as the API scopes it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from softserve.tenancy.models import ROLE_RANK, Membership
from softserve.tenancy.permissions import PERMISSIONS, Actor

log = logging.getLogger(__name__)
SESSION_KEY = "tenant_id"  # the same key the API's session authentication reads


def memberships(request: HttpRequest) -> list[Membership]:
    """The user's teams, oldest membership first (one query, cached on the request)."""
    if not hasattr(request, "_webui_memberships"):
        request._webui_memberships = list(
            Membership.objects.filter(user=request.user).select_related("tenant").order_by("created_at")
        )
    return request._webui_memberships


def current_actor(request: HttpRequest) -> Actor | None:
    """The session's team, else the user's first team (written to the session); None without one."""
    teams = memberships(request)
    if not teams:
        return None
    wanted = request.session.get(SESSION_KEY)
    chosen = next((m for m in teams if str(m.tenant_id) == wanted), None)
    if chosen is None:
        chosen = teams[0]
        request.session[SESSION_KEY] = str(chosen.tenant_id)
    return Actor(tenant=chosen.tenant, role=chosen.role, user=request.user)


def team_page(action: str = "read") -> Callable:
    """A page of the current team: signed in, a member, with at least the role `action` needs
    (GET pages need `read`; the view checks stronger actions before it writes)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            actor = current_actor(request)
            if actor is None:
                return no_team(request)
            if not actor.may(action):
                return forbidden(request, actor, action)
            request.actor = actor
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def no_team(request: HttpRequest) -> HttpResponse:
    """A signed-in account in no team. An operator (staff) lands on /ops/ from the home page (where
    signing in leads); anyone else sees the invitations waiting for them, and how to get one."""
    from webui.views.invitations import received  # that module uses this one

    if request.user.is_staff and request.resolver_match and request.resolver_match.url_name == "home":
        return redirect("webui:ops")
    return render(request, "webui/no_team.html", {"invitations": received(request)}, status=403)


def forbidden(request: HttpRequest, actor: Actor, action: str) -> HttpResponse:
    """A role too low for this action: which role it needs, and who in the team can grant it."""
    needed = PERMISSIONS[action]
    least = max(ROLE_RANK[PERMISSIONS["manage_members"]], ROLE_RANK[needed])  # who may grant `needed`
    granters = [role for role, rank in ROLE_RANK.items() if rank >= least]
    return render(
        request,
        "webui/forbidden.html",
        {"needed": needed, "role": actor.role, "granters": granters, "team": actor.tenant},
        status=403,
    )


def switch(request: HttpRequest, tenant_id: str) -> HttpResponse | None:
    """Write the session's team when the user is a member of it; None when they are not."""
    if not any(str(m.tenant_id) == tenant_id for m in memberships(request)):
        return None
    request.session[SESSION_KEY] = tenant_id
    return redirect("webui:home")
