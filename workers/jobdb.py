"""Job rows for workers: SQLAlchemy Core on tables reflected from the schema Django's migrations own.

No second schema: `COLUMNS` names every column the workers touch, and a test fails when Django's models
and this list drift apart. Every write to a running job is conditional on this worker still owning it,
so a job re-queued behind a stalled worker's back is never written by two.

A job message is a wake-up: the worker claims the next job in fair order (`claim_next`), not
necessarily the one the message named, so one team's long queue cannot hold back another's job.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa

from common.contracts import (
    FailureReason,
    JobKind,
    JobPolicy,
    JobStatus,
    ParityStatus,
    VersionStatus,
    WebhookEvent,
)
from workers import webhooks
from workers.config import WorkerConfig, worker_config
from workers.curves import thin_history

log = logging.getLogger(__name__)
# PostgreSQL's SQLSTATE for a transaction aborted to break a deadlock.
DEADLOCK_DETECTED = "40P01"

COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs_job": (
        *("id", "tenant_id", "kind", "status", "spec", "prompt_version_id", "dataset_version_id"),
        *("progress", "metric_history", "result", "attempts", "worker", "cancel_requested", "error"),
        *("error_code", "error_detail", "worker_losses", "gpu_seconds", "created_at"),
        *("queued_at", "started_at", "heartbeat_at", "finished_at"),
    ),
    "tenancy_quota": ("tenant_id", "concurrent_jobs"),
    "prompts_promptversion": (
        *("id", "tenant_id", "prompt_id", "number", "method", "status", "metrics", "ensemble_size"),
        *("artifact_key", "artifact_sha256", "peft_key", "inspection"),
        # Evaluation sets (workers/evalset.py): the training data and seed (its dev rows), the result.
        *("hyperparameters", "dataset_version_id", "evaluation", "parity"),
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
        "eval_dataset_version_id",
    ),
    "datasets_datasetversion": ("id", "tenant_id", "storage_key", "task_type", "columns", "labels"),
}
_JSON = {
    *("spec", "progress", "metric_history", "result", "metrics", "labels", "verbalizer", "columns"),
    *("inspection", "evaluation", "hyperparameters"),
}


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


def worker_loss_message(losses: int) -> str:
    """What the tenant reads when a job ended because it kept stopping its worker."""
    return (
        f"The job stopped its worker {losses} times in a row before it could save a checkpoint (the worker "
        "process was killed or crashed each time, e.g. out of memory), so it was not tried again. "
        "Retry it with a smaller batch_size or prompt_length, or ask the operators."
    )


def _progressed(progress: dict[str, Any] | None) -> bool:
    """Did the attempt behind this progress save a checkpoint past the point it resumed from?"""
    progress = progress or {}
    return int(progress.get("checkpoint_step") or -1) > int(progress.get("resumed_from") or 0)


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
        self.quotas = metadata.tables["tenancy_quota"]
        # Versions that become ready or fail, and failed jobs, are announced to the team's webhooks.
        self.webhooks = webhooks.WebhookDB(self.engine)

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

    # --- claiming -------------------------------------------------------------------------------------
    def _claim_values(self, worker: str, now: datetime, **extra: Any) -> dict[str, Any]:
        jobs = self.jobs
        return {
            "status": JobStatus.RUNNING,
            "worker": worker,
            "attempts": jobs.c.attempts + 1,
            "started_at": sa.func.coalesce(jobs.c.started_at, now),
            "heartbeat_at": now,
            "progress": self._json({}),  # each attempt reports its own progress
            **extra,
        }

    def claim(
        self,
        job_id: str,
        worker: str,
        stale_after_s: float,
        policy: JobPolicy | None = None,
        queued: bool = True,
    ) -> bool:
        """This job, for this worker: queued → running; or taken over when it is running with a stale
        heartbeat (its worker died: a worker loss, counted against the attempt cap, and a job past the
        cap or asked to cancel ends instead) or held by this same worker (a retry after a transient error)."""
        policy = policy or JobPolicy()
        jobs, now = self.jobs, self._now()
        stale = now - timedelta(seconds=stale_after_s)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == self._id(job_id)).with_for_update()).first()
            if row is None:
                return False
            job = self._row(row)
            where = [jobs.c.id == row.id, jobs.c.status == job["status"], jobs.c.worker == job["worker"]]
            mine = job["status"] == JobStatus.RUNNING and job["worker"] == worker  # retry after a blip
            stalled = (
                job["status"] == JobStatus.RUNNING
                and row.heartbeat_at is not None
                and row.heartbeat_at < stale
            )
            # queued=False: only a take-over (a worker's wake-up claims queued jobs in fair order instead).
            if ((job["status"] == JobStatus.QUEUED and queued) or mine) and not job["cancel_requested"]:
                values = self._claim_values(worker, now)
            elif stalled:
                values = self._after_worker_loss(conn, job, policy)
                if values.get("status") != JobStatus.QUEUED:
                    conn.execute(jobs.update().where(*where).values(**values))
                    return False
                values = self._claim_values(worker, now, worker_losses=values["worker_losses"])
            else:
                return False
            return conn.execute(jobs.update().where(*where).values(**values)).rowcount == 1

    def claim_next(self, worker: str) -> str | None:
        """The next queued job in fair order, claimed for this worker; None when none may start now.

        Fair order: the tenant with the fewest running jobs first, then the tenant that started a job
        least recently (never: first), then first come first served within the tenant; a tenant already
        running its quota's concurrent jobs waits. This is where a tenant's running limit holds (the API
        lets a tenant queue more, up to its queued_jobs quota). Only one worker can claim a job
        (conditional UPDATE; on PostgreSQL the pick skips rows another worker is claiming at this
        instant), and workers claiming at once for one tenant take turns on its quota row
        (`_may_start`), so together they never start more than its limit."""
        jobs, quotas, now = self.jobs, self.quotas, self._now()
        other = jobs.alias("other")
        same_tenant = other.c.tenant_id == jobs.c.tenant_id
        running = (
            sa.select(sa.func.count())
            .where(same_tenant, other.c.status == JobStatus.RUNNING)
            .scalar_subquery()
        )
        last_start = sa.select(sa.func.max(other.c.started_at)).where(same_tenant).scalar_subquery()
        limit = (
            sa.select(quotas.c.concurrent_jobs)
            .where(quotas.c.tenant_id == jobs.c.tenant_id)
            .scalar_subquery()
        )
        # The subqueries read this statement's snapshot: they order the queue and skip tenants already
        # full, and `_may_start` then decides under the tenant's lock.
        pick = (
            sa.select(jobs.c.id, jobs.c.tenant_id)
            .where(
                jobs.c.status == JobStatus.QUEUED,
                jobs.c.cancel_requested == sa.false(),
                running < sa.func.coalesce(limit, 2**31 - 1),
            )
            .order_by(running, last_start.asc().nulls_first(), jobs.c.created_at, jobs.c.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=jobs)
        )
        # A job this same process still holds (a transient error whose hand-back failed too) comes first.
        mine = sa.select(jobs.c.id).where(
            jobs.c.status == JobStatus.RUNNING, jobs.c.worker == worker, jobs.c.cancel_requested == sa.false()
        )
        # SQLite has no row locks: a lost race picks again. PostgreSQL: a claim keeps the quota rows it
        # locked until it commits, so two claims that each found the other's tenant full can wait on each
        # other; the database aborts one (deadlock detected) and that one picks again.
        for _ in range(5):
            try:
                with self.engine.begin() as conn:
                    held = conn.execute(mine.limit(1)).scalar()
                    if held is not None:
                        conn.execute(
                            jobs.update().where(jobs.c.id == held).values(**self._claim_values(worker, now))
                        )
                        return str(uuid.UUID(str(held)))
                    full: list[Any] = []  # tenants found at their limit under the lock, in this claim
                    while True:
                        row = conn.execute(
                            pick.where(jobs.c.tenant_id.not_in(full)) if full else pick
                        ).first()
                        if row is None:
                            return None
                        if self._may_start(conn, row.tenant_id):
                            break
                        full.append(row.tenant_id)
                    claimed = conn.execute(
                        jobs.update()
                        .where(jobs.c.id == row.id, jobs.c.status == JobStatus.QUEUED)
                        .values(**self._claim_values(worker, now))
                    ).rowcount
            except sa.exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != DEADLOCK_DETECTED:
                    raise
                log.warning("claim by %s lost a deadlock with another claim; picking again", worker)
                continue
            if claimed:
                return str(uuid.UUID(str(row.id)))
        return None

    def _may_start(self, conn: Any, tenant_id: Any) -> bool:
        """Whether the tenant runs fewer jobs than its quota allows, counted while holding its quota row:
        a second worker claiming for the same tenant waits here until the first commits, and (read
        committed) its count then includes the first one's claim. No quota row: no limit."""
        quotas, jobs = self.quotas, self.jobs
        limit = conn.execute(
            sa.select(quotas.c.concurrent_jobs).where(quotas.c.tenant_id == tenant_id).with_for_update()
        ).scalar()
        if limit is None:
            return True
        mine = sa.and_(jobs.c.tenant_id == tenant_id, jobs.c.status == JobStatus.RUNNING)
        running = conn.execute(sa.select(sa.func.count()).where(mine)).scalar()
        return bool(running < limit)

    def _after_worker_loss(self, conn: Any, job: dict[str, Any], policy: JobPolicy) -> dict[str, Any]:
        """The row's next values once its worker is gone: queued again (losses counted when the lost
        attempt saved no new checkpoint), failed past the attempt cap, or cancelled if that was asked."""
        now = self._now()
        ended = {"worker": "", "finished_at": now}
        if job["cancel_requested"]:
            self._set_version(conn, job, VersionStatus.CANCELLED)
            return {**ended, "status": JobStatus.CANCELLED}
        losses = 0 if _progressed(job["progress"]) else job["worker_losses"] + 1
        if losses >= policy.job_max_attempts:
            log.warning("job %s failed: its worker stopped %d times in a row", job["id"], losses)
            self._set_version(conn, job, VersionStatus.FAILED)
            # Announced in this transaction; the periodic sweep sends them (no Celery here).
            failed = VersionStatus.FAILED if job["kind"] != JobKind.EVALUATE else None
            self._events(conn, job["id"], JobStatus.FAILED, failed, None, worker_loss_message(losses))
            return {
                **ended,
                "status": JobStatus.FAILED,
                "worker_losses": losses,
                "error": worker_loss_message(losses),
                "error_code": FailureReason.WORKER_LOST,
            }
        return {"status": JobStatus.QUEUED, "worker": "", "queued_at": now, "worker_losses": losses}

    def _set_version(self, conn: Any, job: dict[str, Any], status: VersionStatus) -> None:
        """A training job's version ends with its job (an evaluate job scores a version it does not own)."""
        if job["kind"] != JobKind.EVALUATE and job["prompt_version_id"]:
            conn.execute(
                self.versions.update()
                .where(self.versions.c.id == self._id(job["prompt_version_id"]))
                .values(status=status)
            )

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
        jobs = self.jobs
        return sa.and_(
            jobs.c.id == self._id(job_id), jobs.c.worker == worker, jobs.c.status == JobStatus.RUNNING
        )

    def heartbeat(
        self,
        job_id: str,
        worker: str,
        progress: dict[str, Any] | None,
        new_history: list[dict[str, Any]],
        gpu_seconds: float | None = None,
    ) -> tuple[bool, bool]:
        """Beat, and write progress, new dev evaluations and the job's worker time so far; returns
        (still owned, cancel requested)."""
        values: dict[str, Any] = {"heartbeat_at": self._now()}
        if progress is not None:
            values["progress"] = self._json(progress)
        if gpu_seconds is not None:
            values["gpu_seconds"] = gpu_seconds
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
                values["metric_history"] = self._json(thin_history(history + new_history))
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
        error_code: str = "",
        error_detail: str = "",
        gpu_seconds: float | None = None,
    ) -> str | None:
        """Record the outcome (and the version's, in the same transaction) if this worker still owns it;
        returns the status written, or None when the job is no longer this worker's.

        Cancel wins: a success is written only while no cancel is requested (the platform's cancel locks
        the row, so the two are ordered); a job asked to cancel before this commit ends cancelled, and its
        version too, whatever it had reached."""
        values: dict[str, Any] = {
            "status": status,
            "result": self._json(result or {}),
            "error": error[:5000],
            "error_code": error_code,
            "error_detail": error_detail[-20000:],
            "finished_at": self._now(),
        }
        if gpu_seconds is not None:
            values["gpu_seconds"] = gpu_seconds
        owned = self._owned(job_id, worker)
        version_status = (version or {}).get("status")
        with self.engine.begin() as conn:
            if status == JobStatus.SUCCEEDED:
                fenced = sa.and_(owned, self.jobs.c.cancel_requested == sa.false())
                if not conn.execute(self.jobs.update().where(fenced).values(**values)).rowcount:
                    values["status"] = status = JobStatus.CANCELLED
                    version = {"id": version["id"], "status": VersionStatus.CANCELLED} if version else None
                    if not conn.execute(self.jobs.update().where(owned).values(**values)).rowcount:
                        return None
            elif not conn.execute(self.jobs.update().where(owned).values(**values)).rowcount:
                return None
            if version:
                version = dict(version)
                version_id = version.pop("id")
                for name in _JSON.intersection(version):
                    version[name] = self._json(version[name])
                conn.execute(
                    self.versions.update().where(self.versions.c.id == self._id(version_id)).values(**version)
                )
                version_status = version.get("status")
            metrics = result if status == JobStatus.SUCCEEDED else None
            delivery_ids = self._events(conn, job_id, status, version_status, metrics, error)
        webhooks.announce(delivery_ids)  # committed: a worker may send them now
        return status

    def _events(
        self,
        conn: Any,
        job_id: str,
        status: str,
        version_status: str | None,
        metrics: dict[str, Any] | None,
        error: str,
    ) -> list[str]:
        """The webhook deliveries of a job's outcome, in the transaction that writes it: version.ready,
        version.failed (a training job's version) and job.failed. Returns their ids."""
        jobs, versions, prompts = self.jobs, self.versions, self.prompts
        row = conn.execute(
            sa.select(jobs.c.tenant_id, jobs.c.kind, versions.c.number, prompts.c.name)
            .select_from(jobs)
            .outerjoin(versions, versions.c.id == jobs.c.prompt_version_id)
            .outerjoin(prompts, prompts.c.id == versions.c.prompt_id)
            .where(jobs.c.id == self._id(job_id))
        ).first()
        if row is None:
            return []
        data = {"prompt": row.name, "version": row.number, "job_id": str(job_id)}
        events: list[tuple[WebhookEvent, dict[str, Any]]] = []
        if status == JobStatus.SUCCEEDED and version_status == VersionStatus.READY:
            events.append((WebhookEvent.VERSION_READY, {**data, "metrics": metrics or {}}))
        if status == JobStatus.FAILED:
            failed = {**data, "error": error[:1000]}
            if version_status == VersionStatus.FAILED:
                events.append((WebhookEvent.VERSION_FAILED, failed))
            events.append((WebhookEvent.JOB_FAILED, {**failed, "kind": row.kind}))
        ids: list[str] = []
        for event, payload in events:
            ids += self.webhooks.enqueue(conn, row.tenant_id, event, payload)
        return ids

    def release(self, job_id: str, worker: str) -> None:
        """Give a running job back to the queue (a transient error); the retry claims it again."""
        with self.engine.begin() as conn:
            conn.execute(
                self.jobs.update()
                .where(self._owned(job_id, worker))
                .values(status=JobStatus.QUEUED, queued_at=self._now())
            )

    def requeue_stalled(self, stale_after_s: float, policy: JobPolicy | None = None) -> list[tuple[str, str]]:
        """Running jobs whose heartbeat stopped: queued again (returns (id, kind) of each to re-send), or,
        past the attempt cap or when a cancel was asked, ended failed or cancelled (never re-queued)."""
        policy = policy or JobPolicy()
        now, jobs, out = self._now(), self.jobs, []
        stalled = sa.and_(
            jobs.c.status == JobStatus.RUNNING, jobs.c.heartbeat_at < now - timedelta(seconds=stale_after_s)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(jobs).where(stalled).with_for_update(skip_locked=True)).all()
            for row in rows:
                job = self._row(row)
                values = self._after_worker_loss(conn, job, policy)
                done = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == row.id, jobs.c.worker == row.worker, stalled)
                    .values(**values)
                ).rowcount
                if done and values["status"] == JobStatus.QUEUED:
                    out.append((job["id"], job["kind"]))
                elif done:
                    log.warning("stalled job %s ended %s", job["id"], values["status"])
        return out

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

    # --- evaluation sets (workers/evalset.py) ------------------------------------------------------
    def evaluation_context(self, version_id: str) -> EvaluationContext | None:
        """A version to score on its prompt's evaluation set: the version, its prompt, the pinned dataset
        version (None: the prompt pins none now) and the version's training dataset version (None: gone)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.versions).where(self.versions.c.id == self._id(version_id))
            ).first()
            if row is None:
                return None
            version = self._row(row)
            prompt = self._row(
                conn.execute(
                    sa.select(self.prompts).where(self.prompts.c.id == self._id(version["prompt_id"]))
                ).one()
            )

            def dataset(pk: str | None) -> dict[str, Any] | None:
                if not pk:
                    return None
                found = conn.execute(
                    sa.select(self.datasets).where(self.datasets.c.id == self._id(pk))
                ).first()
                return self._row(found) if found else None

            return EvaluationContext(
                version,
                prompt,
                dataset(prompt.get("eval_dataset_version_id")),
                dataset(version.get("dataset_version_id")),
            )

    def stale_evaluations(self, older_than_s: float) -> list[str]:
        """Versions pending evaluation whose task was queued (evaluation.queued_at) longer ago than this:
        a message lost on the way, or never sent. Their clock restarts as they are returned to be re-sent;
        a duplicate is harmless (the evaluation is rewritten whole)."""
        versions, now = self.versions, datetime.now(UTC)
        out = []
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(versions.c.id, versions.c.evaluation)
                .where(versions.c.parity == ParityStatus.PENDING)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                evaluation = self._row(row)["evaluation"] or {}
                queued = _when(evaluation.get("queued_at"))
                if queued is not None and (now - queued).total_seconds() < older_than_s:
                    continue
                evaluation = {**evaluation, "queued_at": now.isoformat(timespec="seconds")}
                conn.execute(
                    versions.update().where(versions.c.id == row.id).values(evaluation=self._json(evaluation))
                )
                out.append(str(uuid.UUID(str(row.id))))
        return out

    def set_evaluation(self, version_id: str, evaluation: dict[str, Any], parity: str) -> None:
        """The version's evaluation-set result and its parity verdict, in one write."""
        with self.engine.begin() as conn:
            conn.execute(
                self.versions.update()
                .where(self.versions.c.id == self._id(version_id))
                .values(evaluation=self._json(evaluation), parity=parity)
            )


def _when(text: Any) -> datetime | None:
    """An ISO 8601 time written by the platform or a worker (UTC), or None when absent or unreadable."""
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EvaluationContext:
    version: dict[str, Any]
    prompt: dict[str, Any]
    eval_dataset: dict[str, Any] | None
    train_dataset: dict[str, Any] | None


@cache
def default_db() -> JobDB:
    """The process's connection pool and reflected tables, built once from the environment."""
    return JobDB(worker_config().database_url)
