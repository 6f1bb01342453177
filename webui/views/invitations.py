"""Invitations: a team offers a role to an e-mail address; the person, signed in, accepts or declines.

These pages belong to the person, not to a team (someone invited to their first team has none yet), so
they need a signed-in account only, and show nothing but the invitations sent to its own address.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from softserve.errors import NotFound
from softserve.tenancy import actions
from softserve.tenancy.models import Invitation
from webui.team import SESSION_KEY, person_page

SHOWN = 50  # pending invitations listed (each needs a team to have invited this address)


def received(request: HttpRequest) -> list[Invitation]:
    """The signed-in person's pending invitations, newest first (one query)."""
    return list(
        Invitation.objects.for_invitee(request.user).select_related("tenant").order_by("-created_at")[:SHOWN]
    )


@person_page
def invitation_list(request: HttpRequest) -> HttpResponse:
    return render(request, "webui/invitations.html", {"invitations": received(request)})


@require_POST
@person_page
def invitation_answer(request: HttpRequest, pk, accept: bool) -> HttpResponse:
    try:
        invitation = actions.answer_invitation(request.user, pk, accept=accept)
    except NotFound:
        raise Http404("No such invitation.") from None  # answered already, or not addressed to this account
    if accept:
        request.session[SESSION_KEY] = str(invitation.tenant_id)  # straight into the team just joined
        flash.success(request, f"You joined {invitation.tenant.name} as {invitation.role}.")
        return redirect("webui:home")
    flash.success(request, f"You declined the invitation to {invitation.tenant.name}.")
    return redirect("webui:invitations")
