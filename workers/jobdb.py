"""Job rows for workers: SQLAlchemy Core on tables reflected from the schema Django's migrations own.

No second schema: `COLUMNS` names every column the workers touch, and a test fails when Django's models
and this list drift apart. Every write to a running job is conditional on this worker still owning it,
so a job re-queued behind a stalled worker's back is never written by two.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa

from workers.config import WorkerConfig, worker_config
from workers.contracts import JobStatus

COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs_job": (
        *("id", "tenant_id", "kind", "status", "spec", "prompt_version_id", "dataset_version_id"),
        *("progress", "metric_history", "result", "attempts", "worker", "cancel_requested", "error"),
        *("queued_at", "started_at", "heartbeat_at", "finished_at"),
    ),
    "prompts_promptversion": (
        *("id", "tenant_id", "prompt_id", "number", "method", "status", "metrics", "ensemble_size"),
        *("artifact_key", "artifact_sha256"),
    ),
    "prompts_taskprompt": (
        "id",
        "tenant_id",
        "name",
        "task_type",
        "template",
        "labels",
        "verbalizer",
        "base_model",
    ),
    "datasets_datasetversion": ("id", "tenant_id", "storage_key", "task_type", "columns", "labels"),
}
_JSON = {"spec", "progress", "metric_history", "result", "metrics", "labels", "verbalizer", "columns"}


def database_url(env: dict[str, str]) -> str:
    """Django's DATABASE_URL (same default: SQLite under SOFTSERVE_VAR_DIR) in SQLAlchemy's spelling."""
    return WorkerConfig.from_env(env).database_url


@dataclass(frozen=True)
class JobContext:
    """What a worker needs to run a claimed job: the job, its prompt version, prompt and dataset."""

    job: dict[str, Any]
    version: dict[str, Any]
    prompt: dict[str, Any]
    dataset: dict[str, Any] | None


class JobDB:
    def __init__(self, url: str):
        # SQLite (embedded): wait for the web server's write lock rather than fail at once.
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        self.sqlite = self.engine.dialect.name == "sqlite"
        metadata = sa.MetaData()
        metadata.reflect(bind=self.engine, only=list(COLUMNS))
        self.jobs = metadata.tables["jobs_job"]
        self.versions = metadata.tables["prompts_promptversion"]
        self.prompts = metadata.tables["prompts_taskprompt"]
        self.datasets = metadata.tables["datasets_datasetversion"]

    # Django stores UUIDs as 32 hex characters, JSON as text and naive UTC times on SQLite.
    def _id(self, value: Any) -> Any:
        return uuid.UUID(str(value)).hex if self.sqlite else uuid.UUID(str(value))

    def _json(self, value: Any) -> Any:
        return json.dumps(value) if self.sqlite else value

    def _now(self) -> datetime:
        now = datetime.now(UTC)
        return now.replace(tzinfo=None) if self.sqlite else now

    def _row(self, row: Any) -> dict[str, Any]:
        out = dict(row._mapping)
        for key, value in out.items():
            if key in _JSON and isinstance(value, str):
                out[key] = json.loads(value)
            elif isinstance(value, uuid.UUID) or ((key == "id" or key.endswith("_id")) and value):
                out[key] = str(uuid.UUID(str(value)))
        return out

    def job(self, job_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.jobs).where(self.jobs.c.id == self._id(job_id))).first()
        return self._row(row) if row else None

    def claim(self, job_id: str, worker: str, stale_after_s: float) -> bool:
        """queued → running for this worker; also takes over a running job whose heartbeat went stale
        (its worker died) or that this same worker held (a retry after a transient error)."""
        jobs, now = self.jobs, self._now()
        claimable = sa.or_(
            jobs.c.status == JobStatus.QUEUED,
            sa.and_(
                jobs.c.status == JobStatus.RUNNING,
                sa.or_(jobs.c.heartbeat_at < now - timedelta(seconds=stale_after_s), jobs.c.worker == worker),
            ),
        )
        statement = (
            jobs.update()
            .where(jobs.c.id == self._id(job_id), claimable, jobs.c.cancel_requested == sa.false())
            .values(
                status=JobStatus.RUNNING,
                worker=worker,
                attempts=jobs.c.attempts + 1,
                started_at=sa.func.coalesce(jobs.c.started_at, now),
                heartbeat_at=now,
                progress=self._json({}),  # each attempt reports its own progress
            )
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def context(self, job_id: str) -> JobContext:
        with self.engine.connect() as conn:
            job = self._row(
                conn.execute(sa.select(self.jobs).where(self.jobs.c.id == self._id(job_id))).one()
            )
            version = self._row(
                conn.execute(
                    sa.select(self.versions).where(self.versions.c.id == self._id(job["prompt_version_id"]))
                ).one()
            )
            prompt = self._row(
                conn.execute(
                    sa.select(self.prompts).where(self.prompts.c.id == self._id(version["prompt_id"]))
                ).one()
            )
            dataset = None
            if job["dataset_version_id"]:
                row = conn.execute(
                    sa.select(self.datasets).where(self.datasets.c.id == self._id(job["dataset_version_id"]))
                ).first()
                dataset = self._row(row) if row else None
        return JobContext(job, version, prompt, dataset)

    def _owned(self, job_id: str, worker: str) -> Any:
        return sa.and_(
            self.jobs.c.id == self._id(job_id),
            self.jobs.c.worker == worker,
            self.jobs.c.status == JobStatus.RUNNING,
        )

    def heartbeat(
        self, job_id: str, worker: str, progress: dict[str, Any] | None, new_history: list[dict[str, Any]]
    ) -> tuple[bool, bool]:
        """Beat, and write progress and new dev evaluations; returns (still owned, cancel requested)."""
        values: dict[str, Any] = {"heartbeat_at": self._now()}
        if progress is not None:
            values["progress"] = self._json(progress)
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(self.jobs.c.metric_history, self.jobs.c.cancel_requested)
                .where(self._owned(job_id, worker))
                .with_for_update()
            ).first()
            if row is None:
                return False, False
            if new_history:
                history = self._row(row)["metric_history"] or []
                values["metric_history"] = self._json(history + new_history)
            conn.execute(self.jobs.update().where(self._owned(job_id, worker)).values(**values))
            return True, bool(row.cancel_requested)

    def finish(
        self,
        job_id: str,
        worker: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: str = "",
        version: dict[str, Any] | None = None,
    ) -> bool:
        """Record the outcome (and the version's, in the same transaction) if this worker still owns it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                self.jobs.update()
                .where(self._owned(job_id, worker))
                .values(
                    status=status,
                    result=self._json(result or {}),
                    error=error[:5000],
                    finished_at=self._now(),
                )
            ).rowcount
            if done and version:
                version_id = version.pop("id")
                if "metrics" in version:
                    version["metrics"] = self._json(version["metrics"])
                conn.execute(
                    self.versions.update().where(self.versions.c.id == self._id(version_id)).values(**version)
                )
        return done == 1

    def release(self, job_id: str, worker: str) -> None:
        """Give a running job back to the queue (a transient error); the retry claims it again."""
        with self.engine.begin() as conn:
            conn.execute(
                self.jobs.update()
                .where(self._owned(job_id, worker))
                .values(status=JobStatus.QUEUED, queued_at=self._now())
            )

    def requeue_stalled(self, stale_after_s: float) -> list[tuple[str, str]]:
        """running jobs whose heartbeat stopped → queued again; returns (id, kind) of each to re-send."""
        now, jobs = self._now(), self.jobs
        stalled = sa.and_(
            jobs.c.status == JobStatus.RUNNING, jobs.c.heartbeat_at < now - timedelta(seconds=stale_after_s)
        )
        return self._requeue(stalled, {"status": JobStatus.QUEUED, "worker": "", "queued_at": now})

    def unclaimed(self, older_than_s: float) -> list[tuple[str, str]]:
        """queued jobs nobody claimed in time (a lost message); their clock restarts as they are re-sent."""
        now, jobs = self._now(), self.jobs
        lost = sa.and_(
            jobs.c.status == JobStatus.QUEUED,
            jobs.c.cancel_requested == sa.false(),
            jobs.c.queued_at < now - timedelta(seconds=older_than_s),
        )
        return self._requeue(lost, {"queued_at": now})

    def _requeue(self, condition: Any, values: dict[str, Any]) -> list[tuple[str, str]]:
        jobs, out = self.jobs, []
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.kind).where(condition).with_for_update(skip_locked=True)
            )
            for row in rows.all():
                if conn.execute(
                    jobs.update().where(jobs.c.id == row.id, condition).values(**values)
                ).rowcount:
                    out.append((str(uuid.UUID(str(row.id))), row.kind))
        return out

    def merge_version_metrics(self, version_id: str, key: str, value: dict[str, Any]) -> None:
        """metrics[key] = value on a version, keeping what other jobs wrote there."""
        versions = self.versions
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(versions.c.metrics).where(versions.c.id == self._id(version_id)).with_for_update()
            ).one()
            metrics = self._row(row)["metrics"] or {}
            metrics.setdefault("evaluations", {})[key] = value
            conn.execute(
                versions.update()
                .where(versions.c.id == self._id(version_id))
                .values(metrics=self._json(metrics))
            )


@cache
def default_db() -> JobDB:
    """The process's connection pool and reflected tables, built once from the environment."""
    return JobDB(worker_config().database_url)
