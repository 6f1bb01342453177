"""Job writes: the job row and its pending prompt version in one transaction, the task sent on commit."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import Throttled, ValidationError

from softserve.jobs.models import ACTIVE, Job
from softserve.producer import send_job
from softserve.prompts.models import PromptVersion, TaskPrompt, VersionStatus
from softserve.tenancy.actions import record
from softserve.tenancy.models import Quota
from softserve.tenancy.permissions import Actor
from workers.contracts import JobKind, JobStatus

logger = logging.getLogger(__name__)


class QuotaExceeded(Throttled):
    default_detail = "Too many jobs at once for this tenant."


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
    # The quota row stays locked until the caller's transaction commits: two requests at once count
    # the active jobs one after the other, so they cannot both take the last free slot.
    quota = Quota.objects.select_for_update().filter(tenant=actor.tenant).first()
    active = Job.objects.for_tenant(actor.tenant).filter(status__in=ACTIVE).count()
    if quota and active >= quota.concurrent_jobs:
        raise QuotaExceeded(
            detail=f"This tenant may run {quota.concurrent_jobs} jobs at once; {active} are "
            "queued or running. Wait for one to finish or cancel one."
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
        "job.create",
        job,
        after={"kind": kind, "prompt": prompt.name, "version": version.number},
    )
    _enqueue_after_commit(job)
    return job


@transaction.atomic
def cancel_job(actor: Actor, job: Job) -> Job:
    """A queued job is cancelled at once; a running one gets a flag its worker checks between steps."""
    job = Job.objects.for_tenant(actor.tenant).select_for_update().get(pk=job.pk)
    if not job.is_active:
        raise ValidationError({"status": [f"The job is {job.status}; only queued or running jobs cancel."]})
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:
        job.status, job.finished_at = JobStatus.CANCELLED, timezone.now()
        if job.kind != JobKind.EVALUATE:
            PromptVersion.objects.for_tenant(actor.tenant).filter(pk=job.prompt_version_id).update(
                status=VersionStatus.CANCELLED
            )
    job.save(update_fields=["cancel_requested", "status", "finished_at"])
    record(actor, actor.tenant, "job.cancel", job, after={"status": job.status})
    return job


@transaction.atomic
def retry_job(actor: Actor, job: Job) -> Job:
    job = Job.objects.for_tenant(actor.tenant).select_for_update().get(pk=job.pk)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValidationError({"status": [f"The job is {job.status}; only failed or cancelled jobs retry."]})
    _check_quota(actor)
    job.status, job.error, job.cancel_requested, job.finished_at = JobStatus.QUEUED, "", False, None
    job.queued_at = timezone.now()  # the reconciler's lost-message clock starts again
    job.save(update_fields=["status", "error", "cancel_requested", "finished_at", "queued_at"])
    if job.kind != JobKind.EVALUATE:
        PromptVersion.objects.for_tenant(actor.tenant).filter(pk=job.prompt_version_id).update(
            status=VersionStatus.PENDING
        )
    record(actor, actor.tenant, "job.retry", job, after={"status": JobStatus.QUEUED})
    _enqueue_after_commit(job)
    return job


@transaction.atomic
def requeue_stalled_job(actor: Actor, job: Job, stale_after_s: float) -> Job:
    """A running job whose heartbeat stopped goes back to the queue now (what the reconciler does on its
    own clock); the next worker resumes it from its last checkpoint. A live job is refused."""
    job = Job.objects.for_tenant(actor.tenant).select_for_update().get(pk=job.pk)
    stale_before = timezone.now() - timedelta(seconds=stale_after_s)
    if job.status != JobStatus.RUNNING or (job.heartbeat_at and job.heartbeat_at >= stale_before):
        raise ValidationError(
            {"status": [f"The job is {job.status} with a live heartbeat; only stalled jobs are re-queued."]}
        )
    before = {"status": job.status, "worker": job.worker}
    job.status, job.worker, job.queued_at = JobStatus.QUEUED, "", timezone.now()
    job.save(update_fields=["status", "worker", "queued_at"])
    record(actor, actor.tenant, "job.requeue", job, before=before, after={"status": "queued"})
    _enqueue_after_commit(job)
    return job
