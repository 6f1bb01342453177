"""System checks: production mode (DJANGO_SECURE=1) refuses the embedded default secret key."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def embedded_secret_key_in_production(app_configs, **kwargs) -> list[Error]:
    """Sessions, CSRF tokens and password-reset-style signatures all derive from SECRET_KEY; the
    embedded one is in the source, so anyone could forge them. Every management command (and so every
    server start) runs this check."""
    if settings.SECURE and not settings.DEBUG and settings.SECRET_KEY == settings.EMBEDDED_SECRET_KEY:
        return [
            Error(
                "DJANGO_SECURE=1 (production) with the embedded default DJANGO_SECRET_KEY.",
                hint="Set DJANGO_SECRET_KEY to a long random value (e.g. `python -c "
                "'import secrets; print(secrets.token_urlsafe(50))'`).",
                id="softserve.E001",
            )
        ]
    return []
