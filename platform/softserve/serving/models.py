"""Per-tenant prediction usage: one row per tenant, prompt and day, counted as requests are answered."""

from __future__ import annotations

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

from softserve.tenancy.models import Tenant, TenantOwned


class Usage(TenantOwned):
    prompt_name = models.CharField(max_length=100)
    day = models.DateField()
    requests = models.PositiveBigIntegerField(default=0)
    inputs = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "prompt_name", "day"], name="one_usage_row_per_day")
        ]
        ordering = ["-day", "prompt_name"]

    @classmethod
    def count(cls, tenant: Tenant, prompt_name: str, inputs: int) -> None:
        """Add one request of `inputs` rows; an UPDATE with F() so concurrent web processes never lose one."""
        day = timezone.now().date()
        scoped = cls.objects.for_tenant(tenant).filter(prompt_name=prompt_name, day=day)
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            if scoped.update(requests=F("requests") + 1, inputs=F("inputs") + inputs):
                return
            try:
                with transaction.atomic():
                    cls.objects.create(
                        tenant=tenant, prompt_name=prompt_name, day=day, requests=1, inputs=inputs
                    )
            except IntegrityError:  # another process created today's row first
                scoped.update(requests=F("requests") + 1, inputs=F("inputs") + inputs)


def _commit_without_waiting_for_disk() -> None:
    """PostgreSQL's asynchronous commit for this transaction only: a database crash may lose the last
    instant of usage counts (never corrupt them), and a prediction does not wait ~3 ms for an fsync."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
