from django.apps import AppConfig


class WebuiConfig(AppConfig):
    """Server-rendered pages for teams (/app/) and operators (/ops/), on the platform's actions."""

    name = "webui"
    label = "webui"
    default_auto_field = "django.db.models.BigAutoField"
