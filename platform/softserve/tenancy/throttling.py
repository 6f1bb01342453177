"""Requests per minute per tenant, from the tenant's quota; over it: 429 with Retry-After."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from softserve.tenancy.models import Quota

DEFAULT_REQUESTS_PER_MINUTE = 600


class TenantRateThrottle(SimpleRateThrottle):
    scope = "tenant"

    def get_rate(self) -> str:
        return f"{DEFAULT_REQUESTS_PER_MINUTE}/min"  # replaced per tenant in allow_request

    def allow_request(self, request, view) -> bool:
        actor = getattr(request, "actor", None)
        if actor is None:
            return True  # unauthenticated requests are refused before this matters
        try:
            limit = actor.tenant.quota.requests_per_minute  # loaded with an API key, else one query
        except Quota.DoesNotExist:
            limit = None
        self.num_requests, self.duration = limit or DEFAULT_REQUESTS_PER_MINUTE, 60
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.actor.tenant.pk}

    def throttle_failure(self) -> bool:
        return False
