"""An alias's moves, read back from the audit log: one query for the API's alias detail and the web UI's
prompt page alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.contracts import AuditAction
from softserve.prompts.models import Alias, TaskPrompt
from softserve.tenancy.models import AuditEvent, Tenant


@dataclass(frozen=True)
class AliasMove:
    """One routing change of an alias (`alias.move`): the version it pointed at before and after, with
    the split, shadow and gate override that came with it. `event` is the audit row (who moved it)."""

    at: datetime
    alias: str | None
    before: int | None
    version: int | None
    split: list[dict[str, Any]]
    shadow: int | None
    override_reason: str | None
    event: AuditEvent


def alias_moves(
    tenant: Tenant,
    prompt: TaskPrompt | None = None,
    alias: Alias | None = None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[AliasMove]:
    """The moves of `alias`, or else of every alias of `prompt`, oldest first unless `newest_first`."""
    if alias is not None:
        targets = [str(alias.pk)]
    else:
        if prompt is None:
            raise TypeError("alias_moves needs the alias or its prompt")
        aliases = Alias.objects.for_tenant(tenant).filter(prompt=prompt)
        targets = [str(pk) for pk in aliases.values_list("pk", flat=True)]
    events = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(action=AuditAction.ALIAS_MOVE, target_id__in=targets)
        .select_related("actor_user", "actor_key")
        .order_by("-created_at" if newest_first else "created_at")
    )
    if limit is not None:
        events = events[:limit]
    return [_move(e) for e in events]


def _move(event: AuditEvent) -> AliasMove:
    after = event.after or {}
    return AliasMove(
        at=event.created_at,
        alias=after.get("alias"),
        before=(event.before or {}).get("version"),
        version=after.get("version"),
        split=after.get("split", []),
        shadow=after.get("shadow"),
        override_reason=after.get("override_reason"),
        event=event,
    )
