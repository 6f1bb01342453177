"""A request id on every request and response, so a person can quote it and an operator can find it."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)
# A proxy's id is kept when it looks like one; anything else is replaced (ids end up in logs).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    header = "X-Request-ID"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(self.header, "")
        request.request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        response = self.get_response(request)
        response[self.header] = request.request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django logs the traceback too; this line ties it to the id the error page shows.
        rid = getattr(request, "request_id", "-")
        log.error("request %s failed: %s: %s", rid, type(exception).__name__, exception)
