"""Real Celery worker processes (with the reconciler's beat) on Redis, Postgres and the S3 server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from common.contracts import JOB_ENDED
from softserve.producer import celery_app
from tests.conftest import ROOT
from tests.net import redis_db_url

BROKER_URL = redis_db_url(12)
HEARTBEAT_S = 0.3  # the workers' heartbeat here: how soon they see a cancel
WORKER_COMMAND = [
    *(sys.executable, "-m", "celery", "-A", "workers.celeryconf", "worker", "-B", "-Q", "gpu,default"),
    *("--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip"),
]


def test_database_url() -> str:
    settings = connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


class Workers:
    """Starts and SIGKILLs `celery worker -B` processes; each runs in its own process group."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir, self.procs, self.kills = env, log_dir, [], 0

    def start(self) -> subprocess.Popen:
        log = (self.log_dir / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            WORKER_COMMAND,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.kills += 1

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def broker(settings):
    client = redis.Redis.from_url(BROKER_URL)
    client.ping()  # fails loudly when Redis is down
    client.flushdb()
    settings.CELERY_BROKER_URL = BROKER_URL
    celery_app.cache_clear()
    yield client
    client.flushdb()
    celery_app.cache_clear()


@pytest.fixture
def workers(broker, s3, s3_endpoint, tiny_model_dirs, settings, tmp_path):
    """A worker environment on the test database, the Redis broker and the test's S3 bucket;
    tiny GPT-2 is an allowed base model. Short heartbeats and reconciler periods keep faults quick."""
    settings.SOFTSERVE_BASE_MODELS = [str(tiny_model_dirs["gpt2"]), *settings.SOFTSERVE_BASE_MODELS]
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET": s3.bucket,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SOFTSERVE_VAR_DIR": str(tmp_path / "var"),
        "SOFTSERVE_HEARTBEAT_S": str(HEARTBEAT_S),
        "SOFTSERVE_HEARTBEAT_TIMEOUT_S": "3",
        "SOFTSERVE_CHECKPOINT_EVERY": "5",
        "SOFTSERVE_RECONCILE_EVERY_S": "1",
        "SOFTSERVE_REQUEUE_UNCLAIMED_S": "4",
        "HF_HUB_OFFLINE": "1",
    }
    (tmp_path / "var").mkdir()
    (tmp_path / "logs").mkdir()
    pool = Workers(env, tmp_path / "logs")
    yield pool
    pool.stop_all()


def wait_for(condition, timeout: float, what: str, workers: Workers | None = None, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}\n{workers.logs() if workers else ''}"
    )


def ended_job(team, job_id: str) -> dict | None:
    """The job as the API shows it once it has ended (for `wait_for`), else None."""
    job = team.client.get(f"/api/v1/jobs/{job_id}").json()
    return job if job["status"] in JOB_ENDED else None
