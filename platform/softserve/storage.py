"""Object storage: S3 over HTTP when S3_ENDPOINT_URL (or S3_BUCKET on AWS) is set, else a local folder.

Both sit behind Django's storage API; keys follow the contract
`tenants/<tenant>/datasets/<dataset>/<version>/…` and `tenants/<tenant>/prompts/<prompt>/<version>/…`.
"""

from __future__ import annotations

from typing import Any

from common.contracts import StorageLocation


def storages_setting(where: StorageLocation) -> dict[str, Any]:
    if where.folder is None:
        options = {
            "bucket_name": where.bucket,
            "endpoint_url": where.endpoint_url,
            "region_name": where.region,
            "file_overwrite": False,
            "default_acl": None,
        }
        default = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    else:
        default = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": where.folder},
        }
    return {
        "default": default,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def dataset_key(tenant_id, dataset_id, version: int, name: str = "data.jsonl") -> str:
    return f"tenants/{tenant_id}/datasets/{dataset_id}/{version}/{name}"


def prompt_prefix(tenant_id, prompt_id) -> str:
    """Every object of one prompt: each version's artifact and training checkpoint lie under it."""
    return f"tenants/{tenant_id}/prompts/{prompt_id}/"


def delete_tree(prefix: str) -> int:
    """Delete every stored object under `prefix` (S3 or the local folder); returns how many."""
    from django.core.files.storage import default_storage

    deleted = 0
    folders = [prefix.rstrip("/")]
    while folders:
        folder = folders.pop()
        try:
            subfolders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue  # nothing was ever stored there (a local folder that does not exist)
        folders.extend(f"{folder}/{sub}" for sub in subfolders)
        for name in files:
            default_storage.delete(f"{folder}/{name}")
            deleted += 1
    return deleted
