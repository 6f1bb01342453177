"""A storage outage is transient: the job goes back to the queue, Celery retries it with backoff, and it
finishes once storage is back. Real worker process, real S3 server (down, then up at the same address)."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from softserve.datasets.models import DatasetVersion
from softserve.jobs.models import Job
from tests.net import free_port
from tests.workers.conftest import ended_job, wait_for
from tests.workers.test_jobs_e2e import _setup, _start

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_storage_outage_is_retried_until_storage_is_back(acme, workers, s3, tiny_model_dirs):
    dataset = _setup(acme, tiny_model_dirs, rows=40)
    port = free_port()
    workers.env = {**workers.env, "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # nothing listens there yet
    workers.start()
    job = _start(acme, dataset, kind="tune", steps=4)

    def released():
        row = Job.objects.get(pk=job["id"])
        return row.attempts >= 1 and row.status == "queued" and not row.error

    wait_for(released, 120, "the job handed back to the queue after the storage error", workers)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        restored = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        restored.create_bucket(Bucket=s3.bucket)
        key = DatasetVersion.objects.get(pk=dataset).storage_key
        restored.put_object(
            Bucket=s3.bucket, Key=key, Body=s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        )
        done = wait_for(lambda: ended_job(acme, job["id"]), 180, "the retried job", workers)
    finally:
        server.stop()
    assert done["status"] == "succeeded" and done["attempts"] >= 2, done
    logs = "".join(path.read_text(errors="replace") for path in workers.log_dir.glob("*.log"))
    assert "Retry in" in logs and "EndpointConnectionError" in logs  # Celery's backoff, not a new message
