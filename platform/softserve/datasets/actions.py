"""Dataset writes: an upload becomes a version only when every row is valid; nothing half-written."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from rest_framework.exceptions import PermissionDenied, ValidationError

from softserve.datasets.models import Dataset, DatasetVersion
from softserve.datasets.validation import Limits, UploadSpec, normalise
from softserve.storage import dataset_key
from softserve.tenancy.actions import record
from softserve.tenancy.models import Quota
from softserve.tenancy.permissions import Actor


def limits() -> Limits:
    return Limits(
        max_bytes=settings.DATASET_MAX_BYTES,
        max_rows=settings.DATASET_MAX_ROWS,
        max_text_chars=settings.DATASET_MAX_TEXT_CHARS,
        min_rows_per_label=settings.DATASET_MIN_ROWS_PER_LABEL,
    )


def upload(actor: Actor, name: str, upload_file, filename: str, spec: UploadSpec) -> DatasetVersion:
    """Validate the whole file, then write the version row and its storage object together."""
    normalised = normalise(upload_file, spec, limits())
    with normalised.file:
        return _store(actor, name, filename, spec, normalised)


def _store(actor: Actor, name: str, filename: str, spec: UploadSpec, normalised) -> DatasetVersion:
    if normalised.problems:
        messages = [str(p) for p in normalised.problems]
        shown = messages[:100] + ([f"… and {len(messages) - 100} more"] if len(messages) > 100 else [])
        raise ValidationError({"file": shown})
    quota = Quota.objects.filter(tenant=actor.tenant).first()
    if quota and DatasetVersion.stored_bytes(actor.tenant) + normalised.size_bytes > quota.storage_bytes:
        raise PermissionDenied(
            f"Storage quota exceeded: {quota.storage_bytes} bytes allowed for this tenant."
        )
    key = None
    try:
        with transaction.atomic():
            dataset, _ = (
                Dataset.objects.for_tenant(actor.tenant)
                .select_for_update()
                .get_or_create(tenant=actor.tenant, name=name)
            )
            number = dataset.next_version_number()
            key = default_storage.save(
                dataset_key(actor.tenant.id, dataset.id, number), File(normalised.file)
            )
            version = DatasetVersion.objects.create(
                tenant=actor.tenant,
                dataset=dataset,
                number=number,
                storage_key=key,
                source_format=spec.format,
                source_filename=filename[:255],
                task_type=normalised.task_type,
                columns=normalised.columns,
                labels=normalised.labels,
                label_counts=normalised.label_counts,
                split_counts=normalised.split_counts,
                row_count=sum(normalised.split_counts.values()),
                size_bytes=normalised.size_bytes,
                checksum=normalised.checksum,
            )
            record(
                actor,
                actor.tenant,
                "dataset.version.create",
                version,
                after={"dataset": name, "number": number, "checksum": normalised.checksum},
            )
    except BaseException:
        if key:  # the rows rolled back; the object must go too
            default_storage.delete(key)
        raise
    return version


@transaction.atomic
def delete_dataset(actor: Actor, dataset: Dataset) -> None:
    keys = list(dataset.versions.values_list("storage_key", flat=True))
    record(
        actor, actor.tenant, "dataset.delete", dataset, before={"name": dataset.name, "versions": len(keys)}
    )
    dataset.delete()
    transaction.on_commit(lambda: [default_storage.delete(key) for key in keys])


def preview(version: DatasetVersion, limit: int) -> list[dict]:
    rows = []
    with default_storage.open(version.storage_key, "rb") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows
