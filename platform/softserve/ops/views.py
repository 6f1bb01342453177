"""Probes and metrics: no authentication, no session, no database for `/healthz`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from softserve.ops.health import ready


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and answering (it checks nothing else: a restart would not fix a database)."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, broker and storage answer; else 503 naming the ones that do not."""
    result = ready()
    return JsonResponse(result.body(), status=200 if result.ok else 503)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition (scraped on the internal network; no authentication)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from softserve.ops.metrics import exposition

    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
