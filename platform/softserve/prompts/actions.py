"""Registry writes: prompts, alias moves (audited, with history) and deletions."""

from __future__ import annotations

import logging

from django.db import transaction
from rest_framework.exceptions import ValidationError

from softserve.prompts.models import Alias, PromptVersion, TaskPrompt, VersionStatus
from softserve.storage import delete_tree, prompt_prefix
from softserve.tenancy.actions import record
from softserve.tenancy.permissions import Actor

logger = logging.getLogger(__name__)


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
