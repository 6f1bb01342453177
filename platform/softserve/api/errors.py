"""One error shape for every API failure: {"error": {"status", "code", "message", "fields"}}."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {}


def exception_handler(exc, context):
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
    response.data = {
        "error": {"status": response.status_code, "code": code, "message": message, "fields": fields}
    }
    return response


class PayloadTooLarge(exceptions.APIException):
    """A size limit of softserve.limits: bytes, rows or line length."""

    status_code = 413
    default_code = "too_large"
    default_detail = "The request is over a size limit."

    def __init__(self, detail: str | None = None, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.fields = fields or {}
