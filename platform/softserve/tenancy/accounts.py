"""Sign-in pages: Django's login and logout only (no password reset: there is no mail backend to send
its links), with failed attempts throttled per (username, client address)."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


def _failures_key(request: HttpRequest) -> str:
    # REMOTE_ADDR, never X-Forwarded-For: a client chooses that header, so it could pick a fresh
    # address for every guess. The username is hashed: the cache never holds what a stranger typed.
    username = str(request.POST.get("username", ""))[:254].strip().lower()
    who = hashlib.sha256(f"{username}\0{request.META.get('REMOTE_ADDR', '')}".encode()).hexdigest()
    return f"softserve:login-failures:{who}"


class ThrottledLoginView(auth_views.LoginView):
    """After LOGIN_MAX_FAILURES failed sign-ins for one username from one address within
    LOGIN_LOCKOUT_S seconds, that pair is refused (429 with Retry-After) until the window ends, even
    with the right password."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if cache.get(_failures_key(request), 0) >= settings.LOGIN_MAX_FAILURES:
            logger.warning("sign-in refused: too many failures from %s", request.META.get("REMOTE_ADDR"))
            response = self.render_to_response(self.get_context_data(locked=True), status=429)
            response["Retry-After"] = str(settings.LOGIN_LOCKOUT_S)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:
        key = _failures_key(self.request)
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_S)  # the window starts at the first failure
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr: this failure opens a new window
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_S)
        return super().form_invalid(form)

    def form_valid(self, form) -> HttpResponse:
        cache.delete(_failures_key(self.request))
        return super().form_valid(form)
