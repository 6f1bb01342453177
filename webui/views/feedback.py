"""The prompt page's feedback section: accuracy from feedback per version (a chart each), the kept-inputs
settings, and "Make a dataset version from feedback". Writes go through the API's serializers and actions."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from softserve.prompts import actions as prompt_actions
from softserve.prompts.models import TaskPrompt
from softserve.prompts.serializers import PromptUpdateSerializer
from softserve.serving import feedback
from webui.forms import FORM, REFUSALS, errors_of
from webui.team import team_page

FEEDBACK_DAYS = 30
VERSIONS_CHARTED = 6  # the newest versions with feedback get a chart each; the table lists them all


def _prompt(request: HttpRequest, name: str) -> TaskPrompt:
    return get_object_or_404(TaskPrompt.objects.for_tenant(request.actor.tenant), name=name)


def feedback_panel(request: HttpRequest, prompt: TaskPrompt) -> dict:
    """What webui/_feedback.html shows: per version its feedback figures and a line of accuracy per day
    over FEEDBACK_DAYS days, and what the caller may change."""
    figures = feedback.accuracy(request.actor, prompt, FEEDBACK_DAYS)
    days = feedback.day_labels(FEEDBACK_DAYS)
    index = {day: i for i, day in enumerate(days)}
    versions = []
    for entry in figures["versions"]:
        points: list[float | None] = [None] * len(days)
        for point in entry["days"]:
            if point["day"] in index:
                points[index[point["day"]]] = point["accuracy"]
        chart = None
        if len(versions) < VERSIONS_CHARTED:
            chart = {
                "type": "line",
                "labels": [day.isoformat() for day in days],
                "datasets": [{"label": f"v{entry['version']} accuracy", "data": points}],
                "x": "day served",
                "y": "accuracy",
                "yMin": 0,
                "yMax": 1,
            }
        versions.append({**entry, "chart": chart})
    return {
        "days": FEEDBACK_DAYS,
        "versions": versions,
        "may_settings": request.actor.may("train"),
        "may_dataset": request.actor.may("upload"),
    }


@require_POST
@team_page(post="train")
def feedback_settings(request: HttpRequest, name: str) -> HttpResponse:
    """Keep prediction inputs or not, and for how long (the API's PATCH serializer and action)."""
    prompt = _prompt(request, name)
    body = {
        "keep_inputs": request.POST.get("keep_inputs") == "on",
        "input_retention_days": request.POST.get("input_retention_days", ""),
    }
    try:
        form = PromptUpdateSerializer(data=body)
        form.is_valid(raise_exception=True)
        was_kept = prompt.keep_inputs
        prompt = prompt_actions.update_prompt(request.actor, prompt, **form.validated_data)
    except REFUSALS as exc:
        for field, messages in errors_of(exc).items():
            for text in messages:
                flash.error(request, text if field == FORM else f"{field.replace('_', ' ')}: {text}")
    else:
        said = (
            f"Inputs kept for {prompt.input_retention_days} days."
            if prompt.keep_inputs
            else "Inputs not kept."
        )
        if was_kept and not prompt.keep_inputs:
            said += " The inputs kept so far are forgotten."
        flash.success(request, said)
    return redirect(f"{_prompt_url(prompt)}#feedback-h")


@require_POST
@team_page(post="upload")
def feedback_dataset(request: HttpRequest, name: str) -> HttpResponse:
    """A new dataset version from the prompt's corrected predictions; its page on success."""
    prompt = _prompt(request, name)
    try:
        version = feedback.make_dataset(request.actor, prompt)
    except REFUSALS as exc:
        for text in (m for ms in errors_of(exc).values() for m in ms):
            flash.error(request, text)
        return redirect(f"{_prompt_url(prompt)}#feedback-h")
    flash.success(
        request,
        f"{version.dataset.name} v{version.number}: {version.row_count} rows from feedback, ready to train.",
    )
    return redirect("webui:dataset-version", version.dataset_id, version.number)


def _prompt_url(prompt: TaskPrompt) -> str:
    return reverse("webui:prompt", args=[prompt.name])
