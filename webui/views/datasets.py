"""Dataset pages: the list, upload (validated by the API's serializer and action), a version's page."""

from __future__ import annotations

import re

from django.core.files.storage import default_storage
from django.db.models import Count, Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from softserve.datasets import actions
from softserve.datasets.models import Dataset, DatasetVersion
from softserve.datasets.serializers import UploadSerializer
from softserve.datasets.validation import FORMATS
from webui.forms import REFUSALS, errors_of, page_of, submitted
from webui.insights import PREVIEW_MAX_ROW, PREVIEW_PAGE, dataset_stats, preview_rows
from webui.team import team_page

_ROW = re.compile(r"^row (\d+): (.*)$", re.S)
_COLUMN = re.compile(r"(?:column|in) '([^']*)'|column\(s\) \[([^\]]*)\]")


def report_rows(messages: list[str]) -> list[dict[str, str]]:
    """The validator's messages as (line, column, problem) rows for the report table."""
    rows = []
    for message in messages:
        match = _ROW.match(message)
        line, problem = (match.group(1), match.group(2)) if match else ("", message)
        column = _COLUMN.search(problem)
        rows.append(
            {
                "line": line,
                "column": (column.group(1) or column.group(2)) if column else "",
                "problem": problem,
            }
        )
    return rows


@team_page()
def dataset_list(request: HttpRequest) -> HttpResponse:
    page = page_of(request, Dataset.objects.for_tenant(request.actor.tenant).order_by("name"))
    # Version counts for this page's datasets only: aggregating over every dataset first would make
    # the page as slow as the team is big.
    counts = {
        row["dataset_id"]: row
        for row in DatasetVersion.objects.for_tenant(request.actor.tenant)
        .filter(dataset_id__in=[d.pk for d in page.object_list])
        .values("dataset_id")
        .annotate(version_count=Count("pk"), latest=Max("number"))
    }
    for dataset in page.object_list:
        dataset.version_count = counts.get(dataset.pk, {}).get("version_count", 0)
        dataset.latest = counts.get(dataset.pk, {}).get("latest")
    return render(
        request,
        "webui/datasets.html",
        {"page": page, "values": {}, "errors": {}, "formats": FORMATS},
    )


@team_page(post="upload")
def dataset_upload(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return dataset_list(request)
    values = submitted(request)
    form = UploadSerializer(data={**values, "file": request.FILES.get("file")})
    try:
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        version = actions.upload(
            request.actor, form.validated_data["name"], upload.file, upload.name, form.upload_spec()
        )
    except REFUSALS as exc:
        errors = errors_of(exc)
        context = {
            "values": values,
            "errors": errors,
            "report": report_rows(errors.pop("file", [])) if "file" in errors else [],
            "filename": getattr(request.FILES.get("file"), "name", ""),
            "formats": FORMATS,
        }
        template = "webui/_upload_form.html" if request.htmx else "webui/datasets.html"
        if not request.htmx:
            context["page"] = page_of(request, Dataset.objects.none())
        return render(request, template, context, status=422)
    url = reverse("webui:dataset-version", args=[version.dataset_id, version.number])
    return (
        HttpResponseClientRedirect(url)
        if request.htmx
        else HttpResponse(status=303, headers={"Location": url})
    )


def _version(request: HttpRequest, pk, number: int) -> DatasetVersion:
    return get_object_or_404(
        DatasetVersion.objects.for_tenant(request.actor.tenant).select_related("dataset"),
        dataset_id=pk,
        number=number,
    )


@team_page()
def dataset_version(request: HttpRequest, pk, number: int) -> HttpResponse:
    version = _version(request, pk, number)
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    last_page = max(1, min(-(-version.row_count // PREVIEW_PAGE), PREVIEW_MAX_ROW // PREVIEW_PAGE))
    page = min(page, last_page)
    others = list(
        DatasetVersion.objects.for_tenant(request.actor.tenant)
        .filter(dataset_id=pk)
        .order_by("-number")
        .values_list("number", flat=True)[:50]
    )
    labels = sorted(version.label_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    context = {
        "version": version,
        "rows": [
            {"n": (page - 1) * PREVIEW_PAGE + i + 1, "cells": [row.get(f, "") for f in version.fields], **row}
            for i, row in enumerate(preview_rows(version, page))
        ],
        "fields": version.fields,
        "page": page,
        "last_page": last_page,
        "stats": dataset_stats(version),
        "label_chart": {
            "type": "bar",
            "labels": [k for k, _ in labels],
            "datasets": [{"label": "rows", "data": [v for _, v in labels]}],
            "x": "label",
            "y": "rows",
        },
        "others": others,
    }
    stats = context["stats"]
    context["length_chart"] = {
        "type": "bar",
        "labels": stats["histogram"]["labels"],
        "datasets": [{"label": "rows", "data": stats["histogram"]["counts"]}],
        "x": "characters",
        "y": "rows",
    }
    return render(request, "webui/dataset_version.html", context)


@team_page()
def dataset_download(request: HttpRequest, pk, number: int) -> HttpResponse:
    version = _version(request, pk, number)
    try:
        handle = default_storage.open(version.storage_key, "rb")
    except FileNotFoundError:
        raise Http404("The stored rows are missing.") from None
    name = f"{version.dataset.name}-v{version.number}.jsonl"
    return FileResponse(handle, as_attachment=True, filename=name, content_type="application/x-ndjson")
