"""The prompt page's evaluation set: pin or unpin it, re-run one version's evaluation, and what the page
shows per version (its score on the set through the serving pool and its train/serve parity)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from common.contracts import ParityStatus
from softserve.datasets.models import DatasetVersion
from softserve.prompts import actions, downloads
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.prompts.serializers import EvalSetSerializer
from webui.forms import REFUSALS, Refusal, dataset_options, errors_of
from webui.team import team_page

CHOICES = 200  # dataset versions offered in the pin form's menu


def _prompt(request: HttpRequest, name: str) -> TaskPrompt:
    return get_object_or_404(
        TaskPrompt.objects.for_tenant(request.actor.tenant).select_related("eval_dataset_version__dataset"),
        name=name,
    )


def _headline(metrics: dict | None) -> tuple[str, float | None]:
    metrics = metrics or {}
    for key, label in (("accuracy", "accuracy"), ("exact_match", "exact match")):
        if metrics.get(key) is not None:
            return label, metrics[key]
    return "", None


def version_row(version: PromptVersion, pinned: str | None) -> dict:
    """One version's line of the evaluation table (built here: template lookups per cell cost more)."""
    evaluation = version.evaluation or {}
    metric, score = _headline(evaluation.get("metrics"))
    return {
        "number": version.number,
        "ready": version.status == "ready",
        "parity": version.parity,
        "metric": metric,
        "score": score,
        "macro_f1": (evaluation.get("metrics") or {}).get("macro_f1"),
        "dev": _headline(evaluation.get("dev_metrics") or (version.metrics or {}).get("dev"))[1],
        "serving_dev": _headline(evaluation.get("serving_dev_metrics"))[1],
        "gap": evaluation.get("gap"),
        "tolerance": evaluation.get("tolerance"),
        "basis": evaluation.get("gap_basis", ""),
        "error": evaluation.get("error", ""),
        "evaluated_at": evaluation.get("evaluated_at", ""),
        # Scored on a set pinned before this one: the figures stay, marked as another set's.
        "other_set": bool(evaluation.get("dataset_version")) and evaluation.get("dataset_version") != pinned,
    }


def eval_set_context(request: HttpRequest, prompt: TaskPrompt, versions) -> dict:
    """What webui/_eval_set.html needs, as `eval_set` in the prompt page's context."""
    tenant, actor = request.actor.tenant, request.actor
    pinned = (
        DatasetVersion.objects.for_tenant(tenant)
        .select_related("dataset")
        .filter(pk=prompt.eval_dataset_version_id)
        .first()
        if prompt.eval_dataset_version_id
        else None
    )
    pinned_id = str(pinned.pk) if pinned else None
    choices = (
        DatasetVersion.objects.for_tenant(tenant)
        .select_related("dataset")
        .filter(task_type=prompt.task_type)
        .order_by("-created_at")[:CHOICES]
    )
    return {
        "eval_set": {
            "pinned": pinned,
            "choices": dataset_options(choices, pinned_id or ""),
            "rows": [version_row(v, pinned_id) for v in versions],
            "may_pin": actor.may("manage_aliases"),
            "may_run": actor.may("train"),
            "max_rows": settings.EVAL_SET_MAX_ROWS,
            "statuses": ParityStatus,
        }
    }


def _flash_errors(request: HttpRequest, exc: Refusal) -> None:
    for text in (m for ms in errors_of(exc).values() for m in ms):
        flash.error(request, text)


@require_POST
@team_page(post="manage_aliases")
def eval_set_pin(request: HttpRequest, name: str) -> HttpResponse:
    """Pin the chosen dataset version as the prompt's evaluation set, or unpin it (`unpin`)."""
    prompt = _prompt(request, name)
    unpin = bool(request.POST.get("unpin"))
    chosen = request.POST.get("eval_dataset_version", "").strip()
    if not unpin and not chosen:
        flash.error(request, "Choose a dataset version to pin.")
        return redirect("webui:prompt", prompt.name)
    form = EvalSetSerializer(
        data={"eval_dataset_version": None if unpin else chosen}, context={"prompt": prompt}
    )
    try:
        form.is_valid(raise_exception=True)
        dataset = form.validated_data["eval_dataset_version"]
        actions.pin_eval_set(request.actor, prompt, dataset)
    except REFUSALS as exc:
        _flash_errors(request, exc)
    else:
        if dataset is None:
            flash.success(request, f"{prompt.name} pins no evaluation set now.")
        else:
            flash.success(
                request, f"{dataset} is {prompt.name}'s evaluation set; its ready versions are being scored."
            )
    return redirect("webui:prompt", prompt.name)


@require_POST
@team_page(post="train")
def version_evaluate(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """Re-score one version on the evaluation set through the serving pool (queued)."""
    prompt, version = downloads.tenant_version(request.actor.tenant, name, number)
    try:
        actions.evaluate_version(request.actor, prompt, version)
    except REFUSALS as exc:
        _flash_errors(request, exc)
    else:
        flash.success(request, f"Version {number} is queued for evaluation.")
    return redirect("webui:prompt", prompt.name)


__all__ = ["eval_set_context", "eval_set_pin", "version_evaluate"]
