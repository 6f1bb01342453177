"""The prompt registry: task prompts, their immutable versions, and aliases that point at versions."""

from __future__ import annotations

from django.db import models

from common.contracts import ParityStatus, TaskType, VersionStatus, choices
from softserve.tenancy.models import TenantOwned

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class TaskPrompt(TenantOwned):
    """A task: its input template, labels and verbalizer, and the frozen base model it runs on."""

    name = models.CharField(max_length=100)
    task_type = models.CharField(max_length=20, choices=choices(TaskType))
    template = models.TextField()
    labels = models.JSONField(default=list)
    verbalizer = models.JSONField(default=dict)
    base_model = models.CharField(max_length=200)
    # The held-out rows every new version is scored on through the serving pool (parity) and that alias
    # gates compare versions on; a training job whose rows overlap it is refused unless told.
    eval_dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Prediction inputs are kept (for feedback datasets) only when the team opts in, and only this long.
    keep_inputs = models.BooleanField(default=False)
    input_retention_days = models.PositiveIntegerField(default=30)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="prompt_name_per_tenant")]
        ordering = ["name"]

    def next_version_number(self) -> int:
        latest = self.versions.order_by("-number").values_list("number", flat=True).first()
        return (latest or 0) + 1


class PromptVersion(TenantOwned):
    """One trained prompt (or ensemble); its hyper-parameters and data never change once created."""

    prompt = models.ForeignKey(TaskPrompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    method = models.CharField(max_length=20)
    hyperparameters = models.JSONField(default=dict)
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ensemble_size = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=12, choices=choices(VersionStatus, titled=True), default=VersionStatus.PENDING
    )
    metrics = models.JSONField(default=dict)
    artifact_key = models.CharField(max_length=300, blank=True)
    artifact_sha256 = models.CharField(
        max_length=64, blank=True, help_text="hash of the artifact's bytes: the serving cache's key"
    )
    # Written by the tuning worker with the artifact (Django never loads torch to compute them):
    # the PEFT adapter zip next to the artifact (blank where PEFT cannot hold the version), and the
    # nearest-vocabulary-token view, a bounded JSON (prompt_length rows of 5 tokens) kept in the row so
    # the page and the API read it under the tenant's own query, with no storage round trip; list
    # queries defer it.
    peft_key = models.CharField(max_length=300, blank=True)
    inspection = models.JSONField(default=dict, blank=True)
    # The evaluation-set score through the serving pool: {"dataset_version", "metrics" (accuracy,
    # macro_f1, per_label), "dev_metrics" (training time), "gap", "predictions" (one output per row, in
    # the set's order: what gates pair two versions on), "error"}; `parity` says how it compared.
    evaluation = models.JSONField(default=dict, blank=True)
    parity = models.CharField(max_length=16, choices=choices(ParityStatus), default=ParityStatus.NONE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="one_number_per_prompt_version")
        ]
        ordering = ["number"]


class Alias(TenantOwned):
    """A movable name (`production`, `staging`, …) for one version; every move is audited."""

    prompt = models.ForeignKey(TaskPrompt, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=50)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)
    # Only owners and admins move a protected alias (`production` is protected when created).
    protected = models.BooleanField(default=False)
    # The gate and the canary's limits: {"metric", "min", "max_regression", "alpha"} checked on the
    # evaluation set before a move; {"max_error_rate", "max_p95_ms", "window_s", "min_requests"} watched
    # on live traffic of a canary. Empty: no gate, no automatic rollback.
    policy = models.JSONField(default=dict, blank=True)
    # A traffic split: [{"version": 3, "weight": 90}, {"version": 4, "weight": 10}] (weights sum to 100;
    # `version` above is the primary, always in it). Empty: every request reaches `version`.
    split = models.JSONField(default=list, blank=True)
    # Scores the same inputs in the same batch as the primary; callers never see its answer.
    shadow = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="shadowing"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="alias_name_per_prompt")]
        ordering = ["name"]
