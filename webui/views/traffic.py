"""The prompt page's live traffic panel: per-version charts and figures from the prediction log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from softserve.prompts.models import TaskPrompt
from softserve.serving import traffic
from webui.team import team_page

# The panel's window (the API's default) and how often htmx asks again (in the template: every 5 s).
WINDOW_S = 15 * 60


def _chart(figures: dict[str, Any], series: str, y: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """One Chart.js line chart of `series` per version over the window's minutes."""
    labels = [datetime.fromisoformat(m).strftime("%H:%M") for m in figures["minutes"]]
    return {
        "type": "line",
        "labels": labels,
        "datasets": [{"label": f"v{v['version']}", "data": v["series"][series]} for v in versions],
        "x": "minute (UTC)",
        "y": y,
    }


def _context(request: HttpRequest, name: str) -> dict[str, Any]:
    prompt = get_object_or_404(TaskPrompt.objects.for_tenant(request.actor.tenant), name=name)
    figures = traffic.figures(request.actor.tenant, prompt, WINDOW_S)
    versions = figures["versions"]
    serving = [v for v in versions if v["requests"] or any(r["role"] != "shadow" for r in v["roles"])]
    shadows = [v for v in versions if v["shadow"]]
    for v in versions:
        v["role_names"] = ", ".join(
            f"{r['role']} of {r['alias']}"
            + (f" ({r['weight']}%)" if "weight" in r and r["role"] == "canary" else "")
            for r in v["roles"]
        )
        v["top_labels"] = list((v["labels"] or {}).items())[:4]
    return {
        "prompt": prompt,
        "figures": figures,
        "versions": versions,
        "window_min": WINDOW_S // 60,
        "requests_chart": _chart(figures, "requests", "requests / min", serving),
        "errors_chart": _chart(figures, "error_rate", "error rate", serving),
        "latency_chart": _chart(figures, "p95_ms", "p95 latency (ms)", serving),
        "agreement_chart": _chart(figures, "agreement", "agreement with the primary", shadows),
        "has_shadow": bool(shadows),
    }


@team_page()
def prompt_traffic(request: HttpRequest, name: str) -> HttpResponse:
    """The live part of the traffic panel, polled by htmx every few seconds."""
    return render(request, "webui/_traffic_live.html", _context(request, name))
