"""Lists page with `?limit=&offset=`: `limit` is capped (LIMITS.page_max), never unbounded, and a value
that is not a whole number is a 400 naming the parameter (not silently the default)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

from softserve.numbers import whole_number


def _whole(request, name: str, default: int, least: int) -> int:
    values = request.query_params.getlist(name)
    if not values:
        return default
    number = whole_number(values[0]) if len(values) == 1 else None
    if number is None or number < least:
        raise ValidationError({name: [f"One whole number, at least {least}."]})
    return number


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # read per request, so a changed setting applies (and tests can set it)
        return settings.LIMITS.page_max

    @property
    def default_limit(self) -> int:
        return settings.LIMITS.page_default

    def get_limit(self, request) -> int:
        return min(_whole(request, self.limit_query_param, self.default_limit, 1), self.max_limit)

    def get_offset(self, request) -> int:
        return _whole(request, self.offset_query_param, 0, 0)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                # No schema maximum: a larger limit is not an error, it is capped at PAGE_MAX.
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Results per page, at most {self.max_limit} (more is capped)."
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"]["minimum"] = 0
        return parameters
