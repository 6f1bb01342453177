from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "softserve.tenancy"
    label = "tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import softserve.api.schema  # noqa: F401 - registers the API-key scheme with drf-spectacular
