"""A request id on every request and answer, and outages in plain Django views answered as 503s."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from softserve.api.errors import error_body, failure_response, is_outage

logger = logging.getLogger(__name__)

# A caller's (or proxy's) X-Request-ID is kept when it is short and plain; anything else gets a new one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class OutageMiddleware:
    """First in MIDDLEWARE. Exceptions in the middlewares after it never reach it (Django turns each into
    a response where it is raised, through handler500 = `errors.server_error`); exceptions of views that
    are not DRF views come here, and an outage among them is a 503 instead of Django's HTML 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None  # Django's own handling: logged, then handler500
        logger.warning("outage answered 503 on %s: %s: %s", request.path, type(exception).__name__, exception)
        return failure_response(request, exception)


class RequestSizeLimit:
    """The edge: a multipart upload may carry up to LIMITS.upload_max_bytes, every other body
    LIMITS.body_max_bytes; over that, a 413 in the API's error shape before any of the body is read.

    The WSGI server hands Django at most CONTENT_LENGTH bytes, so checking the declared length bounds
    what is read; a body without a length is read as empty by Django."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or "0")
        except ValueError:
            body = error_body(400, "invalid", "Content-Length is not a whole number.")
            return JsonResponse(body, status=400)
        limits = settings.LIMITS
        multipart = request.content_type == "multipart/form-data"
        most = limits.upload_max_bytes if multipart else limits.body_max_bytes
        if length > most:
            kind = "An upload" if multipart else "A request body"
            message = f"{kind} may be at most {most} bytes; this one is {length} bytes."
            return JsonResponse(error_body(413, "too_large", message), status=413)
        return self.get_response(request)
