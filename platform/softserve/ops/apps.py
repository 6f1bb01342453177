from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: health probes, Prometheus metrics, worker heartbeats and the operators' summary."""

    name = "softserve.ops"
    label = "ops"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from softserve.ops import checks  # noqa: F401  (registers the system checks)
