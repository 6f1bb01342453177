"""Operator pages (/ops/): Django staff only; anyone else gets a 404, as if the pages did not exist.

The figures come from `softserve.ops.summary` (the same dict /ops/api/summary answers); actions on jobs
go through the jobs app's actions, audited as the operator in the job's own team.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from softserve.jobs import actions
from softserve.jobs.models import Job
from softserve.ops.summary import summary
from softserve.tenancy.permissions import Actor
from webui.forms import REFUSALS, errors_of
from webui.team import PageAccess, declare

logger = logging.getLogger(__name__)
REFRESH_S = 5
# The buttons each list of jobs shows (the jobs app's actions decide what is allowed).
JOB_ACTIONS = {
    "stalled": ["requeue", "cancel"],
    "running": ["cancel"],
    "queued": ["cancel"],
    "failed": ["retry"],
}


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return declare(wrapper, PageAccess("staff"))


def _context(data: dict[str, Any]) -> dict[str, Any]:
    hours = [h[11:16] for h in data["per_hour"]["hour"]]
    depth = data["depth_24h"]
    return {
        "s": data,
        "refresh_s": REFRESH_S,
        "job_actions": JOB_ACTIONS,
        "depth_chart": {
            "type": "line",
            "labels": [t[11:16] for t in depth["at"]],
            "datasets": [{"label": "queued jobs", "data": depth["depth"]}],
            "y": "jobs",
        },
        "hourly_chart": {
            "type": "bar",
            "labels": hours,
            "datasets": [
                {"label": "started", "data": data["per_hour"]["started"]},
                {"label": "finished", "data": data["per_hour"]["finished"]},
            ],
            "y": "jobs per hour",
        },
    }


@never_cache
@staff_only
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "webui/ops/dashboard.html", _context(summary()))


@never_cache
@staff_only
def panel(request: HttpRequest) -> HttpResponse:
    """The page's live part, swapped in by htmx every REFRESH_S seconds."""
    return render(request, "webui/ops/_panel.html", _context(summary()))


@never_cache
@staff_only
def summary_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(summary())


ACTIONS = ("cancel", "retry", "requeue")


@require_POST
@staff_only
def job_action(request: HttpRequest, pk: str, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    # Operators act across teams: the job is found by id alone, then the action runs scoped to its team.
    job = Job.objects.select_related("tenant").filter(pk=pk).first()
    if job is None:
        raise Http404("No such job.")
    actor = Actor.operator(job.tenant, request.user)  # audited as operator:<email>, not as an owner
    try:
        if action == "cancel":
            actions.cancel_job(actor, job)
        elif action == "retry":
            actions.retry_job(actor, job)
        else:
            actions.requeue_stalled_job(actor, job, settings.SOFTSERVE_JOB_POLICY.heartbeat_timeout_s)
    except REFUSALS as exc:  # a job in the wrong state, the team's queued-jobs quota on retry
        text = "; ".join(m for msgs in errors_of(exc).values() for m in msgs)
        messages.error(request, f"Job {str(job.pk)[:8]}: {text}")
    else:
        logger.info("operator %s: job %s %s", request.user.pk, job.pk, action)
        messages.success(request, f"Job {str(job.pk)[:8]} ({job.tenant.name}): {action} done.")
    if request.htmx:
        return panel(request)
    return redirect("webui:ops")
