"""The alias editor of the prompt page (split weights, shadow, gate and canary policy, protection; the
gate's verdict before the move) and the page comparing two versions on the evaluation set.

The editor's form is turned into the API's alias PUT body and goes through the API's serializer and
action (`AliasMoveSerializer`, `alias_change`, `move_alias`): the same checks, messages and audit row."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from common.contracts import VersionStatus
from softserve.prompts import actions, compare, gates
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.prompts.serializers import ALIAS_PATTERN, AliasMoveSerializer, alias_change
from softserve.tenancy.models import Tenant
from softserve.tenancy.permissions import Actor
from webui.forms import FORM, INVALID, REFUSALS, Refusal, errors_of
from webui.team import team_page

logger = logging.getLogger(__name__)

NEW = "new"  # the id suffix of the new-alias form
READY_CHOICES = 200  # ready versions offered in the selects (newest first)
# (field, label, help, step): the policy's keys as the form shows them; blank means "not set".
GATE_FIELDS = (
    ("min", "Minimum score", "0 to 1", "0.001"),
    ("max_regression", "Largest drop allowed", "absolute", "0.001"),
    ("alpha", "Significance level", "0.05 if blank", "0.001"),
)
CANARY_FIELDS = (
    ("max_error_rate", "Error rate above which a canary is rolled back", "0 to 1", "0.001"),
    ("max_p95_ms", "p95 latency limit (ms)", "", "1"),
    ("window_s", "Window (s)", "", "1"),
    ("min_requests", "Requests before judging", "", "1"),
)
WHOLE = {"max_p95_ms", "window_s", "min_requests"}


@dataclass
class Editing:
    """A submitted editor form that did not go through: its values, errors and the gate's verdicts."""

    alias: str
    values: dict[str, Any]
    errors: dict[str, list[str]]
    verdicts: list[dict] = field(default_factory=list)


def _ready(prompt: TaskPrompt, tenant: Tenant) -> list[PromptVersion]:
    return list(
        PromptVersion.objects.for_tenant(tenant)
        .filter(prompt=prompt, status=VersionStatus.READY)
        .order_by("-number")
        .only("number", "parity")[:READY_CHOICES]
    )


def _initial(alias: Alias) -> dict[str, Any]:
    """The form's values for an alias as it is stored."""
    split = alias.split or [{"version": alias.version.number, "weight": 100}]
    values: dict[str, Any] = {
        "alias": alias.name,
        "rows": [e["version"] for e in split],
        "shadow": str(alias.shadow.number) if alias.shadow_id else "",
        "protected": alias.protected,
    }
    values.update({f"weight_{e['version']}": str(e["weight"]) for e in split})
    values.update({k: str(v) for k, v in (alias.policy or {}).items()})
    return values


def _submitted(data: QueryDict) -> dict[str, Any]:
    values: dict[str, Any] = {k: v.strip() for k, v in data.items() if k != "csrfmiddlewaretoken"}
    values["rows"] = [int(k[7:]) for k in data if k.startswith("weight_") and k[7:].isdigit()]
    values["protected"] = bool(data.get("protected"))
    return values


def _editor(
    actor: Actor, alias: Alias | None, ready: list[PromptVersion], editing: Editing | None, name: str
) -> dict[str, Any]:
    mine = editing if editing is not None and editing.alias == name else None
    values = mine.values if mine else (_initial(alias) if alias else {"alias": "", "rows": []})
    rows = [{"number": n, "weight": values.get(f"weight_{n}", "")} for n in values["rows"]]
    taken = set(values["rows"])
    chosen = values.get("add_version", "")
    policy = [
        {"name": k, "label": label, "help": help_text, "step": step, "value": values.get(k, "")}
        for k, label, help_text, step in GATE_FIELDS
    ]
    canary = [
        {"name": k, "label": label, "help": help_text, "step": step, "value": values.get(k, "")}
        for k, label, help_text, step in CANARY_FIELDS
    ]
    return {
        "name": alias.name if alias else "",
        "slug": alias.name if alias else NEW,
        "new": alias is None,
        "protected": alias.protected if alias else False,
        "may_edit": actions.may_move(actor, alias, alias.name) if alias else actor.may("move_aliases"),
        "may_manage": actor.may(actions.MANAGE),
        "values": values,
        "rows": rows,
        "add_options": [
            {"value": str(v.number), "label": f"v{v.number}", "selected": str(v.number) == chosen}
            for v in ready
            if v.number not in taken
        ],
        "shadow_options": [
            {
                "value": str(v.number),
                "label": f"v{v.number}",
                "selected": str(v.number) == values.get("shadow"),
            }
            for v in ready
        ],
        "metric": values.get("metric", ""),
        "metrics": gates.METRICS,
        "policy": policy,
        "canary": canary,
        "errors": mine.errors if mine else {},
        "verdicts": mine.verdicts if mine else [],
        "override_reason": values.get("override_reason", ""),
    }


def editor_context(
    request: HttpRequest, prompt: TaskPrompt, aliases: list[Alias], editing: Editing | None = None
) -> dict[str, Any]:
    """What the prompt page's alias editor shows: one form per alias and one for a new alias."""
    actor = request.actor
    ready = _ready(prompt, actor.tenant)
    editors = [_editor(actor, a, ready, editing, a.name) for a in aliases]
    if actor.may("move_aliases"):
        new_name = editing.alias if editing and editing.alias not in {a.name for a in aliases} else ""
        editors.append(_editor(actor, None, ready, editing, new_name))
    return {"alias_editors": editors, "compare_versions": [v.number for v in ready]}


def _number(raw: str, whole: bool) -> float | int:
    return int(raw) if whole else float(raw)


def form_body(values: dict[str, Any], may_manage: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API body of an editor form, and the errors of fields that are not numbers. Weights of 0 take a
    version out of the split; one version left is a plain move."""
    errors: dict[str, list[str]] = {}
    entries = _split_entries(values, errors)
    body: dict[str, Any] = {}
    if len(entries) == 1 and entries[0]["weight"] == 100:
        body["version"] = entries[0]["version"]
    elif entries:
        body["versions"] = entries
    shadow = values.get("shadow", "")
    body["shadow"] = int(shadow) if shadow.isdigit() else None
    if may_manage:
        body["policy"] = _policy(values, errors)
        if values.get("protected_shown"):  # the checkbox was on the form (an existing alias's)
            body["protected"] = bool(values.get("protected"))
    if values.get("override_reason"):
        body["override_reason"] = values["override_reason"]
    return body, errors


def _split_entries(values: dict[str, Any], errors: dict[str, list[str]]) -> list[dict[str, int]]:
    """The weighted versions of the form (its rows and the one being added), those of weight 0 left out;
    a weight that is not a whole number is an error of its field."""
    entries = []
    for number in values["rows"]:
        raw = values.get(f"weight_{number}", "")
        try:
            weight = int(raw or 0)
        except ValueError:
            errors[f"weight_{number}"] = ["A whole number from 0 to 100."]
            continue
        entries.append({"version": number, "weight": weight})
    if values.get("add_version"):
        try:
            entries.append(
                {"version": int(values["add_version"]), "weight": int(values.get("add_weight") or 0)}
            )
        except ValueError:
            errors["add_weight"] = ["A whole number from 0 to 100."]
    return [e for e in entries if e["weight"] != 0]


def _policy(values: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The promotion policy's fields that were filled in; one that is not a number is an error."""
    policy: dict[str, Any] = {}
    if values.get("metric"):
        policy["metric"] = values["metric"]
    for key, *_ in (*GATE_FIELDS, *CANARY_FIELDS):
        raw = values.get(key, "")
        if not raw:
            continue
        try:
            policy[key] = _number(raw, key in WHOLE)
        except ValueError:
            errors[key] = ["A whole number." if key in WHOLE else "A number."]
    return policy


def _field_errors(exc: Refusal) -> dict[str, list[str]]:
    """The API's field names as the form's: `policy.min` is the `min` field, `version(s)` the weights."""
    out: dict[str, list[str]] = {}
    for name, messages in errors_of(exc).items():
        name = name.removeprefix("policy.")
        if name == "version":
            name = "versions"
        out.setdefault(name, []).extend(messages)
    return out


def _alias_row(prompt: TaskPrompt, tenant: Tenant, name: str) -> Alias | None:
    return (
        Alias.objects.for_tenant(tenant)
        .filter(prompt=prompt, name=name)
        .select_related("version", "shadow")
        .first()
    )


def save(request: HttpRequest, prompt: TaskPrompt) -> Editing | None:
    """Apply a submitted editor form (None: done); else what the page shows again, kept as typed."""
    values = _submitted(request.POST)
    name = values.get("alias", "")
    actor = request.actor
    body, errors = form_body(values, actor.may(actions.MANAGE))
    if not ALIAS_PATTERN.match(name):
        errors["alias"] = ["Use 1-50 letters, digits, '.', '_' or '-'."]
    if not errors:
        try:
            form = AliasMoveSerializer(data=body)
            form.is_valid(raise_exception=True)
            change = alias_change(actor.tenant, prompt, name, form.validated_data)
            actions.move_alias(actor, prompt, name, change)
        except actions.GateFailed as exc:
            return Editing(name, values, {FORM: [exc.text]}, exc.extra["gates"])
        except REFUSALS as exc:
            return Editing(name, values, _field_errors(exc))
        else:
            flash.success(request, f"{name} saved.")
            return None
    return Editing(name, values, errors)


@team_page()
@require_GET
def alias_verdict(request: HttpRequest, name: str) -> HttpResponse:
    """The gate's verdict on the editor's current values, before anything moves (htmx, on each change)."""
    prompt = get_object_or_404(TaskPrompt.objects.for_tenant(request.actor.tenant), name=name)
    values = _submitted(request.GET)
    alias_name = values.get("alias", "")
    context: dict[str, Any] = {
        "verdicts": [],
        "problems": [],
        "may_manage": request.actor.may(actions.MANAGE),
        "override_reason": values.get("override_reason", ""),
        "slug": alias_name or NEW,
    }
    body, errors = form_body(values, context["may_manage"])
    body.pop("override_reason", None)
    context["problems"] = [m for ms in errors.values() for m in ms]
    if ALIAS_PATTERN.match(alias_name) and not errors:
        try:
            form = AliasMoveSerializer(data=body)
            form.is_valid(raise_exception=True)
            change = alias_change(request.actor.tenant, prompt, alias_name, form.validated_data)
            alias = _alias_row(prompt, request.actor.tenant, alias_name)
            context["verdicts"] = [v.as_dict() for v in actions.preview(prompt, alias, alias_name, change)]
        except INVALID as exc:
            context["problems"] = [m for ms in errors_of(exc).values() for m in ms]
    return render(request, "webui/_alias_verdict.html", context)


def _version_number(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) < 10 else None


@team_page()
@require_GET
def version_compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two versions on the evaluation set: scores, per-label F1 side by side, the rows they disagree on."""
    tenant = request.actor.tenant
    prompt = get_object_or_404(TaskPrompt.objects.for_tenant(tenant), name=name)
    ready = _ready(prompt, tenant)
    a, b = _version_number(request.GET.get("a")), _version_number(request.GET.get("b"))
    context: dict[str, Any] = {"prompt": prompt, "a": a, "b": b, "result": None, "errors": {}}
    context["a_options"] = [
        {"value": v.number, "label": f"v{v.number}", "selected": v.number == a} for v in ready
    ]
    context["b_options"] = [
        {"value": v.number, "label": f"v{v.number}", "selected": v.number == b} for v in ready
    ]
    if a is not None and b is not None:
        found = gates.versions_by_number(tenant, prompt, [a, b])
        for field_name, number in (("a", a), ("b", b)):
            if number not in found:
                context["errors"][field_name] = [f"{prompt.name} has no version {number}."]
        if not context["errors"]:
            result = compare.compare(tenant, prompt, found[a], found[b])
            for row in result["rows"]:
                row["text"] = " · ".join(str(v) for v in (row["input"] or {}).values())
            context["result"] = result
    return render(request, "webui/version_compare.html", context, status=422 if context["errors"] else 200)
