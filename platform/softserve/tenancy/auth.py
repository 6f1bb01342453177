"""API keys in `Authorization: Bearer ss_<prefix>_<secret>`."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed

from softserve.tenancy.models import KEY_PREFIX, ApiKey

LAST_USED_RESOLUTION_S = 60


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2 or not header[1].startswith(f"{KEY_PREFIX}_"):
            raise AuthenticationFailed("Malformed API key; expected `Bearer ss_…`.")
        key = ApiKey.authenticate(header[1])
        if key is None:
            raise AuthenticationFailed("Invalid, revoked or expired API key.")
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_S:
            # One write a minute at most per key, not one per request.
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return (None, key)

    def authenticate_header(self, request) -> str:
        return self.keyword
