"""Lists page with `?limit=&offset=`; `limit` is capped (LIMITS.page_max), never unbounded."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # read per request, so a changed setting applies (and tests can set it)
        return settings.LIMITS.page_max

    @property
    def default_limit(self) -> int:
        return settings.LIMITS.page_default
