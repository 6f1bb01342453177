"""The signed-in user's current team: the session's choice among their memberships.

Pages act as an `Actor` (the same object the API resolves), so every action and every `for_tenant`
query is scoped exactly as the API scopes it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PageAccess:
    """Who a page admits, declared where its view is decorated and enforced by that decorator.

    `kind`: "team" (a member of the session's team, `read` for GET and `write` for a POST), "person" (any
    signed-in account: the page shows only that person's own things) or "staff" (operators; anyone else
    404). `rerender`: the POST field and value of a form's re-render (htmx), which writes nothing and
    needs only `read`. The role matrix (tests/reliability/test_role_matrix.py) reads this from every URL's
    view and checks each role's answer against it."""

    kind: str
    read: str | None = None
    write: str | None = None
    rerender: tuple[str, str] | None = None


ACCESS_ATTR = "page_access"  # the view attribute carrying its PageAccess (kept by functools.wraps)


def declare(view: Callable[..., HttpResponse], access: PageAccess) -> Callable[..., HttpResponse]:
    setattr(view, ACCESS_ATTR, access)
    return view


def team_page(
    action: str = "read", post: str | None = None, rerender: tuple[str, str] | None = None
) -> Callable:
    """A page of the current team: signed in, a member, with at least the role `action` needs for GET
    and `post` for a POST (default `action`: a page whose POST writes nothing), except a POST carrying
    `rerender` (field, value), which re-renders a form and needs `action` only. Views read
    `request.rerender` rather than testing the field themselves, so the check and the branch agree."""
    access = PageAccess("team", read=action, write=post or action, rerender=rerender)

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            actor = current_actor(request)
            if actor is None:
                return no_team(request)
            posted = request.method == "POST"
            request.rerender = bool(posted and rerender and request.POST.get(rerender[0]) == rerender[1])
            needed = access.write if posted and not request.rerender else access.read
            if not actor.may(needed):
                return forbidden(request, actor, needed)
            request.actor = actor
            return view(request, *args, **kwargs)

        return declare(login_required(wrapper), access)

    return decorate


def person_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page of the signed-in person, whatever their teams (their own invitations)."""
    return declare(login_required(view), PageAccess("person"))


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
