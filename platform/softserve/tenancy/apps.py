from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "softserve.tenancy"
    label = "tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import softserve.api.schema
        import softserve.tenancy.checks  # noqa: F401 - registers the production secret-key check
