"""GPU jobs. The row is the source of truth: workers claim it with a conditional UPDATE."""

from __future__ import annotations

from django.db import models

from common.contracts import JOB_ACTIVE, FailureReason, JobKind, JobStatus, choices
from softserve.tenancy.models import TenantOwned

# Queued or running: the job holds one of its tenant's concurrent-jobs slots.
ACTIVE = JOB_ACTIVE


class Job(TenantOwned):
    kind = models.CharField(max_length=12, choices=choices(JobKind))
    status = models.CharField(max_length=12, choices=choices(JobStatus), default=JobStatus.QUEUED)
    spec = models.JSONField(help_text="validated hyper-parameters and inputs")
    prompt_version = models.ForeignKey("prompts.PromptVersion", on_delete=models.CASCADE, related_name="jobs")
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    progress = models.JSONField(default=dict)
    metric_history = models.JSONField(default=list)
    result = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    # Attempts in a row that ended with the worker gone (killed, crashed) before the job reached a new
    # checkpoint; at JobPolicy.job_max_attempts the job fails instead of going to another worker.
    worker_losses = models.PositiveIntegerField(default=0)
    # Seconds of worker time across all attempts: the wall-clock budget (max_minutes) counts them all.
    gpu_seconds = models.FloatField(default=0.0)
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What the tenant reads: a sentence, never an exception's text.
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=20, choices=choices(FailureReason), blank=True)
    # Operators only (never in the API): the exception behind an internal failure.
    error_detail = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "queued_at"], name="job_status_queued"),
            # The fair-share claim: each tenant's running jobs, and when it last started one.
            models.Index(fields=["tenant", "status"], name="job_tenant_status"),
            models.Index(fields=["tenant", "started_at"], name="job_tenant_started"),
            # /ops/ (softserve/ops/summary.py): jobs started and finished in the last hours and days. The
            # finished_at index carries started_at and the tenant so that the week's GPU hours per team
            # are an index-only scan; (status, finished_at) finds a day's failures without reading all
            # failed jobs ever (benchmarks/ops.py measures both).
            models.Index(fields=["started_at"], name="job_started"),
            models.Index(fields=["finished_at", "started_at", "tenant"], name="job_finished_cover"),
            models.Index(fields=["status", "finished_at"], name="job_status_finished"),
            # A team's newest jobs first (its job list and home page), without sorting all its jobs.
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_recent"),
        ]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE
