"""Object storage for workers: boto3 against S3 over HTTP, or a local folder on the embedded defaults.

The same environment as the platform's storage (`platform/softserve/storage.py`): S3 when
`S3_ENDPOINT_URL` (or `S3_USE_AWS=1`) is set, else the folder `STORAGE_DIR` (default
`$SOFTSERVE_VAR_DIR/storage`). Keys follow the contract `tenants/<tenant>/…`. No Django here.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Protocol

from common.contracts import StorageLocation

ROOT = Path(__file__).resolve().parents[1]


class ObjectMissing(FileNotFoundError):
    """The key names no object."""


class ObjectStore(Protocol):
    def get_bytes(self, key: str) -> bytes: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


def _safe_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"The storage key {key!r} is not a relative object key.")
    return key


class LocalStore:
    """A folder; writes go to a temporary file renamed into place, so a reader never sees half an object."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"No stored object {key!r}.") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """One bucket over boto3; transient errors are retried by botocore's own retry policy."""

    def __init__(self, bucket: str, endpoint_url: str | None, region: str):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )

    def get_bytes(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=_safe_key(key))["Body"].read()
            return body
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(f"No stored object {key!r}.") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=_safe_key(key), Body=data)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=_safe_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=_safe_key(key))


def store_from_env(env: dict[str, str] | None = None) -> ObjectStore:
    where = StorageLocation.from_env(env)  # the process environment when env is None
    if where.folder is not None:
        return LocalStore(where.folder)
    return S3Store(where.bucket, where.endpoint_url, where.region)


@cache
def default_store() -> ObjectStore:
    """The process's store, built once from the environment."""
    return store_from_env()


def prompt_key(tenant_id: str, prompt_id: str, version: int, name: str) -> str:
    return f"tenants/{tenant_id}/prompts/{prompt_id}/{version}/{name}"
