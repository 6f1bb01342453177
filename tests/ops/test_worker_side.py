"""The worker side of operations: heartbeat rows written through SQLAlchemy Core, heartbeat failures
logged and counted (never swallowed), JSON log lines with the job's context or the request's id."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import structlog
from django.apps import apps

from common.contracts import QUEUE_DEFAULT, QUEUE_GPU
from softserve.ops.models import WorkerHeartbeat
from tests.workers.conftest import test_database_url as _database_url
from workers import fleet, logs, runner
from workers import metrics as prom
from workers.jobdb import JobContext, database_url


def _json_lines(logger_name: str):
    """A handler with the project's formatter on one logger; returns (stream, remove)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    config = logs.logging_config({"SOFTSERVE_LOG_FORMAT": "json"})["formatters"]["softserve"]
    factory = config.pop("()")
    handler.setFormatter(factory(**config))
    target = logging.getLogger(logger_name)
    target.addHandler(handler)
    previous = target.level
    target.setLevel(logging.INFO)

    def remove() -> None:
        target.removeHandler(handler)
        target.setLevel(previous)

    return stream, remove


def test_fleet_columns_exist_in_the_django_model():
    model = apps.get_model("ops", "WorkerHeartbeat")
    assert set(fleet.COLUMNS) <= {f.column for f in model._meta.concrete_fields}


@pytest.mark.django_db(transaction=True)
def test_a_worker_writes_and_updates_its_own_heartbeat_row():
    engine = sa.create_engine(database_url({"DATABASE_URL": _database_url()}))
    try:
        beat = fleet.Fleet(lambda: engine, "gpu,default", every_s=0.1)
        sample = beat.beat()
        beat.job_id = "6f0c1a43-5f5d-4c1e-9d86-2a2d3a4c5b6e"
        beat.beat()
        row = WorkerHeartbeat.objects.get()
        worker, host, pid = fleet.worker_identity()
        assert (row.worker, row.host, row.pid, row.queues) == (worker, host, pid, "gpu,default")
        assert row.device == sample.device and row.memory_total > 0 and row.rss > 0
        assert str(row.job_id) == beat.job_id and row.stopped_at is None
        beat.stop()
        assert WorkerHeartbeat.objects.get().stopped_at is not None
        assert WorkerHeartbeat.objects.count() == 1  # an upsert on the worker id, never a second row
    finally:
        engine.dispose()


def test_only_a_worker_on_the_gpu_queue_writes_heartbeat_rows():
    """A default-queue worker trains nothing: counted as online it would hide that no tuning worker is
    (SoftserveNoWorkerOnline). The selection is read the way Celery's -Q leaves it."""
    from workers.celeryconf import app, fleet_heartbeat

    def selected(*names: str) -> list[str]:
        queues = app.amqp.Queues(app.conf.task_queues)  # a copy: the app's own selection stays as it is
        queues.select(list(names))
        return list(queues.consume_from)

    assert fleet_heartbeat(selected(QUEUE_DEFAULT)) is None
    for names in ((QUEUE_GPU,), (QUEUE_GPU, QUEUE_DEFAULT)):
        beat = fleet_heartbeat(selected(*names))
        assert beat is not None and beat.queues == ",".join(names)
    # No -Q (the app's own selection in a test process): every queue, so the tuning one too.
    beat = fleet_heartbeat(app.amqp.queues.consume_from)
    assert beat is not None and beat.queues == ",".join((QUEUE_GPU, QUEUE_DEFAULT))


class _BrokenDB:
    def heartbeat(self, *args):
        raise sa.exc.OperationalError("UPDATE jobs_job", {}, Exception("server closed the connection"))


def test_a_failed_job_heartbeat_is_logged_with_its_traceback_and_counted(caplog):
    before = prom.HEARTBEAT_FAILURES.labels("job")._value.get()
    context = JobContext({"id": "job-1", "gpu_seconds": 0.0}, {}, {}, None)
    beat = runner.Beat(_BrokenDB(), context, "host:1", runner.CONFIG)
    beat.update({"step": 3}, {"step": 3, "loss": 1.0})
    with caplog.at_level(logging.WARNING, logger="workers.runner"):
        beat.flush()
    record = next(r for r in caplog.records if "job heartbeat failed" in r.getMessage())
    assert record.exc_info and "server closed the connection" in str(record.exc_info[1])
    assert prom.HEARTBEAT_FAILURES.labels("job")._value.get() == before + 1
    assert beat.pending_history == [{"step": 3, "loss": 1.0}]  # kept for the next beat


class _OneJobDB:
    """Claims, then hands out a job whose dataset was deleted: the job fails at once, with a log line."""

    def __init__(self):
        self.finished: list[tuple] = []

    def claim(self, job_id, worker, stale_after_s, policy, queued=True):
        return True  # this worker takes the job over

    def context(self, job_id):
        job = {
            "id": job_id,
            "kind": "evaluate",
            "attempts": 2,
            "queued_at": datetime.now(UTC),
            "spec": {},
            "gpu_seconds": 0.0,
        }
        prompt = {"base_model": "x", "task_type": "classification", "template": "{text}", "labels": []}
        return JobContext(job, {"id": "v1", "artifact_key": "k"}, {**prompt, "verbalizer": {}}, None)

    def finish(self, job_id, worker, status, result=None, error="", version=None, **codes):
        self.finished.append((job_id, status, error))
        return True


def test_worker_log_lines_carry_job_id_attempt_and_worker():
    stream, remove = _json_lines("workers.runner")
    db = _OneJobDB()
    try:
        assert runner.run_job(db, None, "job-42", ()) == "failed"
    finally:
        remove()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ended = next(line for line in lines if line["event"] == "job ended: failed")
    assert ended["job_id"] == "job-42" and ended["attempt"] == 2 and ended["worker"] == runner.worker_id()
    assert ended["level"] == "info" and ended["logger"] == "workers.runner" and "ts" in ended
    assert db.finished[0][1] == "failed" and "deleted" in db.finished[0][2]
    assert "job_id" not in structlog.contextvars.get_contextvars()  # nothing leaks to the next job


@pytest.mark.django_db
def test_web_log_lines_are_json_with_the_request_id(client):
    stream, remove = _json_lines("softserve.request")
    try:
        response = client.get("/api/v1/jobs", HTTP_X_REQUEST_ID="trace-7")
    finally:
        remove()
    assert response["X-Request-ID"] == "trace-7"
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "trace-7" and line["view"] == "jobs" and line["status"] == 401
    assert line["path"] == "/api/v1/jobs" and line["duration_ms"] >= 0
