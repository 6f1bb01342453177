"""System checks of the serving mode (every management command runs them, `migrate` and `check --deploy`
included): an unknown SERVING_MODE or redis mode without a Redis URL is an error; embedded serving under
several gunicorn processes loads the model once per process, which is a warning."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register

MODES = ("embedded", "redis")


@register()
def serving_mode(app_configs, **kwargs) -> list:
    from softserve.serving.client import serving_mode

    if settings.SERVING_MODE and settings.SERVING_MODE not in MODES:
        return [
            Error(
                f"SERVING_MODE={settings.SERVING_MODE!r} is not one of {', '.join(MODES)}.",
                hint="Leave it empty to choose by SERVING_REDIS_URL, or set embedded or redis.",
                id="softserve.E101",
            )
        ]
    if serving_mode() == "redis" and not settings.SERVING_REDIS_URL:
        return [
            Error(
                "SERVING_MODE=redis but neither SERVING_REDIS_URL nor REDIS_URL is set.",
                hint="Point SERVING_REDIS_URL at the Redis the serving workers read.",
                id="softserve.E102",
            )
        ]
    processes = int(os.environ.get("WEB_CONCURRENCY", "1") or 1)
    if serving_mode() == "embedded" and processes > 1:
        return [
            Warning(
                f"Embedded serving with WEB_CONCURRENCY={processes}: each of the {processes} web processes "
                "would load its own copy of the base model and batch only its own requests.",
                hint="Run serving workers (python -m workers.serving) and set SERVING_MODE=redis with "
                "SERVING_REDIS_URL, or run one web process (WEB_CONCURRENCY=1).",
                id="softserve.W101",
            )
        ]
    return []
