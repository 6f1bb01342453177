"""Probes answered before anything else, then a request id and metrics for every other request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from softserve.ops import metrics, views

logger = logging.getLogger("softserve.request")

# No host check (a kubelet or Prometheus reaches a pod by IP), no session, CSRF or authentication.
PROBES = {"/healthz": views.healthz, "/readyz": views.readyz, "/metrics": views.metrics}
# A caller's own X-Request-ID is kept when it is short and plain; anything else gets a fresh id.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


class RequestMiddleware:
    """`request_id` on every log line of the request (echoed as X-Request-ID), one access line, and the
    request metrics by the URL pattern's name."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
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
        response["X-Request-ID"] = request_id
        return response
