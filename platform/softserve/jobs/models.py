"""GPU jobs. The row is the source of truth: workers claim it with a conditional UPDATE."""

from __future__ import annotations

from django.db import models

from softserve.tenancy.models import TenantOwned
from workers.contracts import JOB_KINDS, JOB_STATUSES

ACTIVE = ("queued", "running")


class Job(TenantOwned):
    kind = models.CharField(max_length=12, choices=[(k, k) for k in JOB_KINDS])
    status = models.CharField(max_length=12, choices=[(s, s) for s in JOB_STATUSES], default="queued")
    spec = models.JSONField(help_text="validated hyper-parameters and inputs")
    prompt_version = models.ForeignKey("prompts.PromptVersion", on_delete=models.CASCADE, related_name="jobs")
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    progress = models.JSONField(default=dict)
    metric_history = models.JSONField(default=list)
    result = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "queued_at"], name="job_status_queued")]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE
