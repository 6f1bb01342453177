"""A request id on every request and answer, and outages in plain Django views answered as 503s."""

from __future__ import annotations

import functools
import logging
import re
import threading
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

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


# The only views that take large bodies: the dataset upload of the API and of the web UI.
# The dataset upload views and who may send them a large body before the view runs: the API's with an
# API key (DRF checks it before parsing the body), the page's with a signed-in session only (its CSRF check
# reads the body before the view's own login check, so a header alone must not let a stranger in).
API_UPLOAD_VIEW = "datasets"
PAGE_UPLOAD_VIEW = "webui:dataset-upload"
UPLOAD_VIEWS = frozenset({API_UPLOAD_VIEW, PAGE_UPLOAD_VIEW})


@functools.cache
def upload_slots(most: int) -> threading.BoundedSemaphore:
    """The process's places for large uploads at once (one semaphore per configured number)."""
    return threading.BoundedSemaphore(most)


class RequestSizeLimit:
    """The edge, after authentication (which reads no body): a dataset upload (UPLOAD_VIEWS, multipart, from
    a caller with credentials) may carry up to LIMITS.upload_max_bytes, every other body, multipart or not
    and on whatever page, LIMITS.body_max_bytes; over that, a 413 in the API's error shape before any of the
    body is read (Django would otherwise spool a multipart body to disk before any view checks anything).

    A large upload spools to FILE_UPLOAD_TEMP_DIR; at most LIMITS.upload_max_concurrent of them run at
    once in a process (another: 503 with Retry-After), so the spool holds at most that many times
    upload_max_bytes per web process.

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
        if length <= min(limits.body_max_bytes, limits.upload_max_bytes):
            return self.get_response(request)
        upload = self._is_upload(request)
        most = limits.upload_max_bytes if upload else limits.body_max_bytes
        if length > most:
            kind = "An upload" if upload else "A request body"
            message = f"{kind} may be at most {most} bytes; this one is {length} bytes."
            return JsonResponse(error_body(413, "too_large", message), status=413)
        if length <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            return self.get_response(request)  # read into memory: no place on disk to hold
        slots = upload_slots(limits.upload_max_concurrent)
        if not slots.acquire(blocking=False):
            logger.warning("upload of %d bytes refused: %d in progress", length, limits.upload_max_concurrent)
            message = "Too many uploads are in progress on this server; retry shortly."
            response = JsonResponse(error_body(503, "busy", message), status=503)
            response["Retry-After"] = str(settings.OUTAGE_RETRY_AFTER_S)
            return response
        try:
            return self.get_response(request)
        finally:
            slots.release()

    @staticmethod
    def _is_upload(request: HttpRequest) -> bool:
        """A multipart POST to a dataset upload view, from a signed-in user or with an API key (a key is
        checked by DRF before the body is parsed; a page's CSRF check would read the body first)."""
        if request.method != "POST" or request.content_type != "multipart/form-data":
            return False
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
        if match.view_name == PAGE_UPLOAD_VIEW:
            return request.user.is_authenticated
        if match.view_name == API_UPLOAD_VIEW:
            return bool(request.headers.get("Authorization")) or request.user.is_authenticated
        return False
