"""Pytest plugin: a real S3 endpoint over HTTP (moto's server) for the session, and a bucket per test."""

import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(settings, s3_endpoint, monkeypatch):
    """Point Django's default storage at a fresh bucket on the S3 server; yields a boto3 client."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"softserve-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "file_overwrite": False,
                "default_acl": None,
                "access_key": "test",
                "secret_key": "test",
            },
        },
    }
    client.bucket = bucket
    return client


def object_keys(client) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=client.bucket).get("Contents", [])]
