"""Requests per minute per tenant, from the tenant's quota; over it: 429 with Retry-After.

One counter per team for every way in: DRF runs the throttle on each API request (predictions, the
OpenAI-style completions included), and the web UI's playground charges each prediction it runs to the
same counter (`charge`), so a team cannot predict past its quota by going through the pages.

The counters live in the cache (Redis in production). When that cache is down or does not answer,
RATE_LIMIT_FAIL_OPEN decides: let the request through unthrottled (the default; a warning at most every
LOG_EVERY_S per process, and softserve_rate_limit_unavailable_total counts every such request) or answer
503 with Retry-After (the outage exception goes on to the API's error handler).
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from prometheus_client import Counter
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from softserve.tenancy.models import Quota

logger = logging.getLogger(__name__)

DEFAULT_REQUESTS_PER_MINUTE = 600
LOG_EVERY_S = 30.0

UNTHROTTLED = Counter(
    "softserve_rate_limit_unavailable",
    "Requests let through without a rate-limit check because the rate-limit cache was unavailable.",
)
_last_log = {"at": 0.0}
_log_lock = threading.Lock()


def _warn(exc: Exception) -> None:
    """One warning per LOG_EVERY_S: an outage would otherwise log once per request."""
    now = time.monotonic()
    with _log_lock:
        if now - _last_log["at"] < LOG_EVERY_S:
            return
        _last_log["at"] = now
    logger.warning(
        "rate-limit cache unavailable (%s: %s); requests pass unthrottled (RATE_LIMIT_FAIL_OPEN=1)",
        type(exc).__name__,
        exc,
    )


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
        try:
            return super().allow_request(request, view)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if not settings.RATE_LIMIT_FAIL_OPEN:
                raise  # the API's error handler answers 503 with Retry-After
            UNTHROTTLED.inc()
            _warn(exc)
            return True

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.actor.tenant.pk}

    def throttle_failure(self) -> bool:
        return False


def charge(request) -> None:
    """Count one request of `request.actor`'s team outside the API (the playground's predictions) on the
    API's counter; over the team's quota, raises Throttled (429 with the seconds to wait)."""
    throttle = TenantRateThrottle()
    if not throttle.allow_request(request, None):
        raise Throttled(wait=throttle.wait())
