"""The OpenAI-style model list: every name a caller may send as `model` to /api/v1/completions.

`prompt@alias` for each alias that points at a ready version, `prompt@N` for each ready version, in
OpenAI's shape ({"id", "object": "model", "created", "owned_by"}), as vLLM and LoRAX list adapters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from common.contracts import VersionStatus
from softserve.errors import NotFound
from softserve.numbers import whole_number
from softserve.prompts.models import Alias, PromptVersion
from softserve.tenancy.permissions import Actor


def _entry(model_id: str, created: datetime, actor: Actor) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": actor.tenant.name,
    }


def _ready(queryset):
    # What resolve() serves: a ready version with an artifact.
    return queryset.filter(status=VersionStatus.READY).exclude(artifact_key="")


def models(actor: Actor) -> list[dict[str, Any]]:
    """The team's names, by prompt: its aliases first, then its versions, newest first."""
    aliases = (
        Alias.objects.for_tenant(actor.tenant)
        .filter(version__status=VersionStatus.READY)
        .exclude(version__artifact_key="")
        .values_list("prompt__name", "name", "updated_at")
    )
    versions = _ready(PromptVersion.objects.for_tenant(actor.tenant)).values_list(
        "prompt__name", "number", "created_at"
    )
    rows: list[tuple[str, int, Any, dict[str, Any]]] = []
    for prompt, name, at in aliases:
        rows.append((prompt, 0, name, _entry(f"{prompt}@{name}", at, actor)))
    for prompt, number, at in versions:
        rows.append((prompt, 1, -number, _entry(f"{prompt}@{number}", at, actor)))
    rows.sort(key=lambda row: row[:3])
    return [row[3] for row in rows]


def model(actor: Actor, model_id: str) -> dict[str, Any]:
    """One of `models(actor)` by its id; anything else (another team's, unknown, not ready) is a 404."""
    name, at, ref = model_id.partition("@")
    number = whole_number(ref) if at else None
    if not at or not name or not ref:
        raise NotFound(f"No model {settings.LIMITS.echo(model_id)}: use `prompt@alias` or `prompt@version`.")
    if number is not None:
        version = (
            _ready(PromptVersion.objects.for_tenant(actor.tenant))
            .filter(prompt__name=name, number=number)
            .values_list("created_at", flat=True)
            .first()
        )
        if version is not None:
            return _entry(f"{name}@{number}", version, actor)
    else:
        alias = (
            Alias.objects.for_tenant(actor.tenant)
            .filter(prompt__name=name, name=ref, version__status=VersionStatus.READY)
            .exclude(version__artifact_key="")
            .values_list("updated_at", flat=True)
            .first()
        )
        if alias is not None:
            return _entry(f"{name}@{ref}", alias, actor)
    raise NotFound(f"No model {settings.LIMITS.echo(model_id)}.")
