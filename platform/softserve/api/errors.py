"""One error shape for every API failure: {"error": {"status", "code", "message", "fields"}}.

An outage of a service the platform depends on (the database, Redis, the Celery broker) is a 503 with
Retry-After in that shape, wherever it happens: in a DRF view (`exception_handler`), in a plain Django
view (`OutageMiddleware.process_exception`) or in a middleware or template outside any view
(`server_error`, Django's handler500). Pages outside the API get a short HTML page instead of JSON.
"""

from __future__ import annotations

import logging
import sys

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from kombu.exceptions import OperationalError as BrokerError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from softserve import errors as domain

logger = logging.getLogger(__name__)

# A dependency that is down, restarting or not answering in time: the client may retry the same request.
# (redis' ConnectionError covers BusyLoadingError, a Redis still loading its data after a restart.)
OUTAGES: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    BrokerError,
)
UNAVAILABLE_MESSAGE = (
    "Softserve is briefly unavailable (a service it depends on is restarting); retry shortly."
)
API_PREFIX = "/api/"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    default_detail = UNAVAILABLE_MESSAGE

    def __init__(self) -> None:
        super().__init__()
        self.wait = settings.OUTAGE_RETRY_AFTER_S  # DRF's handler turns this into Retry-After


def is_outage(exc: BaseException | None) -> bool:
    return isinstance(exc, OUTAGES)


def error_body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields or {}}}


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {}


# The one place a domain error gets its HTTP status (the first class in its MRO that is listed).
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.Invalid: status.HTTP_400_BAD_REQUEST,
    domain.Forbidden: status.HTTP_403_FORBIDDEN,
    domain.NotFound: status.HTTP_404_NOT_FOUND,
    domain.Conflict: status.HTTP_409_CONFLICT,
    domain.TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    domain.QuotaExceeded: status.HTTP_429_TOO_MANY_REQUESTS,
    domain.UpstreamFailed: status.HTTP_502_BAD_GATEWAY,
    domain.Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    domain.TimedOut: status.HTTP_504_GATEWAY_TIMEOUT,
}


def status_of(exc: domain.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def as_api_exception(exc: domain.DomainError) -> exceptions.APIException:
    """The DRF exception DRF's handler answers as the error body below: an invalid input is a
    ValidationError of its fields; the rest carry their status, code, fields, extra figures and wait."""
    if isinstance(exc, domain.Invalid):
        return exceptions.ValidationError(exc.fields or [exc.text])
    api = exceptions.APIException(exc.text, code=exc.code)
    api.status_code = status_of(exc)
    api.fields = exc.fields  # type: ignore[attr-defined]
    api.extra = exc.extra  # type: ignore[attr-defined]
    if exc.retry_after is not None:
        api.wait = exc.retry_after  # type: ignore[attr-defined]  # DRF's handler: Retry-After
    return api


def exception_handler(exc, context):
    if is_outage(exc):
        logger.warning("outage answered 503: %s: %s", type(exc).__name__, exc)
        exc = ServiceUnavailable()
    if isinstance(exc, domain.DomainError):
        exc = as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    fields = _flatten(exc.detail) if isinstance(exc, exceptions.ValidationError) else {}
    fields = getattr(exc, "fields", None) or fields
    if isinstance(exc, exceptions.ValidationError):
        message = "The request has invalid fields." if fields else "The request is invalid."
        code = "invalid"
    else:
        detail = getattr(exc, "detail", str(exc))
        message = str(detail)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    response.data = error_body(response.status_code, code, message, fields)
    # An exception may carry figures of its own beside the shape's keys (a gate's verdict on 409).
    response.data["error"].update(getattr(exc, "extra", None) or {})
    return response


def failure_response(request: HttpRequest, exc: BaseException | None) -> HttpResponse:
    """The answer to an exception nothing else handled: 503 for an outage, else 500. JSON in the API's
    shape under /api/, else a standalone page rendered without the request (no context processor may
    touch the database that just failed); both carry the request id."""
    request_id = getattr(request, "request_id", "")
    if is_outage(exc):
        status_code, code, message, template = 503, "unavailable", UNAVAILABLE_MESSAGE, "503.html"
    else:
        status_code, code, template = 500, "server_error", "500.html"
        message = f"Internal error; quote request id {request_id} when reporting it."
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse(error_body(status_code, code, message), status=status_code)
    else:
        page = loader.get_template(template).render({"request_id": request_id})
        response = HttpResponse(page, status=status_code, content_type="text/html; charset=utf-8")
    if status_code == 503:
        response["Retry-After"] = str(settings.OUTAGE_RETRY_AFTER_S)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django calls it while handling the exception, so sys.exc_info() names it."""
    return failure_response(request, sys.exc_info()[1])


def not_found(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    """handler404: a URL under /api/ that names no endpoint answers in the API's shape, not a page."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body(404, "not_found", "No such endpoint."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
