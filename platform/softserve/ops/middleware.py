"""Probes answered before anything else, then a request id and metrics for every other request."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from softserve.ops import metrics, views

logger = logging.getLogger("softserve.request")

# No host check (a kubelet or Prometheus reaches a pod by IP), no session, CSRF or authentication.
PROBES = {"/healthz": views.healthz, "/readyz": views.readyz, "/metrics": views.metrics}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


class RequestMiddleware:
    """After OutageMiddleware (which gives each request its id and echoes it as X-Request-ID): that id
    on every log line of the request, one access line, and the request metrics by URL pattern name."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = getattr(request, "request_id", "") or uuid.uuid4().hex
        started = time.perf_counter()
        # Bound for the rest of this thread's request, so that Django's own error line (written after the
        # middleware returns) carries it too; the next request on the thread starts clean.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route or "unnamed") if match else "unmatched"
        metrics.observe(view, request.method or "", response.status_code, seconds)
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path[:200],
                "view": view,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        return response
