"""Prompt pages: list, create (the API's serializer and action), a prompt's versions and aliases."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from common.contracts import TaskType, template_fields
from common.formats import nearest_tokens_unavailable
from common.task import Template
from softserve.datasets.models import DatasetVersion
from softserve.errors import Invalid
from softserve.prompts import actions, downloads
from softserve.prompts.history import alias_moves
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.prompts.serializers import PromptSerializer, alias_target
from softserve.tenancy.models import AuditEvent
from softserve.tenancy.permissions import AUDIT_ACTION
from webui.forms import FORM, REFUSALS, dataset_options, errors_of, page_of, submitted
from webui.insights import preview_rows
from webui.team import team_page
from webui.views import aliases
from webui.views.evalsets import eval_set_context
from webui.views.feedback import feedback_panel

logger = logging.getLogger(__name__)

COMPARE = 6  # versions shown side by side
LABELS_SHOWN = 20  # per-label rows in a version's column (all of them are in the API)
DATASET_CHOICES = 200


def _prompt(request: HttpRequest, name: str) -> TaskPrompt:
    return get_object_or_404(TaskPrompt.objects.for_tenant(request.actor.tenant), name=name)


@team_page()
def prompt_list(request: HttpRequest) -> HttpResponse:
    prompts = TaskPrompt.objects.for_tenant(request.actor.tenant).order_by("name")
    page = page_of(request, prompts)
    production = {
        a.prompt_id: a.version
        for a in Alias.objects.for_tenant(request.actor.tenant)
        .filter(name="production", prompt__in=[p.pk for p in page.object_list])
        .select_related("version")
        .defer("version__inspection")
    }
    rows = [(p, production.get(p.pk)) for p in page.object_list]
    return render(request, "webui/prompts.html", {"page": page, "rows": rows})


def parse_verbalizer(text: str) -> dict[str, str]:
    """`label: words` per line -> {label: words}; a line without a colon is a field error."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, colon, words = line.partition(":")
        if not colon:
            raise ValidationError({"verbalizer": [f"Line {number}: write `label: words`."]})
        out[label.strip()] = words.strip()
    return out


def _datasets(request: HttpRequest, selected: str = "") -> list[dict]:
    return dataset_options(
        DatasetVersion.objects.for_tenant(request.actor.tenant)
        .select_related("dataset")
        .order_by("-created_at")[:DATASET_CHOICES],
        selected,
    )


def _chosen_version(request: HttpRequest, value: str) -> DatasetVersion | None:
    """The team's dataset version named in the form, or None (none chosen, or not one of the team's)."""
    if not value or not _is_uuid(value):
        return None
    return (
        DatasetVersion.objects.for_tenant(request.actor.tenant)
        .select_related("dataset")
        .filter(pk=value)
        .first()
    )


def _labels_text(labels: list[str]) -> str:
    return ",".join(labels)


def _follow_dataset(values: dict[str, str], version: DatasetVersion) -> dict[str, str]:
    """The form's values once a dataset version is chosen: the task type and label set it has. Labels
    typed by hand stay: they are replaced only while empty or still the previous dataset's prefill
    (`labels_prefill` remembers it)."""
    labels = values.get("labels", "")
    out = {**values, "task_type": version.task_type}
    if not labels or labels == values.get("labels_prefill", ""):
        out["labels"] = _labels_text(version.labels)
    out["labels_prefill"] = _labels_text(version.labels)
    return out


@team_page(post="train", rerender=("refresh", "dataset"))
def prompt_new(request: HttpRequest) -> HttpResponse:
    """The create-prompt form. Choosing a dataset version (htmx: `refresh=dataset` re-renders the form
    with what is typed so far) fills the task type and labels from it; on submit the prompt must fit the
    chosen version (the rules a job on it applies), each problem beside its field, the form kept."""
    if request.method == "POST":
        # Browsers send a textarea's line breaks as CRLF; the template means plain newlines.
        values = {**submitted(request), "template": request.POST.get("template", "").replace("\r\n", "\n")}
    else:
        values = {"task_type": "classification", "template": "Review: {text}\nSentiment:"}
        if request.GET.get("dataset_version"):
            values["dataset_version"] = request.GET["dataset_version"]
    version = _chosen_version(request, values.get("dataset_version", ""))
    errors: dict[str, list[str]] = {}
    refresh = request.rerender or request.method == "GET"
    if version is not None and refresh:
        values = _follow_dataset(values, version)
    if request.method == "POST" and not refresh:
        if values.get("dataset_version") and version is None:
            errors["dataset_version"] = ["No such dataset version."]
        labels = [x.strip() for x in values.get("labels", "").split(",") if x.strip()]
        body = {
            "name": values.get("name", ""),
            "task_type": values.get("task_type", ""),
            "template": values["template"],  # kept verbatim: spaces and newlines matter
            "labels": labels,
        }
        try:
            body["verbalizer"] = parse_verbalizer(values.get("verbalizer", ""))
            if values.get("base_model"):
                body["base_model"] = values["base_model"]
            form = PromptSerializer(data=body)
            form.is_valid(raise_exception=True)
        except REFUSALS as exc:
            errors.update(errors_of(exc))
        if version is not None:
            for field, message in version.misfits(body["task_type"], labels, body["template"]).items():
                errors.setdefault(field, []).append(message)
        if not errors:
            prompt = actions.create_prompt(request.actor, **form.validated_data)
            return redirect("webui:prompt", prompt.name)
    preview = _preview(request, values.get("template", ""), values.get("dataset_version", ""))
    if errors.get("template"):
        preview["said_beside"] = True  # the field's own message says it: once is enough
    context = {
        "values": values,
        "errors": errors,
        "preview": render_to_string("webui/_template_preview.html", preview, request),
        "datasets": _datasets(request, values.get("dataset_version", "")),
        "version": version,
        "base_models": settings.SOFTSERVE_BASE_MODELS,
    }
    return render(request, "webui/prompt_new.html", context, status=422 if errors else 200)


def _preview(request: HttpRequest, template: str, chosen: str) -> dict:
    """What the template preview shows: the fields the template names, whether each is a column of the
    chosen dataset version (a sentence when one is not), and its first row through the template."""
    context: dict = {"template": template}
    try:
        context["fields"] = template_fields(template)
    except ValueError as exc:
        context["error"] = str(exc)
        return context
    if chosen:
        version = _chosen_version(request, chosen)
        if version is None:
            context["error"] = "No such dataset version."
            return context
        context["version"] = version
        problem = version.template_problem(template)
        if problem:
            context["error"] = problem
        else:
            try:
                row = next(iter(preview_rows(version, 1)), None)
            except FileNotFoundError:
                logger.warning("dataset version %s: stored rows missing, no example row", version.pk)
                context["rows_missing"] = True
                row = None
            if row is not None:
                context["example"] = Template.parse(template).render(row)
                context["label"] = row.get("label")
    return context


@team_page()
def template_preview(request: HttpRequest) -> HttpResponse:
    """The template preview, swapped in by htmx as the template or the chosen dataset changes."""
    template = request.POST.get("template", "") or request.GET.get("template", "")
    chosen = request.POST.get("dataset_version") or request.GET.get("dataset_version") or ""
    return render(request, "webui/_template_preview.html", _preview(request, template, chosen))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def alias_history(tenant, prompt: TaskPrompt, limit: int = 20, who: bool = True) -> list[dict]:
    """Alias moves of this prompt, newest first: when, which alias, from and to, and with `who` the
    member's e-mail or key prefix that moved it (the audit log's detail: only for those who may read
    the audit log; everyone else sees what the API's alias history shows)."""
    return [
        {
            "at": move.at,
            "who": _who(move.event) if who else None,
            "alias": move.alias,
            "from": move.before,
            "to": move.version,
            "routing": routing_text(move.event.after),
        }
        for move in alias_moves(tenant, prompt, newest_first=True, limit=limit)
    ]


def routing_text(after: dict) -> str:
    """A move's split and shadow in words ("v3 90%, v4 10%; shadow v5"); empty for a plain move."""
    parts = []
    if after.get("split"):
        parts.append(", ".join(f"v{e['version']} {e['weight']}%" for e in after["split"]))
    if after.get("shadow"):
        parts.append(f"shadow v{after['shadow']}")
    if after.get("override_reason"):
        parts.append("gate overridden")
    return "; ".join(parts)


def _who(event: AuditEvent) -> str:
    if event.actor_user_id:
        return event.actor_user.email or event.actor_user.username
    return f"key {event.actor_key.prefix}" if event.actor_key_id else "system"


def label_report(dev: dict, task_type: str) -> dict:
    """What the version column shows of its dev figures: a classification's per-label table and
    confusion matrix, a generation's metric, or why there is nothing (versions from before these were
    computed say "not computed"). Built here: template lookups per cell cost more than a loop."""
    if task_type != TaskType.CLASSIFICATION:
        return {"kind": "generation", "exact_match": dev.get("exact_match")}
    labels = dev.get("per_label")
    matrix = dev.get("confusion")
    if not isinstance(labels, dict) or not isinstance(matrix, dict):
        return {"kind": "not computed"}
    names = matrix.get("labels") or []
    counts = matrix.get("matrix") or []
    # The per-label rows follow the matrix's labels (the ones with most dev rows, at most
    # CONFUSION_MAX_LABELS); the rest of a large label set is counted and stays in the API.
    shown = [n for n in names if n in labels][:LABELS_SHOWN] or list(labels)[:LABELS_SHOWN]
    rows = [(n, labels[n]) for n in shown]
    grid = []
    for i, (name, row) in enumerate(zip(names, counts, strict=False)):
        total = sum(row) or 1  # shade by the share of the true label's rows
        grid.append(
            (name, [{"n": n, "share": round(n / total, 2), "diagonal": i == j} for j, n in enumerate(row)])
        )
    return {
        "kind": "classification",
        "rows": rows,
        "more": len(labels) - len(rows),
        "labels": names,
        "grid": grid,
        "folded": matrix.get("folded", 0),
    }


def _downloads(version: PromptVersion) -> list[dict]:
    return [
        {"format": fmt, "unavailable": downloads.unavailable(version, fmt)}
        for fmt in downloads.FORMATS.values()
    ]


@team_page()
def prompt_detail(request: HttpRequest, name: str) -> HttpResponse:
    return render(request, "webui/prompt_detail.html", _detail_context(request, _prompt(request, name)))


def _detail_context(request: HttpRequest, prompt: TaskPrompt, editing: aliases.Editing | None = None) -> dict:
    """The prompt page; `editing`: an alias editor form sent back with its errors, kept as typed."""
    tenant = request.actor.tenant
    versions = (
        PromptVersion.objects.for_tenant(tenant)
        .filter(prompt=prompt)
        .order_by("-number")
        .defer("inspection")  # the nearest-token panel loads it, one version at a time
    )
    page = page_of(request, versions.select_related("dataset_version__dataset"), per_page=COMPARE)
    rows = list(
        Alias.objects.for_tenant(tenant)
        .filter(prompt=prompt)
        .select_related("version", "shadow")
        .defer("version__inspection", "shadow__inspection")
    )
    history = alias_history(tenant, prompt, who=request.actor.may(AUDIT_ACTION))
    for version in page.object_list:
        version.alias_names = [a.name for a in rows if a.version_id == version.pk]
        version.dev = (version.metrics or {}).get("dev") or {}
        version.report = label_report(version.dev, prompt.task_type)
        version.downloads = _downloads(version)
        version.tokens_unavailable = nearest_tokens_unavailable(version.method)
        version.checkpoint = best_checkpoint(version.metrics or {})
    production = next((a for a in rows if a.name == "production"), None)
    return {
        "prompt": prompt,
        "page": page,
        "aliases": rows,
        "history": history,
        "history_who": request.actor.may(AUDIT_ACTION),
        "rollback": {a.name: _previous(history, a.name) for a in rows},
        # The promote buttons move `production`, protected unless an owner lifted it.
        "may_move": actions.may_move(request.actor, production, "production"),
        **aliases.editor_context(request, prompt, rows, editing),
        **eval_set_context(request, prompt, page.object_list),
        "feedback": feedback_panel(request, prompt),  # webui/_feedback.html
    }


def best_checkpoint(metrics: dict) -> str:
    """Which checkpoint a trained version keeps, in words: early stopping's pick on the dev split."""
    best = metrics.get("best_step")
    if best is None:
        return ""
    steps = ", ".join(str(b) for b in best) if isinstance(best, list) else str(best)
    label = "steps" if isinstance(best, list) else "step"
    ran = metrics.get("steps_run")
    tail = f" of {ran} run" if ran is not None else ""
    reason = metrics.get("stop_reason")
    return f"{label} {steps}{tail}" + (f", stopped by {reason}" if reason else "")


def _previous(history: list[dict], alias: str) -> int | None:
    """The version an alias pointed at before its latest move (what rollback returns to)."""
    latest = next((h for h in history if h["alias"] == alias), None)
    return latest["from"] if latest else None


@require_POST
@team_page(post="move_aliases")
def alias_move(request: HttpRequest, name: str) -> HttpResponse:
    """Promote (point an alias at a version) or roll back (point it where it was before its last move);
    with `editor`, the alias editor's form (split, shadow, policy, protection, a gate override), which on
    a refusal comes back filled, each message beside its field and the gate's verdict shown."""
    prompt = _prompt(request, name)
    if request.POST.get("editor"):
        editing = aliases.save(request, prompt)
        if editing is None:
            return redirect("webui:prompt", prompt.name)
        context = _detail_context(request, prompt, editing)
        return render(request, "webui/prompt_detail.html", context, status=422)
    alias = request.POST.get("alias", "production").strip()
    try:
        if request.POST.get("rollback"):
            number = _previous(alias_history(request.actor.tenant, prompt), alias)
            if number is None:
                raise Invalid({"alias": [f"{alias} has no earlier version to roll back to."]})
        else:
            number = int(request.POST.get("version", "0") or 0)
        version = alias_target(request.actor.tenant, prompt, alias, number)
        actions.move_alias(request.actor, prompt, alias, version)
    except (*REFUSALS, ValueError) as exc:
        messages = errors_of(exc) if isinstance(exc, REFUSALS) else {FORM: ["Choose a version number."]}
        for text in (m for ms in messages.values() for m in ms):
            flash.error(request, text)
    else:
        flash.success(request, f"{alias} now points at version {version.number}.")
    return redirect("webui:prompt", prompt.name)


@team_page()
def artifact_download(request: HttpRequest, name: str, number: int, fmt: str) -> HttpResponse:
    """The version's file in `fmt` (softserve or peft): the API's lookup and response, the team's own."""
    chosen = downloads.FORMATS.get(fmt)
    if chosen is None:
        raise Http404("No such format.")
    prompt, version = downloads.tenant_version(request.actor.tenant, name, number)
    return downloads.file_response(prompt, version, chosen)


@team_page()
def version_tokens(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """The nearest-vocabulary-token view of one version: a panel of the prompt page (htmx), or a page."""
    prompt, version = downloads.tenant_version(request.actor.tenant, name, number)
    context = {"prompt": prompt, "version": version, "view": downloads.inspection(version)}
    template = "webui/_tokens.html" if request.htmx else "webui/version_tokens.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # one URL, two bodies: caches must keep them apart
    return response
