"""Datasets and their immutable versions (normalised JSONL in storage, with statistics)."""

from __future__ import annotations

from django.db import models
from django.db.models import Sum

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
