"""The embedded defaults, no services: SQLite, a local storage folder, Celery over SQLAlchemy on SQLite,
and the same Celery worker as production training the job on the CPU with the default model."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.conftest import ROOT, shared_dataset

SCRIPT = r"""
import io, json, sys
from django.test import Client
key, data = sys.argv[1], sys.argv[2]
client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
with open(data, "rb") as handle:
    lines = b"".join(line for _, line in zip(range(101), handle))
upload = io.BytesIO(lines); upload.name = "sst2.csv"
version = client.post("/api/v1/datasets", {"name": "sst2", "file": upload})
prompt = client.post("/api/v1/prompts", {"name": "sentiment", "task_type": "classification",
    "template": "{text}", "labels": ["negative", "positive"]}, content_type="application/json")
job = client.post("/api/v1/jobs", {"kind": "tune", "prompt": "sentiment",
    "dataset_version": version.json()["id"], "steps": 5}, content_type="application/json")
print(json.dumps({"upload": version.status_code, "prompt": prompt.status_code, "job": job.status_code,
                  "rows": version.json()["row_count"], "status": job.json()["status"]}))
"""


def _manage(env, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "platform" / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_platform_runs_on_embedded_defaults(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "S3_ENDPOINT_URL",
            "CELERY_BROKER_URL",
            "STORAGE_DIR",
            "DJANGO_SETTINGS_MODULE",
        )
    }
    env["SOFTSERVE_VAR_DIR"] = str(tmp_path)
    env["DJANGO_SECRET_KEY"] = "embedded-mode-test-" + "k" * 40  # `make run` has one from `make secrets`
    migrated = _manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert (tmp_path / "softserve.sqlite3").is_file()
    created = _manage(env, "createtenant", "demo", "--owner", "demo@example.com")
    assert created.returncode == 0, created.stderr[-2000:]
    key = created.stdout.strip().splitlines()[-1].split(": ")[1]
    again = _manage(env, "createtenant", "demo", "--owner", "demo@example.com")
    assert again.returncode != 0 and "exists already" in again.stderr and "Traceback" not in again.stderr
    run = _manage(
        env,
        "shell",
        "-c",
        f"import sys; sys.argv = ['x', {key!r}, {str(shared_dataset('sst2', 'train'))!r}]\n{SCRIPT}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"upload": 201, "prompt": 201, "job": 201, "rows": 100, "status": "queued"}
    stored = list((tmp_path / "storage").rglob("data.jsonl"))
    assert len(stored) == 1 and len(stored[0].read_text().splitlines()) == 100
    assert (tmp_path / "celery.sqlite3").is_file()  # the task went to the embedded broker

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celeryconf", "worker", "-B", "-Q", "gpu,default"],
        env=env,
        cwd=ROOT,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, row = time.monotonic() + 400, None
        while time.monotonic() < deadline:
            with sqlite3.connect(tmp_path / "softserve.sqlite3", timeout=30) as db:
                row = db.execute("SELECT status, error, progress FROM jobs_job").fetchone()
            if row[0] in ("succeeded", "failed") or worker.poll() is not None:
                break
            time.sleep(1)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert row and row[0] == "succeeded", (row, log)
    assert json.loads(row[2])["step"] == 5
    with sqlite3.connect(tmp_path / "softserve.sqlite3") as db:
        status, key = db.execute("SELECT status, artifact_key FROM prompts_promptversion").fetchone()
    assert status == "ready" and (tmp_path / "storage" / key).stat().st_size > 0
