"""System checks: production mode (DJANGO_SECURE=1) refuses the embedded default secret key."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def embedded_secret_key_in_production(app_configs, **kwargs) -> list[Error]:
    """Sessions, CSRF tokens and password-reset-style signatures all derive from SECRET_KEY; the
    embedded one is in the source, so anyone could forge them. Every management command (and so every
    server start) runs this check. It refuses the embedded key whenever DEBUG is off, whatever
    DJANGO_SECURE says: a server over plain HTTP behind a proxy is no less reachable than one over HTTPS."""
    if not settings.DEBUG and settings.SECRET_KEY == settings.EMBEDDED_SECRET_KEY:
        return [
            Error(
                "The embedded default DJANGO_SECRET_KEY, with DEBUG off: anyone could forge sessions.",
                hint="`make secrets` writes a random one into .env (`make run` reads it); or set "
                "DJANGO_SECRET_KEY yourself, e.g. to the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`.",
                id="softserve.E001",
            )
        ]
    return []
