"""Registry writes: prompts, alias moves (audited, with history) and deletions."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from softserve.datasets.models import DatasetVersion
from softserve.producer import send
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt, VersionStatus
from softserve.storage import delete_tree, prompt_prefix
from softserve.tenancy.actions import record
from softserve.tenancy.permissions import Actor
from workers.contracts import QUEUE_DEFAULT, TASK_EVALUATE_VERSION, ParityStatus

logger = logging.getLogger(__name__)
# Pinning a set re-scores this many of the prompt's newest ready versions (the ones gates compare).
EVALUATE_ON_PIN = 10


@transaction.atomic
def create_prompt(actor: Actor, **fields) -> TaskPrompt:
    if TaskPrompt.objects.for_tenant(actor.tenant).filter(name=fields["name"]).exists():
        raise ValidationError({"name": [f"A prompt named {fields['name']!r} exists already."]})
    prompt = TaskPrompt.objects.create(tenant=actor.tenant, **fields)
    record(actor, actor.tenant, "prompt.create", prompt, after={"name": prompt.name})
    return prompt


@transaction.atomic
def delete_prompt(actor: Actor, prompt: TaskPrompt) -> None:
    record(
        actor,
        actor.tenant,
        "prompt.delete",
        prompt,
        before={"name": prompt.name, "versions": prompt.versions.count()},
    )
    prefix = prompt_prefix(actor.tenant.pk, prompt.pk)
    prompt.aliases.all().delete()
    prompt.delete()
    # Artifacts and checkpoints go once the rows are gone for good (a rollback keeps both).
    transaction.on_commit(lambda: _delete_objects(prefix))


def _delete_objects(prefix: str) -> None:
    try:
        count = delete_tree(prefix)
    except Exception:
        # The rows are deleted already; the orphaned objects are logged for an operator to sweep.
        logger.exception("could not delete the stored objects under %s", prefix)
        return
    logger.info("deleted %d stored objects under %s", count, prefix)


@transaction.atomic
def move_alias(actor: Actor, prompt: TaskPrompt, name: str, version: PromptVersion) -> Alias:
    """Point `name` at `version` (creating the alias if new); rollback is a move back."""
    if version.status != VersionStatus.READY:
        raise ValidationError({"version": [f"Version {version.number} is {version.status}, not ready."]})
    alias = (
        Alias.objects.for_tenant(actor.tenant).select_for_update().filter(prompt=prompt, name=name).first()
    )
    before = {"alias": name, "version": alias.version.number} if alias else None
    if alias is None:
        alias = Alias.objects.create(tenant=actor.tenant, prompt=prompt, name=name, version=version)
    else:
        alias.version = version
        alias.save(update_fields=["version", "updated_at"])
    record(
        actor,
        actor.tenant,
        "alias.move",
        alias,
        before=before,
        after={"alias": name, "version": version.number},
    )
    return alias


@transaction.atomic
def delete_alias(actor: Actor, alias: Alias) -> None:
    record(
        actor,
        actor.tenant,
        "alias.delete",
        alias,
        before={"alias": alias.name, "version": alias.version.number},
    )
    alias.delete()


def _send_evaluations(version_ids: list[str]) -> None:
    """After commit: the versions are pending whatever happens here; a send that fails is logged, and the
    workers' reconciler re-sends an evaluation pending longer than SOFTSERVE_REQUEUE_UNCLAIMED_S."""
    for version_id in version_ids:
        try:
            send(TASK_EVALUATE_VERSION, QUEUE_DEFAULT, version_id=version_id)
        except Exception:
            logger.exception("version %s: its evaluation was not queued", version_id)


def _queue(versions: list[PromptVersion]) -> None:
    """Pending, with the time it was queued (the workers' reconciler re-sends one pending too long: a
    message lost on the way); the last result stays beside it until the new one replaces it."""
    queued_at = timezone.now().isoformat(timespec="seconds")
    for version in versions:
        version.parity = ParityStatus.PENDING
        version.evaluation = {**(version.evaluation or {}), "queued_at": queued_at}
        version.save(update_fields=["parity", "evaluation"])
    ids = [str(v.pk) for v in versions]
    transaction.on_commit(lambda: _send_evaluations(ids))


@transaction.atomic
def pin_eval_set(actor: Actor, prompt: TaskPrompt, dataset: DatasetVersion | None) -> TaskPrompt:
    """Pin (or, with None, unpin) the prompt's evaluation set; pinning queues the evaluation of its
    newest ready versions (EVALUATE_ON_PIN) so gates can compare them on it. Unpinning keeps what was
    scored (each evaluation names its set) and ends what is still pending."""
    prompt = TaskPrompt.objects.for_tenant(actor.tenant).select_for_update().get(pk=prompt.pk)
    before = str(prompt.eval_dataset_version_id) if prompt.eval_dataset_version_id else None
    prompt.eval_dataset_version = dataset
    prompt.save(update_fields=["eval_dataset_version"])
    versions = PromptVersion.objects.for_tenant(actor.tenant).filter(prompt=prompt)
    if dataset is None:
        versions.filter(parity=ParityStatus.PENDING).update(parity=ParityStatus.NONE)
    else:
        ready = versions.filter(status=VersionStatus.READY).exclude(artifact_key="").order_by("-number")
        _queue(list(ready.only("pk", "evaluation", "parity")[:EVALUATE_ON_PIN]))
    record(
        actor,
        actor.tenant,
        "prompt.eval_set",
        prompt,
        before={"eval_dataset_version": before},
        after={"eval_dataset_version": str(dataset.pk) if dataset else None},
    )
    return prompt


@transaction.atomic
def evaluate_version(actor: Actor, prompt: TaskPrompt, version: PromptVersion) -> PromptVersion:
    """Re-score one ready version on the prompt's evaluation set (queued; the version shows pending)."""
    if prompt.eval_dataset_version_id is None:
        raise ValidationError(
            {"eval_dataset_version": [f"{prompt.name} pins no evaluation set: pin one first."]}
        )
    if version.status != VersionStatus.READY or not version.artifact_key:
        raise ValidationError({"version": [f"Version {version.number} is {version.status}, not ready."]})
    _queue([version])
    record(
        actor,
        actor.tenant,
        "version.evaluate",
        version,
        after={"version": version.number, "eval_dataset_version": str(prompt.eval_dataset_version_id)},
    )
    return version


@transaction.atomic
def update_prompt(actor: Actor, prompt: TaskPrompt, **changes) -> TaskPrompt:
    """Change a prompt's settings (those the PATCH serializer lets through), audited with before/after.

    Turning `keep_inputs` off forgets the inputs its predictions kept, in the same transaction: a team that
    stops keeping inputs expects the ones already kept gone now, not after the retention period."""
    from softserve.serving.models import Prediction  # serving's models point at prompts': import here

    changed = {field: value for field, value in changes.items() if getattr(prompt, field) != value}
    if not changed:
        return prompt
    before = {field: _shown(getattr(prompt, field)) for field in changed}
    for field, value in changed.items():
        setattr(prompt, field, value)
    prompt.save(update_fields=list(changed))
    forgotten = 0
    if changed.get("keep_inputs") is False:
        forgotten = (
            Prediction.objects.for_tenant(actor.tenant)
            .filter(prompt=prompt, inputs__isnull=False)
            .update(inputs=None)
        )
    after = {field: _shown(value) for field, value in changed.items()}
    if forgotten:
        after["inputs_forgotten"] = forgotten
    record(actor, actor.tenant, "prompt.update", prompt, before=before, after=after)
    return prompt


def _shown(value):
    """A setting as the audit log keeps it (JSON): a model instance by its id."""
    return str(value.pk) if hasattr(value, "pk") else value


@transaction.atomic
def change_prompt(actor: Actor, prompt: TaskPrompt, **changes) -> TaskPrompt:
    """PATCH /prompts/{name}: the evaluation set (pinned or unpinned) and the prompt's settings, together
    or not at all."""
    if "eval_dataset_version" in changes:
        prompt = pin_eval_set(actor, prompt, changes.pop("eval_dataset_version"))
    if changes:
        prompt = update_prompt(actor, prompt, **changes)
    return prompt
