"""Page forms on the API's serializers: the same validation, its messages shown beside each field."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest
from rest_framework.exceptions import APIException, ValidationError

from softserve.errors import DomainError, Invalid

FORM = "form"  # errors that belong to the whole form
PAGE_SIZE = 50
# What a page catches around an action or a serializer: the platform's refusals (softserve.errors) and
# DRF's (a serializer's ValidationError, a throttle); `errors_of` turns either into page messages.
REFUSALS: tuple[type[Exception], ...] = (DomainError, APIException)
Refusal = DomainError | APIException
# An input the form shows beside its fields: a serializer's ValidationError or an action's Invalid.
INVALID: tuple[type[Exception], ...] = (Invalid, ValidationError)


def errors_of(exc: Refusal) -> dict[str, list[str]]:
    """{field: [messages]} from an action's or serializer's exception; other refusals go to FORM."""
    if isinstance(exc, DomainError):
        return _domain_errors(exc)
    if not isinstance(exc, ValidationError):
        return {FORM: [str(exc.detail)]}
    detail = exc.detail
    if isinstance(detail, list):
        return {FORM: [str(m) for m in _messages(detail)]}
    out: dict[str, list[str]] = {}
    for field, value in detail.items():
        name = FORM if field == "non_field_errors" else str(field)
        out.setdefault(name, []).extend(str(m) for m in _messages(value))
    return out


def _domain_errors(exc: DomainError) -> dict[str, list[str]]:
    """An action's refusal: an invalid input's fields beside their inputs (non_field_errors: the form's);
    any other refusal (a size limit too) as its sentence for the whole form."""
    if not isinstance(exc, Invalid) or not exc.fields:
        return {FORM: [exc.text]}
    out: dict[str, list[str]] = {}
    for field, messages in exc.fields.items():
        out.setdefault(FORM if field == "non_field_errors" else field, []).extend(map(str, messages))
    return out


def _messages(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _messages(v)]
    if isinstance(value, list):
        return [m for v in value for m in _messages(v)]
    return [str(value)]


def submitted(request: HttpRequest) -> dict[str, str]:
    """The POSTed text fields, blanks dropped, so an optional field left empty takes its default."""
    return {k: v.strip() for k, v in request.POST.items() if k != "csrfmiddlewaretoken" and v.strip()}


def dataset_options(versions, selected: str = "") -> list[dict[str, object]]:
    """<option>s for dataset versions, built here: a template loop of lookups costs more per row."""
    return [
        {
            "value": str(v.pk),
            "label": f"{v.dataset.name} v{v.number} ({v.row_count} rows)",
            "selected": str(v.pk) == selected,
        }
        for v in versions
    ]


def name_options(names, selected: str = "") -> list[dict[str, object]]:
    return [{"value": n, "label": n, "selected": n == selected} for n in names]


def page_of(request: HttpRequest, queryset, per_page: int = PAGE_SIZE, param: str = "page") -> Page:
    """One page of a list: a COUNT and one SELECT, whatever the number of rows."""
    page = Paginator(queryset, per_page).get_page(request.GET.get(param))
    page.param = param  # the pager's links name it
    return page
