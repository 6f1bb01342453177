"""The team's home, the team switcher, the front door and the error page."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from softserve.jobs.models import Job
from softserve.prompts.models import Alias, TaskPrompt
from softserve.serving.models import Usage
from webui import team
from webui.team import team_page
from webui.views.invitations import received
from webui.views.jobs import LIST_DEFERRED

log = logging.getLogger(__name__)
HOME_ROWS = 10


def front_door(request: HttpRequest) -> HttpResponse:
    return redirect("webui:home" if request.user.is_authenticated else "login")


@team_page()
def home(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    jobs = list(
        Job.objects.for_tenant(tenant)
        .select_related("prompt_version__prompt")
        .defer(*LIST_DEFERRED)
        .order_by("-created_at")[:HOME_ROWS]
    )
    prompts = list(TaskPrompt.objects.for_tenant(tenant).order_by("name")[:HOME_ROWS])
    production = {
        a.prompt_id: a.version
        for a in Alias.objects.for_tenant(tenant)
        .filter(name="production", prompt__in=[p.pk for p in prompts])
        .select_related("version")
        .defer("version__inspection")  # the nearest-token JSON: only its own panel reads it
    }
    rows = [(p, production.get(p.pk)) for p in prompts]
    since = timezone.now().date() - timedelta(days=6)
    week = (
        Usage.objects.for_tenant(tenant)
        .filter(day__gte=since)
        .aggregate(requests=Sum("requests"), inputs=Sum("inputs"))
    )
    return render(
        request,
        "webui/home.html",
        {"jobs": jobs, "prompts": rows, "week": week, "since": since, "invitations": received(request)},
    )


@require_POST
@team_page()
def switch_team(request: HttpRequest) -> HttpResponse:
    response = team.switch(request, request.POST.get("tenant", ""))
    if response is None:
        raise Http404("Not a team of yours.")
    return response
