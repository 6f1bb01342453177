"""Probes and metrics: no session, no database for `/healthz`; `/metrics` only with METRICS_TOKEN."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from softserve.api.errors import error_body
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
    """Prometheus text exposition, for `Authorization: Bearer <METRICS_TOKEN>` only: the series name every
    team's prompts and traffic (embedded serving), so no address, inside the cluster or not, is enough.
    Without a token configured the web port serves no metrics at all (404); with one, anything but that
    token is a 401."""
    token = settings.METRICS_TOKEN
    if not token:
        return JsonResponse(
            error_body(404, "not_found", "Metrics are off on this port (METRICS_TOKEN)."), status=404
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = JsonResponse(
            error_body(401, "not_authenticated", "The metrics token is needed."), status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from prometheus_client import CONTENT_TYPE_LATEST

    from softserve.ops.metrics import exposition

    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
