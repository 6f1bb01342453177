"""The playground: a prompt's alias or version (or two side by side) on typed inputs, through serving."""

from __future__ import annotations

import json
import math
import shlex
import uuid
from urllib.parse import quote

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import Throttled

from common.contracts import template_fields
from softserve.datasets.models import DatasetVersion
from softserve.errors import Invalid
from softserve.numbers import whole_number
from softserve.prompts.models import TaskPrompt
from softserve.serving import actions
from softserve.tenancy import throttling
from webui.forms import REFUSALS, dataset_options, errors_of, name_options
from webui.insights import preview_rows
from webui.team import team_page

CHOICES = 200
SAMPLE_ROWS = 3


def _inputs(text: str, fields: list[str]) -> list:
    """One input per line: plain text for a one-field template, else a JSON object per line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(fields) == 1:
        return lines
    try:
        return [json.loads(line) for line in lines]
    except json.JSONDecodeError as exc:
        raise Invalid({"inputs": [f"One JSON object per line with the fields {fields}: {exc.msg}."]}) from exc


def _dataset_rows(request: HttpRequest, version_id: str, prompt_name: str) -> str:
    """A few rows of one of the team's dataset versions, as the inputs box expects them."""
    try:
        wanted = uuid.UUID(version_id)
    except ValueError:
        raise Http404("No such dataset version.") from None
    version = DatasetVersion.objects.for_tenant(request.actor.tenant).filter(pk=wanted).first()
    if version is None:
        raise Http404("No such dataset version.")
    prompt = TaskPrompt.objects.for_tenant(request.actor.tenant).filter(name=prompt_name).first()
    fields = template_fields(prompt.template) if prompt else version.fields
    rows = preview_rows(version, 1)[:SAMPLE_ROWS]
    if len(fields) == 1:
        return "\n".join(str(row.get(fields[0], "")) for row in rows)
    return "\n".join(json.dumps({f: row.get(f, "") for f in fields}, ensure_ascii=False) for row in rows)


def _ref(value: str) -> dict:
    value = value.strip()
    if not value:
        return {}
    number = whole_number(value)
    return {"version": number} if number is not None else {"alias": value}


def _run(request: HttpRequest, name: str, ref: dict, text: str) -> dict:
    throttling.charge(request)  # the team's requests per minute: the API's counter, not a second one
    served = actions.serve(
        request.actor,
        lambda: actions.ServeCall(
            name,
            lambda prompt: _inputs(text, template_fields(prompt.template)),
            alias=ref.get("alias"),
            version=ref.get("version"),
        ),
    )
    outputs = []
    for row, out in zip(served.rows, served.prediction.body["outputs"], strict=False):
        scores = sorted((out.get("scores") or {}).items(), key=lambda kv: -kv[1])
        outputs.append({"input": row, "label": out.get("label"), "text": out.get("text"), "scores": scores})
    return {
        "version": served.route.version.number,
        "prediction_id": served.prediction.prediction_id,
        "outputs": outputs,
        "latency_ms": round(served.latency_ms, 1),
    }


def snippets(request: HttpRequest, values: dict[str, str]) -> dict[str, str]:
    """The same call as `curl` and Python lines a user copies into a shell or a file. The prompt's name
    comes from the query string, so anyone can craft a link: a name that is not one of the team's
    prompts is left out (a placeholder instead), and every part of the shell line is quoted."""
    name = values["prompt"]
    known = bool(name) and TaskPrompt.objects.for_tenant(request.actor.tenant).filter(name=name).exists()
    body = {"inputs": [line for line in values["inputs"].splitlines() if line.strip()][:3] or ["…"]}
    body.update(_ref(values["ref"]) or {"alias": "production"})
    path = quote(name, safe="") if known else "<prompt>"
    url = request.build_absolute_uri("/api/v1/prompts/") + path + ":predict"
    auth, content = "Authorization: Bearer ss_…", "Content-Type: application/json"
    curl = (
        f"curl -H {shlex.quote(auth)} -H {shlex.quote(content)} \\\n"
        f"     -d {shlex.quote(json.dumps(body))} \\\n"
        f"     {shlex.quote(url)}"
    )
    # repr() of strings, numbers and lists of them is a Python literal: nothing in it runs.
    python = (
        "import requests\n\n"
        f"response = requests.post(\n    {url!r},\n"
        "    headers={'Authorization': 'Bearer ss_…'},  # your API key\n"
        f"    json={body!r},\n)\nprint(response.json())"
    )
    return {"curl": curl, "python": python}


@team_page(post="predict")
def playground(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    source = request.POST if request.method == "POST" else request.GET
    values = {k: source.get(k, "") for k in ("prompt", "ref", "ref_b", "inputs")}
    values["ref"] = values["ref"] or "production"
    rows_from = request.GET.get("rows_from", "")
    if request.method == "GET" and rows_from:
        values["inputs"] = _dataset_rows(request, rows_from, values["prompt"])
    errors: dict[str, list[str]] = {}
    results = []
    # 429 (with Retry-After) when the team is over its requests per minute; else 422 with errors, 200 without.
    status, retry_after = None, 0
    if request.method == "POST":
        refs = [("ref", values["ref"])] + ([("ref_b", values["ref_b"])] if values["ref_b"].strip() else [])
        for field, ref in refs:
            try:
                results.append({"ref": ref, **_run(request, values["prompt"], _ref(ref), values["inputs"])})
            except REFUSALS as exc:
                if isinstance(exc, Throttled):
                    status, retry_after = exc.status_code, math.ceil(exc.wait or 1)
                for key, messages in errors_of(exc).items():
                    target = key if key.startswith("inputs") else field
                    errors.setdefault(target, []).extend(messages)
    context = {
        "values": values,
        "errors": errors,
        "results": results,
        "datasets": dataset_options(
            DatasetVersion.objects.for_tenant(tenant)
            .select_related("dataset")
            .order_by("-created_at")[:CHOICES]
        ),
        "prompts": name_options(
            TaskPrompt.objects.for_tenant(tenant).order_by("name").values_list("name", flat=True)[:CHOICES],
            values["prompt"],
        ),
        **snippets(request, values),
    }
    response = render(request, "webui/playground.html", context, status=status or (422 if errors else 200))
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
