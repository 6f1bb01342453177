"""Template context for every page: the user's teams for the header's switcher, and the current one."""

from __future__ import annotations

from django.http import HttpRequest

from webui.team import current_actor, memberships


def team(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    actor = getattr(request, "actor", None) or current_actor(request)
    return {"teams": memberships(request), "actor": actor}
