"""Object storage: S3 over HTTP when S3_ENDPOINT_URL (or S3_BUCKET on AWS) is set, else a local folder.

Both sit behind Django's storage API; keys follow the contract
`tenants/<tenant>/datasets/<dataset>/<version>/…` and `tenants/<tenant>/prompts/<prompt>/<version>/…`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workers.contracts import StorageLocation


def storages_setting(var_dir: Path) -> dict[str, Any]:
    where = StorageLocation.from_env(os.environ, str(var_dir / "storage"))
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
