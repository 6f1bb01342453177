"""Datasets and their immutable versions (normalised JSONL in storage, with statistics)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import models
from django.db.models import Sum

from common.contracts import template_fields
from softserve.tenancy.models import TenantOwned


class Dataset(TenantOwned):
    name = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="dataset_name_per_tenant")]
        ordering = ["name"]

    def next_version_number(self) -> int:
        latest = self.versions.order_by("-number").values_list("number", flat=True).first()
        return (latest or 0) + 1


class DatasetVersion(TenantOwned):
    """Never changes once written; a new upload under the same name is a new version."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    storage_key = models.CharField(max_length=300)
    source_format = models.CharField(max_length=10)
    source_filename = models.CharField(max_length=255)
    task_type = models.CharField(max_length=20)
    columns = models.JSONField(help_text="canonical field -> uploaded column")
    labels = models.JSONField(default=list)
    label_counts = models.JSONField(default=dict)
    split_counts = models.JSONField(default=dict)
    row_count = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    checksum = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="one_number_per_version")]
        ordering = ["number"]
        # A team's newest versions first (the menus of the job, prompt and playground forms).
        indexes = [models.Index(fields=["tenant", "-created_at"], name="dataset_version_recent")]

    @classmethod
    def stored_bytes(cls, tenant) -> int:
        return cls.objects.for_tenant(tenant).aggregate(total=Sum("size_bytes"))["total"] or 0

    @property
    def fields(self) -> list[str]:
        return list(self.columns)

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    def misfits(self, task_type: str, labels: Sequence[str], template: str) -> dict[str, str]:
        """Why a prompt of this task type, label set and template cannot train on this version, keyed by
        the prompt's field (empty: it fits). A job is refused with these; the prompt form shows each
        beside its field. A template that does not parse is the template field's own error."""
        problems: dict[str, str] = {}
        if self.task_type != task_type:
            problems["task_type"] = f"The dataset {self} is {self.task_type}; the prompt is {task_type}."
        unknown = sorted(set(self.labels) - set(labels))
        if unknown:
            problems["labels"] = (
                f"The dataset {self} has labels {unknown} that the label set {list(labels)} lacks."
            )
        problem = self.template_problem(template)
        if problem:
            problems["template"] = problem
        return problems

    def template_problem(self, template: str) -> str | None:
        """The template's fields that are not columns of this version, said in one sentence (None: all
        are; a template that does not parse is the template's own error, not this one)."""
        try:
            missing = [f for f in template_fields(template) if f not in self.columns]
        except ValueError:
            return None
        if not missing:
            return None
        names = ", ".join(f"{{{f}}}" for f in missing)
        verb = "is not a column" if len(missing) == 1 else "are not columns"
        return (
            f"The template needs fields {missing}: {names} {verb} of {self}, "
            f"whose columns are {', '.join(self.fields)}."
        )
