"""Job writes: the job row and its pending prompt version in one transaction, the task sent on commit."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.contracts import AuditAction, JobKind, JobStatus
from softserve import errors
from softserve.errors import Invalid
from softserve.jobs.models import Job
from softserve.producer import send_job
from softserve.prompts.models import PromptVersion, TaskPrompt, VersionStatus
from softserve.tenancy.actions import record
from softserve.tenancy.models import Quota
from softserve.tenancy.permissions import Actor

logger = logging.getLogger(__name__)


class QuotaExceeded(errors.QuotaExceeded):
    message = "Too many jobs queued for this tenant."


def _send_or_leave_to_reconciler(job_id: str, kind: str) -> None:
    """The job row is committed: it is queued whatever happens here. A broker that is down (or any other
    failure to send) must not turn the caller's 201 into a 500 after the fact; the reconciler re-sends
    a queued job nobody claimed (SOFTSERVE_REQUEUE_UNCLAIMED_S, workers/runner.py: reconcile)."""
    try:
        send_job(job_id, kind)
    except Exception:
        logger.exception(
            "job %s (%s) is queued but its task was not sent; the reconciler re-sends it", job_id, kind
        )


def _enqueue_after_commit(job: Job) -> None:
    job_id, kind = str(job.id), job.kind
    transaction.on_commit(lambda: _send_or_leave_to_reconciler(job_id, kind))


def _check_quota(actor: Actor) -> None:
    """A team may queue up to its `queued_jobs` quota; how many run at once (`concurrent_jobs`) is kept
    where a worker claims a job (workers/jobdb.py: claim_next), so queued work waits its turn there."""
    # The quota row stays locked until the caller's transaction commits: two requests at once count
    # the queued jobs one after the other, so they cannot both take the last free place.
    quota = Quota.objects.select_for_update().filter(tenant=actor.tenant).first()
    if quota is None:
        return
    queued = Job.objects.for_tenant(actor.tenant).filter(status=JobStatus.QUEUED).count()
    if queued >= quota.queued_jobs:
        raise QuotaExceeded(
            f"This tenant may have {quota.queued_jobs} jobs queued (waiting to start); {queued} are "
            f"queued now, and up to {quota.concurrent_jobs} run at once. Wait for one to start or cancel one."
        )


@transaction.atomic
def create_job(
    actor: Actor,
    kind: str,
    prompt: TaskPrompt,
    spec: dict[str, Any],
    dataset_version,
    target: PromptVersion | None = None,
) -> Job:
    """tune/ensemble: a new pending version to train; evaluate: scores `target` on `dataset_version`."""
    _check_quota(actor)
    TaskPrompt.objects.for_tenant(actor.tenant).select_for_update().filter(
        pk=prompt.pk
    ).first()  # serialise numbering
    if kind == JobKind.EVALUATE:
        version = target
    else:
        version = PromptVersion.objects.create(
            tenant=actor.tenant,
            prompt=prompt,
            number=prompt.next_version_number(),
            method=spec["method"],
            hyperparameters=spec,
            dataset_version=dataset_version,
            ensemble_size=spec.get("members", 1) if kind == JobKind.ENSEMBLE else 1,
        )
    job = Job.objects.create(
        tenant=actor.tenant, kind=kind, spec=spec, prompt_version=version, dataset_version=dataset_version
    )
    record(
        actor,
        actor.tenant,
        AuditAction.JOB_CREATE,
        job,
        after={"kind": kind, "prompt": prompt.name, "version": version.number},
    )
    _enqueue_after_commit(job)
    return job


def _worker_gone(job: Job) -> bool:
    """A running job whose heartbeat is older than the timeout has no worker left to act on a flag."""
    timeout = timedelta(seconds=settings.SOFTSERVE_JOB_POLICY.heartbeat_timeout_s)
    return job.heartbeat_at is None or job.heartbeat_at < timezone.now() - timeout


@transaction.atomic
def cancel_job(actor: Actor, job: Job) -> Job:
    """A queued job, or a running one whose worker is gone, is cancelled at once (its quota slot freed);
    a running one gets a flag its worker checks between steps. The row lock orders a cancel against the
    worker's final write, and cancel wins: a success is only recorded while no cancel is requested."""
    job = Job.objects.for_tenant(actor.tenant).select_for_update().get(pk=job.pk)
    if not job.is_active:
        raise Invalid({"status": [f"The job is {job.status}; only queued or running jobs cancel."]})
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED or _worker_gone(job):
        job.status, job.finished_at = JobStatus.CANCELLED, timezone.now()
        if job.kind != JobKind.EVALUATE:
            PromptVersion.objects.for_tenant(actor.tenant).filter(pk=job.prompt_version_id).update(
                status=VersionStatus.CANCELLED
            )
    job.save(update_fields=["cancel_requested", "status", "finished_at"])
    record(actor, actor.tenant, AuditAction.JOB_CANCEL, job, after={"status": job.status})
    return job


@transaction.atomic
def retry_job(actor: Actor, job: Job) -> Job:
    job = Job.objects.for_tenant(actor.tenant).select_for_update().get(pk=job.pk)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Invalid({"status": [f"The job is {job.status}; only failed or cancelled jobs retry."]})
    _check_quota(actor)
    job.status, job.error, job.cancel_requested, job.finished_at = JobStatus.QUEUED, "", False, None
    job.queued_at = timezone.now()  # the reconciler's lost-message clock starts again
    job.save(update_fields=["status", "error", "cancel_requested", "finished_at", "queued_at"])
    if job.kind != JobKind.EVALUATE:
        PromptVersion.objects.for_tenant(actor.tenant).filter(pk=job.prompt_version_id).update(
            status=VersionStatus.PENDING
        )
    record(actor, actor.tenant, AuditAction.JOB_RETRY, job, after={"status": JobStatus.QUEUED})
    _enqueue_after_commit(job)
    return job


@transaction.atomic
def requeue_stalled_job(actor: Actor, job: Job, stale_after_s: float) -> Job:
    """A running job whose heartbeat stopped goes back to the queue now (what the reconciler does on its
    own clock); the next worker resumes it from its last checkpoint. A live job is refused."""
    job = Job.objects.for_tenant(actor.tenant).select_for_update().get(pk=job.pk)
    stale_before = timezone.now() - timedelta(seconds=stale_after_s)
    if job.status != JobStatus.RUNNING or (job.heartbeat_at and job.heartbeat_at >= stale_before):
        raise Invalid(
            {"status": [f"The job is {job.status} with a live heartbeat; only stalled jobs are re-queued."]}
        )
    if job.cancel_requested:  # asked to cancel: no worker is left to do it, so it ends here
        return cancel_job(actor, job)
    before = {"status": job.status, "worker": job.worker}
    job.status, job.worker, job.queued_at = JobStatus.QUEUED, "", timezone.now()
    job.save(update_fields=["status", "worker", "queued_at"])
    record(
        actor, actor.tenant, AuditAction.JOB_REQUEUE, job, before=before, after={"status": JobStatus.QUEUED}
    )
    _enqueue_after_commit(job)
    return job
