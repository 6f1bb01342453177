"""Live figures per version of one prompt, from the prediction log: requests, errors, latency, labels,
a shadow's agreement with the primary, and a per-minute series of each (the prompt page's charts).

Counts and means are aggregated in SQL over the window; percentiles and label distributions come from a
bounded sample of the newest rows in it (the same on PostgreSQL and SQLite), so one call reads at most
SAMPLE_ROWS rows however busy the prompt is.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from common.contracts import PredictionOutcome, TaskType
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.serving.actions import percentile
from softserve.serving.models import Prediction
from softserve.tenancy.models import Tenant

MAX_WINDOW_S = 24 * 3600
DEFAULT_WINDOW_S = 300
SAMPLE_ROWS = 5000


def _minute(moment) -> int:
    return int(moment.timestamp()) // 60


def _roles(aliases: list[Alias]) -> dict[str, list[dict[str, Any]]]:
    """Per version id: what each alias has it do (primary, canary with its weight, shadow)."""
    roles: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alias in aliases:
        weights = {int(e["version"]): int(e["weight"]) for e in alias.split or []}
        roles[str(alias.version_id)].append(
            {"alias": alias.name, "role": "primary", "weight": weights.get(alias.version.number, 100)}
        )
        for number, weight in weights.items():
            if number != alias.version.number:
                roles[f"#{number}"].append({"alias": alias.name, "role": "canary", "weight": weight})
        if alias.shadow_id:
            roles[str(alias.shadow_id)].append({"alias": alias.name, "role": "shadow"})
    return roles


def figures(tenant: Tenant, prompt: TaskPrompt, window_s: int = DEFAULT_WINDOW_S) -> dict[str, Any]:
    """Each version that served the prompt in the last `window_s` seconds (or that an alias names now)."""
    window_s = max(1, min(int(window_s), MAX_WINDOW_S))
    now = timezone.now()
    since = now - timedelta(seconds=window_s)
    recent = Prediction.objects.for_tenant(tenant).filter(prompt=prompt, created_at__gte=since)
    totals, per_minute = _served(recent)
    shadow_totals, shadow_minutes = _shadowed(recent)
    sample = list(
        recent.order_by("-created_at").values_list(
            "version_id", "created_at", "latency_ms", "outputs", "shadow_version_id", "shadow_outputs"
        )[:SAMPLE_ROWS]
    )
    aliases = list(
        Alias.objects.for_tenant(tenant)
        .filter(prompt=prompt)
        .select_related("version")
        .defer("version__inspection")
    )
    roles = _roles(aliases)
    versions = _version_numbers(tenant, prompt, set(totals) | set(shadow_totals), roles)

    minutes = list(range(_minute(since), _minute(now) + 1))
    classification = prompt.task_type == TaskType.CLASSIFICATION
    sampled = _Sampled.of(sample, classification)
    by_version = _series(minutes, per_minute, sampled.minute_latencies, shadow_minutes)
    out = []
    for key, number in sorted(versions.items(), key=lambda kv: kv[1]):
        t = totals.get(key, {})
        requests, errors = t.get("requests", 0), t.get("errors", 0)
        shadow = shadow_totals.get(key)
        out.append(
            {
                "version": number,
                "roles": roles.get(key, []) + roles.get(f"#{number}", []),
                "requests": requests,
                "errors": errors,
                "error_rate": round(errors / requests, 4) if requests else None,
                "rows": t.get("rows_total") or 0,
                "p50_ms": percentile(sampled.latencies.get(key, []), 0.5),
                "p95_ms": percentile(sampled.latencies.get(key, []), 0.95),
                "labels": dict(sampled.labels[key].most_common()) if classification else None,
                "shadow": None
                if shadow is None
                else {
                    "requests": shadow["requests"],
                    "agreement": round(shadow["agreement"], 4) if shadow["agreement"] is not None else None,
                    "labels": dict(sampled.shadow_labels[key].most_common()) if classification else None,
                },
                "series": by_version[key],
            }
        )
    return {
        "prompt": prompt.name,
        "window_s": window_s,
        "since": since.isoformat(),
        "until": now.isoformat(),
        "minutes": [datetime.fromtimestamp(60 * m, tz=UTC).isoformat() for m in minutes],
        "sampled": len(sample),
        "sample_limit": SAMPLE_ROWS,
        "versions": out,
    }


def _served(recent: QuerySet[Prediction]) -> tuple[dict[str, Any], QuerySet[Any, Any]]:
    """Per version id: requests, errors and rows over the window; and the same per minute (lazy)."""
    failed = Q(outcome=PredictionOutcome.ERROR)
    totals = {
        str(t["version_id"]): t
        for t in recent.values("version_id")
        .annotate(requests=Count("id"), errors=Count("id", filter=failed), rows_total=Sum("rows"))
        .order_by()
    }
    per_minute = (
        recent.annotate(minute=TruncMinute("created_at"))
        .values("version_id", "minute")
        .annotate(requests=Count("id"), errors=Count("id", filter=failed))
        .order_by()
    )
    return totals, per_minute


def _shadowed(recent: QuerySet[Prediction]) -> tuple[dict[str, Any], QuerySet[Any, Any]]:
    """Per shadow version id: requests and mean agreement over the window; and the agreement per minute."""
    shadowed = recent.filter(shadow_version__isnull=False)
    shadow_totals = {
        str(t["shadow_version_id"]): t
        for t in shadowed.values("shadow_version_id")
        .annotate(requests=Count("id"), agreement=Avg("shadow_agreement"))
        .order_by()
    }
    shadow_minutes = (
        shadowed.annotate(minute=TruncMinute("created_at"))
        .values("shadow_version_id", "minute")
        .annotate(agreement=Avg("shadow_agreement"))
        .order_by()
    )
    return shadow_totals, shadow_minutes


def _version_numbers(
    tenant: Tenant, prompt: TaskPrompt, served: set[str], roles: dict[str, list[dict[str, Any]]]
) -> dict[str, int]:
    """Version id -> number for every version that served, or that an alias names (by id or "#number")."""
    wanted = served | {k for k in roles if not k.startswith("#")}
    numbered = {int(k[1:]) for k in roles if k.startswith("#")}
    return {
        str(v.pk): v.number
        for v in PromptVersion.objects.for_tenant(tenant)
        .filter(prompt=prompt)
        .filter(Q(pk__in=wanted) | Q(number__in=numbered))
        .only("pk", "number")
    }


@dataclass
class _Sampled:
    """What the newest SAMPLE_ROWS rows give, per version id: latencies (also per minute) and labels."""

    latencies: dict[str, list[float]]
    minute_latencies: dict[tuple[str, int], list[float]]
    labels: dict[str, Counter[str]]
    shadow_labels: dict[str, Counter[str]]

    @classmethod
    def of(cls, sample: list[tuple[Any, ...]], classification: bool) -> _Sampled:
        sampled = cls(defaultdict(list), defaultdict(list), defaultdict(Counter), defaultdict(Counter))
        for version_id, created_at, latency_ms, outputs, shadow_id, shadow_outputs in sample:
            key = str(version_id)
            sampled.latencies[key].append(latency_ms)
            sampled.minute_latencies[(key, _minute(created_at))].append(latency_ms)
            if classification:
                sampled.labels[key].update(str(o) for o in outputs or [])
                if shadow_id:
                    sampled.shadow_labels[str(shadow_id)].update(str(o) for o in shadow_outputs or [])
        return sampled


def _series(
    minutes: list[int],
    per_minute: QuerySet[Any, Any],
    minute_latencies: dict[tuple[str, int], list[float]],
    shadow_minutes: QuerySet[Any, Any],
) -> defaultdict[str, dict[str, list[Any]]]:
    """Per version id, one value a minute: requests, errors, error rate, p95 latency, shadow agreement."""
    index = {m: i for i, m in enumerate(minutes)}

    def series() -> dict[str, list[Any]]:
        return {
            "requests": [0] * len(minutes),
            "errors": [0] * len(minutes),
            "error_rate": [None] * len(minutes),
            "p95_ms": [None] * len(minutes),
            "agreement": [None] * len(minutes),
        }

    by_version: defaultdict[str, dict[str, list[Any]]] = defaultdict(series)
    for m in per_minute:
        s, i = by_version[str(m["version_id"])], index.get(_minute(m["minute"]))
        if i is None:
            continue
        s["requests"][i], s["errors"][i] = m["requests"], m["errors"]
        s["error_rate"][i] = round(m["errors"] / m["requests"], 4) if m["requests"] else None
    for (key, minute), values in minute_latencies.items():
        if (i := index.get(minute)) is not None:
            by_version[key]["p95_ms"][i] = percentile(values, 0.95)
    for m in shadow_minutes:
        if (i := index.get(_minute(m["minute"]))) is not None and m["agreement"] is not None:
            by_version[str(m["shadow_version_id"])]["agreement"][i] = round(m["agreement"], 4)
    return by_version
