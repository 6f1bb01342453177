"""Object storage: S3 over HTTP when S3_ENDPOINT_URL (or S3_BUCKET on AWS) is set, else a local folder.

Both sit behind Django's storage API; keys follow the contract
`tenants/<tenant>/datasets/<dataset>/<version>/…` and `tenants/<tenant>/prompts/<prompt>/<version>/…`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def storages_setting(var_dir: Path) -> dict[str, Any]:
    endpoint = os.environ.get("S3_ENDPOINT_URL", "")
    if endpoint or os.environ.get("S3_USE_AWS", "") == "1":
        options = {
            "bucket_name": os.environ.get("S3_BUCKET", "softserve"),
            "endpoint_url": endpoint or None,
            "region_name": os.environ.get("S3_REGION", "us-east-1"),
            "file_overwrite": False,
            "default_acl": None,
        }
        default = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    else:
        location = os.environ.get("STORAGE_DIR", str(var_dir / "storage"))
        default = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        }
    return {
        "default": default,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def dataset_key(tenant_id, dataset_id, version: int, name: str = "data.jsonl") -> str:
    return f"tenants/{tenant_id}/datasets/{dataset_id}/{version}/{name}"
