"""Dataset writes: an upload becomes a version only when every row is valid; nothing half-written."""

from __future__ import annotations

import json
import unicodedata

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction

from common.contracts import AuditAction
from softserve.datasets.models import Dataset, DatasetVersion
from softserve.datasets.validation import UploadSpec, normalise
from softserve.errors import Forbidden, Invalid, TooLarge
from softserve.storage import dataset_key
from softserve.tenancy.actions import record
from softserve.tenancy.models import Quota
from softserve.tenancy.permissions import Actor


def safe_filename(filename: str) -> str:
    """The upload's own name as shown back (never a storage path): its last path part, without control
    characters (PostgreSQL refuses NUL), at most 255 characters."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    shown = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return shown[:255] or "upload"


def upload(actor: Actor, name: str, upload_file, filename: str, spec: UploadSpec) -> DatasetVersion:
    """Validate the whole file, then write the version row and its storage object together."""
    normalised = normalise(upload_file, spec, settings.LIMITS)
    with normalised.file:
        return _store(actor, name, safe_filename(filename), spec, normalised)


def _check_storage_quota(actor: Actor, size_bytes: int) -> None:
    """Inside the writing transaction: the quota row stays locked until commit, so two uploads at once
    cannot both fit under the quota that only one of them fits."""
    quota = Quota.objects.select_for_update().filter(tenant=actor.tenant).first()
    if quota and DatasetVersion.stored_bytes(actor.tenant) + size_bytes > quota.storage_bytes:
        raise Forbidden(f"Storage quota exceeded: {quota.storage_bytes} bytes allowed for this tenant.")


def _store(actor: Actor, name: str, filename: str, spec: UploadSpec, normalised) -> DatasetVersion:
    if normalised.problems:
        if normalised.too_large:
            too_large = [str(p) for p in normalised.problems if p.too_large]
            raise TooLarge(too_large[0], fields={"file": normalised.messages()})
        raise Invalid({"file": normalised.messages()})
    key = None
    try:
        with transaction.atomic():
            _check_storage_quota(actor, normalised.size_bytes)
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
                source_filename=filename,
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
                AuditAction.DATASET_VERSION_CREATE,
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
        actor,
        actor.tenant,
        AuditAction.DATASET_DELETE,
        dataset,
        before={"name": dataset.name, "versions": len(keys)},
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
