"""Issue 22, finding 4: /readyz is unauthenticated, so its cost must not grow with how often it is asked.
The checks run at most about once a second however many probes arrive, a check that hangs is never
started again behind itself, and each check keeps its client."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from django.test import Client

from common.contracts import StorageLocation
from softserve.ops import health
from workers.health import readiness, storage_check


@pytest.mark.django_db(transaction=True)
def test_a_flood_of_readyz_runs_the_checks_about_once_a_second(monkeypatch, settings):
    runs: list[float] = []
    real = health._database

    def counted() -> None:
        runs.append(time.monotonic())
        time.sleep(0.05)  # a database round trip
        real()

    monkeypatch.setattr(health, "_database", counted)
    settings.SOFTSERVE_READY_TIMEOUT_S = 1.9  # a configuration of its own: checks built afresh with `counted`

    def probe(_: int) -> int:
        return Client().get("/readyz").status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(probe, range(300)))
    took = time.monotonic() - started
    assert statuses == [200] * 300
    # Once per second of the flood at most (plus the first run): not once per probe.
    assert len(runs) <= took + 2, f"{len(runs)} database checks for 300 probes in {took:.1f} s"


def test_a_hanging_check_is_started_once_however_many_probes_time_out():
    release, starts = threading.Event(), []

    def hangs() -> None:
        starts.append(1)
        release.wait(10)

    try:
        answers = [readiness({"hangs": hangs}, timeout_s=0.05) for _ in range(20)]
    finally:
        release.set()
    assert all(a.checks["hangs"].startswith("no answer within") for a in answers)
    time.sleep(0.5)  # whatever was queued behind the hanging run would have started by now
    assert len(starts) == 1, (
        f"the hanging check was started {len(starts)} times (a queue of timed-out checks)"
    )


def test_the_storage_check_makes_its_s3_client_once(s3_endpoint, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    made = []
    real = boto3.session.Session.client

    def counting(self, *args, **kwargs):
        made.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="ready-check")
    made.clear()
    check = storage_check(StorageLocation(folder=None, bucket="ready-check", endpoint_url=s3_endpoint), 2.0)
    for _ in range(5):
        check()
    assert len(made) == 1, f"{len(made)} boto3 clients for 5 checks"
