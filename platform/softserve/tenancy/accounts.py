"""Sign-in pages: Django's login and logout only (no password reset: there is no mail backend to send
its links), with failed attempts throttled so that guessing is slow and nobody can lock anyone else out.

Three counters, all in the cache (Redis when REDIS_URL is set, so every web process shares them):

- per account (the e-mail as authentication reads it: NFKC-normalised, then case-folded, so look-alike
  spellings share one count): LOGIN_ACCOUNT_FREE_FAILURES failures are free, then each further attempt
  must wait a delay that doubles per failure from LOGIN_ACCOUNT_DELAY_S up to LOGIN_ACCOUNT_MAX_DELAY_S.
  An attempt inside the delay is answered 429 with Retry-After and its password is not even checked. The
  delay never grows past its ceiling, so an owner is at most that long from signing in;
- per client address (TRUSTED_PROXIES decides what the address is behind a proxy): after
  LOGIN_ADDRESS_MAX_FAILURES failures in LOGIN_WINDOW_S, that address is refused for the window, whatever
  account it tries. One stranger cannot keep re-arming an account's delay for long;
- per browser that has signed in to the account before (a signed cookie with a random id, set at each
  successful sign-in): such a browser skips the account's delay and the address limit, and has a delay of
  its own instead. So a stranger who spreads guesses over many addresses slows down only browsers that
  never signed in to that account, never its owner's own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UsernameField
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from softserve.clientaddr import client_address

logger = logging.getLogger(__name__)

DEVICE_COOKIE = "softserve_signin_device"
_DEVICE_SALT = "softserve.tenancy.accounts.device"
# Characters of the typed e-mail that are read: a longer one is no account (User.username holds 150).
_MAX_USERNAME_CHARS = 1000


def account_of(typed: object) -> str:
    """The account a sign-in names, as the counter keys it: what Django's login form passes to
    authentication (stripped, NFKC-normalised), then case-folded (and normalised again, as case folding can
    undo NFKC), so `ｖictim@…`, `Victim@…` and `victim@…` are one account to the throttle."""
    value = UsernameField().to_python(str(typed or "")[:_MAX_USERNAME_CHARS]) or ""
    return unicodedata.normalize("NFKC", value.casefold())


def _digest(*parts: str) -> str:
    # The cache never holds what a stranger typed, only its hash.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ProgressiveDelay:
    """Failures of one account (or one remembered browser) within LOGIN_WINDOW_S of the first: past the
    free ones, each attempt waits for a delay that doubles per failure, up to a ceiling."""

    key: str

    def _delay(self, failures: int) -> float:
        over = failures - settings.LOGIN_ACCOUNT_FREE_FAILURES
        if over < 0:
            return 0.0
        return min(settings.LOGIN_ACCOUNT_DELAY_S * 2 ** min(over, 32), settings.LOGIN_ACCOUNT_MAX_DELAY_S)

    def wait_s(self) -> float:
        """Seconds until an attempt may be checked; 0 means now: this caller holds that attempt, and it is
        already counted (as a failure until `passed` refunds it), so attempts sent side by side cannot all
        read the same count and each get a free guess."""
        failures = cache.get(f"{self.key}:n", 0)
        delay = self._delay(failures)
        if delay <= 0:
            taken = _count(f"{self.key}:n")
            if self._delay(taken - 1) > 0:  # attempts beside this one took the free ones first
                _uncount(f"{self.key}:n")
                return self._delay(taken - 1)
            # A delayed attempt waits from the latest one let through, not from the last that reported back.
            cache.set(f"{self.key}:last", time.time(), timeout=settings.LOGIN_WINDOW_S)
            return 0.0
        remaining = cache.get(f"{self.key}:last", 0.0) + delay - time.time()
        if remaining > 0:
            return remaining
        # One checked attempt per failure: of simultaneous attempts after a delay, only the first is
        # checked. The claim lapses after one delay, so one that never reports back blocks nothing for good.
        if not cache.add(f"{self.key}:slot:{failures}", 1, timeout=math.ceil(delay)):
            return delay
        _count(f"{self.key}:n")
        # The next attempt waits from now (not from the last failure) until this one reports back.
        cache.set(f"{self.key}:last", time.time(), timeout=settings.LOGIN_WINDOW_S)
        return 0.0

    def fail(self) -> None:
        """The checked attempt failed: it was counted when it was let through; its delay runs from now."""
        cache.set(f"{self.key}:last", time.time(), timeout=settings.LOGIN_WINDOW_S)

    def passed(self) -> None:
        """The checked attempt signed in: its count is refunded, and the next one need not wait for its
        claim to lapse."""
        _uncount(f"{self.key}:n")
        cache.delete(f"{self.key}:slot:{cache.get(f'{self.key}:n', 0)}")

    def clear(self) -> None:
        cache.delete_many([f"{self.key}:n", f"{self.key}:last"])


def _count(key: str) -> int:
    """One more in the window's count (the window starts at the first); the count now."""
    cache.add(key, 0, timeout=settings.LOGIN_WINDOW_S)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr: this one opens a new window
        cache.set(key, 1, timeout=settings.LOGIN_WINDOW_S)
        return 1


def _uncount(key: str) -> None:
    """Take back one `_count` (an attempt refused before its check, or one that signed in)."""
    try:
        if cache.decr(key) < 0:
            cache.set(key, 0, timeout=settings.LOGIN_WINDOW_S)
    except ValueError:  # the window ended meanwhile: nothing left to take back
        pass


def _address_key(address: str) -> str:
    return f"softserve:login:address:{_digest(address)}"


def _device_of(request: HttpRequest, account: str) -> str | None:
    """The id of this browser when it signed in to `account` before (its signed cookie), else None."""
    try:
        value = request.get_signed_cookie(
            DEVICE_COOKIE, salt=_DEVICE_SALT, max_age=settings.LOGIN_DEVICE_DAYS * 86400
        )
    except (KeyError, signing.BadSignature):
        return None
    who, _, device = value.partition(":")
    return device if device and who == _digest(account) else None


class ThrottledLoginView(auth_views.LoginView):
    """Django's sign-in page behind the three counters above (429 with Retry-After when one refuses)."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        account = account_of(request.POST.get("username", ""))
        address = client_address(request)
        device = _device_of(request, account)
        if device is not None:
            self.gate = ProgressiveDelay(f"softserve:login:device:{_digest(device)}")
        else:
            self.gate = ProgressiveDelay(f"softserve:login:account:{_digest(account)}")
            # Counted before the password is checked (and refunded if it signs in or is refused here), so
            # attempts sent side by side cannot all pass under the limit.
            failures = _count(_address_key(address))
            if failures > settings.LOGIN_ADDRESS_MAX_FAILURES:
                _uncount(_address_key(address))
                logger.warning("sign-in refused: %d failures from %s", failures - 1, address)
                return self._refused("address", settings.LOGIN_WINDOW_S)
        wait = self.gate.wait_s()
        if wait > 0:
            if device is None:
                _uncount(_address_key(address))
            logger.warning("sign-in refused: account delayed %.1f s more (from %s)", wait, address)
            return self._refused("account", wait)
        self.device, self.address = device, address
        return super().post(request, *args, **kwargs)

    def _refused(self, why: str, wait_s: float) -> HttpResponse:
        retry = max(1, math.ceil(wait_s))
        context = self.get_context_data(locked=why, retry_after=retry)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(retry)
        return response

    def form_invalid(self, form) -> HttpResponse:
        self.gate.fail()  # counted (account and address) when it was let through
        return super().form_invalid(form)

    def form_valid(self, form) -> HttpResponse:
        if self.device is not None:
            self.gate.clear()  # a remembered browser's own mistakes; the account's count stays
        else:
            self.gate.passed()
            _uncount(_address_key(self.address))
        response = super().form_valid(form)
        # Remember this browser for this account (a fresh id each time; the old one is simply replaced).
        who = _digest(account_of(form.cleaned_data.get("username", "")))
        response.set_signed_cookie(
            DEVICE_COOKIE,
            f"{who}:{secrets.token_urlsafe(16)}",
            salt=_DEVICE_SALT,
            max_age=settings.LOGIN_DEVICE_DAYS * 86400,
            httponly=True,
            secure=settings.SESSION_COOKIE_SECURE,
            samesite="Lax",
        )
        return response
