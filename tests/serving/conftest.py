"""Services for the serving tests: Redis (db 13), a bucket on the shared S3 endpoint (tests/s3.py), a store.

Missing services fail the tests loudly; nothing here skips.
"""

from __future__ import annotations

import uuid

import boto3
import pytest

from tests.serving.helpers import S3_CREDENTIALS, fresh_serving_redis
from workers.storage import S3Store


@pytest.fixture
def redis_db():
    client = fresh_serving_redis()
    yield client
    client.flushdb()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> dict[str, str]:
    """A fresh bucket; the environment that points workers (and this process) at it."""
    env = {
        **S3_CREDENTIALS,
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET": f"serve-{uuid.uuid4().hex[:10]}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=env["S3_BUCKET"]
    )
    return env


@pytest.fixture
def s3_store(s3_env) -> S3Store:
    return S3Store(s3_env["S3_BUCKET"], s3_env["S3_ENDPOINT_URL"], "us-east-1")
