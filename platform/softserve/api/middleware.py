"""A request id on every request and answer, and outages in plain Django views answered as 503s."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from softserve.api.errors import failure_response, is_outage

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
