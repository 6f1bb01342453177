"""Per-tenant prediction usage: one row per tenant, prompt and day, counted as requests are answered."""

from __future__ import annotations

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

from common.contracts import PredictionOutcome, choices
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


class Prediction(TenantOwned):
    """One answered (or failed) prediction request: the prediction log behind `prediction_id`, the live
    per-version figures (requests, errors, latency, labels, shadow agreement) and feedback. Inputs are kept
    only where the prompt opts in, and forgotten after its retention period."""

    prompt = models.ForeignKey("prompts.TaskPrompt", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("prompts.PromptVersion", on_delete=models.CASCADE, related_name="+")
    alias = models.CharField(max_length=50, blank=True)
    outcome = models.CharField(max_length=8, choices=choices(PredictionOutcome), default=PredictionOutcome.OK)
    error_code = models.CharField(max_length=32, blank=True)
    latency_ms = models.FloatField(default=0.0)
    rows = models.PositiveIntegerField(default=0)
    # One entry per input: the label (classification) or the text (generation), as the caller got it.
    outputs = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(null=True, blank=True)
    shadow_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    shadow_outputs = models.JSONField(null=True, blank=True)
    shadow_agreement = models.FloatField(null=True, blank=True)  # share of rows where both agree

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["version", "created_at"], name="prediction_version_time"),
            models.Index(fields=["tenant", "prompt", "created_at"], name="prediction_prompt_time"),
        ]


class Feedback(TenantOwned):
    """What the right answer was for one output of a prediction (the newest word on it counts)."""

    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="feedback")
    index = models.PositiveIntegerField(default=0)  # which input of the request
    label = models.CharField(max_length=200, blank=True)  # classification
    target = models.TextField(blank=True)  # generation
    correct = models.BooleanField()  # does the prediction's output equal it

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["prediction", "index"], name="one_feedback_per_output")
        ]
