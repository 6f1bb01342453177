"""The edge: a request over its size limit is refused (413) before any of its body is read."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    """The API's one error shape, for answers given outside DRF's exception handler."""
    body = {"error": {"status": status, "code": code, "message": message, "fields": fields or {}}}
    return JsonResponse(body, status=status)


class RequestSizeLimit:
    """Multipart uploads may carry up to LIMITS.upload_max_bytes, every other body LIMITS.body_max_bytes.

    The WSGI server hands Django at most CONTENT_LENGTH bytes, so checking the declared length bounds
    what is read; a body without a length is read as empty by Django."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_response(400, "invalid", "Content-Length is not a whole number.")
        limits = settings.LIMITS
        multipart = request.content_type == "multipart/form-data"
        most = limits.upload_max_bytes if multipart else limits.body_max_bytes
        if length > most:
            kind = "An upload" if multipart else "A request body"
            return error_response(
                413, "too_large", f"{kind} may be at most {most} bytes; this one is {length} bytes."
            )
        return self.get_response(request)
