from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "softserve.serving"
    label = "serving"
    default_auto_field = "django.db.models.BigAutoField"
