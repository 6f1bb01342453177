from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from common.contracts import ServingMode


def check_serving_mode(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """SERVING_MODE must name a mode the platform can run; embedded serving under several gunicorn
    processes loads one copy of the model per process (and batches only within each)."""
    from softserve.serving.client import serving_mode

    try:
        mode = serving_mode()
    except ValueError:
        modes = ", ".join(ServingMode)
        return [
            checks.Error(f"SERVING_MODE={settings.SERVING_MODE!r} is not one of {modes}.", id="serving.E001")
        ]
    if mode == ServingMode.REDIS and not settings.SERVING_REDIS_URL:
        return [checks.Error("SERVING_MODE=redis needs SERVING_REDIS_URL (or REDIS_URL).", id="serving.E002")]
    processes = settings.WEB_CONCURRENCY or 1
    if mode == ServingMode.EMBEDDED and processes > 1:
        return [
            checks.Warning(
                f"Embedded serving with WEB_CONCURRENCY={processes}: each of the {processes} gunicorn "
                "processes would load its own copy of the base model and batch only its own requests.",
                hint="Set SERVING_MODE=redis with SERVING_REDIS_URL and run `python -m workers.serving`, "
                "or WEB_CONCURRENCY=1.",
                id="serving.W001",
            )
        ]
    return []


class ServingConfig(AppConfig):
    name = "softserve.serving"
    label = "serving"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_serving_mode)
