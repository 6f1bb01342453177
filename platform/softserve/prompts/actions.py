"""Registry writes: prompts, alias moves (audited, with history) and deletions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.contracts import QUEUE_DEFAULT, TASK_EVALUATE_VERSION, AuditAction, ParityStatus, WebhookEvent
from softserve.datasets.models import DatasetVersion
from softserve.errors import Conflict, Forbidden, Invalid
from softserve.producer import send
from softserve.prompts import gates
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt, VersionStatus
from softserve.storage import delete_tree, prompt_prefix
from softserve.tenancy.actions import record
from softserve.tenancy.permissions import Actor
from softserve.webhooks.events import emit

logger = logging.getLogger(__name__)
# Pinning a set re-scores this many of the prompt's newest ready versions (the ones gates compare).
EVALUATE_ON_PIN = 10


@transaction.atomic
def create_prompt(actor: Actor, **fields) -> TaskPrompt:
    if TaskPrompt.objects.for_tenant(actor.tenant).filter(name=fields["name"]).exists():
        raise Invalid({"name": [f"A prompt named {fields['name']!r} exists already."]})
    prompt = TaskPrompt.objects.create(tenant=actor.tenant, **fields)
    record(actor, actor.tenant, AuditAction.PROMPT_CREATE, prompt, after={"name": prompt.name})
    return prompt


@transaction.atomic
def delete_prompt(actor: Actor, prompt: TaskPrompt) -> None:
    record(
        actor,
        actor.tenant,
        AuditAction.PROMPT_DELETE,
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


class GateFailed(Conflict):
    """`gate_failed`: the alias's gate refused the move; `gate` in `extra` holds the failing verdict's
    figures (the API's error body carries them beside status, code, message and fields)."""

    code = "gate_failed"

    def __init__(self, verdicts: list[gates.Verdict]) -> None:
        first = verdicts[0]
        super().__init__(
            f"The gate refused v{first.version}: {' '.join(first.reasons)} An owner or admin may move it "
            "anyway with an override_reason.",
            extra={"gate": first.as_dict(), "gates": [v.as_dict() for v in verdicts]},
        )


@dataclass
class AliasChange:
    """What one alias PUT asks for. `version` or `split` reroute traffic (neither: routing kept);
    `shadow` applies when `set_shadow`; `policy` and `protected` when not None."""

    version: PromptVersion | None = None
    split: list[dict[str, int]] | None = None
    versions: dict[int, PromptVersion] = field(default_factory=dict)  # every version the change names
    shadow: PromptVersion | None = None
    set_shadow: bool = False
    policy: dict | None = None
    protected: bool | None = None
    override_reason: str = ""


MANAGE = "manage_aliases"  # owners and admins: protected aliases, policies, protection, overrides


def is_protected(alias: Alias | None, name: str) -> bool:
    """A new alias is protected when its name is in PROTECTED_ALIASES (`production` by default)."""
    return alias.protected if alias is not None else name in settings.PROTECTED_ALIASES


def may_move(actor: Actor, alias: Alias | None, name: str) -> bool:
    return actor.may(MANAGE) or (actor.may("move_aliases") and not is_protected(alias, name))


def _require_manager(actor: Actor, why: str) -> None:
    if not actor.may(MANAGE):
        raise Forbidden(f"{why} Ask an owner or admin of the team.")


def alias_view(alias: Alias) -> dict[str, Any]:
    """What the audit log keeps of an alias, before and after a change."""
    return {
        "alias": alias.name,
        "version": alias.version.number,
        "split": list(alias.split or []),
        "shadow": alias.shadow.number if alias.shadow_id else None,
        "policy": dict(alias.policy or {}),
        "protected": alias.protected,
    }


def _routing(view: dict[str, Any] | None) -> tuple:
    if view is None:
        return ()
    return (view["version"], tuple((e["version"], e["weight"]) for e in view["split"]), view["shadow"])


def _primary(split: list[dict[str, int]], before: int | None) -> int:
    """The split's heaviest version; a tie keeps the version the alias pointed at, else the lowest."""
    top = max(e["weight"] for e in split)
    tied = sorted(e["version"] for e in split if e["weight"] == top)
    return before if before in tied else tied[0]


def move_alias(actor: Actor, prompt: TaskPrompt, name: str, change: AliasChange | PromptVersion) -> Alias:
    """Point `name` at a version, a weighted split and/or a shadow (creating the alias if new), or change
    its policy or protection: one transaction, one audit row, `alias.moved` announced when the routing
    changes. A move that gives traffic to a version that had none passes the alias's gate first; a
    refusal is audited and announced (`gate.failed`) in a transaction of its own, then raised as 409."""
    if isinstance(change, PromptVersion):
        change = AliasChange(version=change, versions={change.number: change})
    reason = change.override_reason.strip()
    if reason:
        _require_manager(actor, "Only owners and admins override a gate.")
    if change.protected is not None:
        _require_manager(actor, "Only owners and admins protect or unprotect an alias.")
    if change.policy is not None:
        _require_manager(actor, "Only owners and admins set an alias's gate and canary policy.")
    for version in change.versions.values():
        if version.status != VersionStatus.READY:
            raise Invalid({"version": [f"Version {version.number} is {version.status}, not ready."]})
    with transaction.atomic():
        alias = _locked(actor, prompt, name)
        if alias is None:
            # Creating: two creators of one name would both insert (a unique violation); the prompt's row
            # lock makes the second wait, and then find the first's alias and move it.
            TaskPrompt.objects.for_tenant(actor.tenant).select_for_update().filter(pk=prompt.pk).first()
            alias = _locked(actor, prompt, name)
        if is_protected(alias, name) and not actor.may(MANAGE):
            raise Forbidden(
                f"{name} is a protected alias: only owners and admins move, split, shadow or delete it."
            )
        before = alias_view(alias) if alias else None
        primary, split = _route(alias, change)
        shadow = _shadow(alias, change, primary, split)
        policy = change.policy if change.policy is not None else (alias.policy if alias else {})
        verdicts = _verdicts(prompt, alias, primary, split, policy, change)
        failed = [v for v in verdicts if not v.passed]
        if not failed or reason:
            return _apply(
                actor, prompt, name, alias, before, primary, split, shadow, policy, change, verdicts
            )
    _refuse(actor, prompt, name, failed)
    logger.info("gate refused %s@%s -> v%s: %s", prompt.name, name, failed[0].version, failed[0].reasons)
    raise GateFailed(failed)


def _locked(actor: Actor, prompt: TaskPrompt, name: str) -> Alias | None:
    return (
        Alias.objects.for_tenant(actor.tenant)
        .select_for_update(of=("self",))  # the alias row only (its shadow join may be empty)
        .select_related("version", "shadow")
        .filter(prompt=prompt, name=name)
        .first()
    )


def _verdicts(
    prompt: TaskPrompt,
    alias: Alias | None,
    primary: PromptVersion,
    split: list[dict[str, int]],
    policy: dict,
    change: AliasChange,
    always: bool = False,
) -> list[gates.Verdict]:
    """The gate's verdict on each version the change gives traffic that had none, against the current
    primary; only under a gate unless `always` (the UI shows the figures of an ungated move too)."""
    new = gates.routed_versions(primary.number, split)
    if alias is not None:
        new -= gates.routed_versions(alias.version.number, alias.split or [])
    if not new or not (always or gates.has_gate(policy)):
        return []
    eval_set = str(prompt.eval_dataset_version_id) if prompt.eval_dataset_version_id else None
    current = alias.version if alias else None
    by_number = {**change.versions, primary.number: primary}
    return [gates.verdict(policy, by_number[n], current, eval_set) for n in sorted(new)]


def preview(prompt: TaskPrompt, alias: Alias | None, name: str, change: AliasChange) -> list[gates.Verdict]:
    """The verdicts move_alias would reach on `change`, gated or not, writing nothing: the UI shows them
    before the move. The same field errors as the move (a split of versions that are not ready…)."""
    primary, split = _route(alias, change)
    _shadow(alias, change, primary, split)
    policy = change.policy if change.policy is not None else (alias.policy if alias else {})
    return _verdicts(prompt, alias, primary, split, policy, change, always=True)


def version_verdict(prompt: TaskPrompt, alias: Alias, candidate: PromptVersion) -> gates.Verdict:
    """The gate's verdict on moving `alias` wholly to `candidate` (GET …/gate?version=N); `gated` says
    whether that move would be checked (a gate, and traffic new to the version)."""
    eval_set = str(prompt.eval_dataset_version_id) if prompt.eval_dataset_version_id else None
    result = gates.verdict(alias.policy, candidate, alias.version, eval_set)
    routed = gates.routed_versions(alias.version.number, alias.split or [])
    result.gated = result.gated and candidate.number not in routed
    return result


def _route(alias: Alias | None, change: AliasChange) -> tuple[PromptVersion, list[dict[str, int]]]:
    """The primary and the split after the change (a split of one version is no split)."""
    if change.split:
        ordered = sorted(change.split, key=lambda e: (-e["weight"], e["version"]))
        number = _primary(ordered, alias.version.number if alias else None)
        return change.versions[number], ordered if len(ordered) > 1 else []
    if change.version is not None:
        return change.version, []
    if alias is None:
        raise Invalid({"version": ["A new alias needs a `version` or `versions`."]})
    return alias.version, list(alias.split or [])


def _shadow(
    alias: Alias | None, change: AliasChange, primary: PromptVersion, split: list[dict[str, int]]
) -> PromptVersion | None:
    """The shadow after the change. A shadow that now takes traffic is refused when named, and dropped
    when kept from before (promoting the shadowed version ends its shadowing)."""
    routed = gates.routed_versions(primary.number, split)
    if change.set_shadow:
        if change.shadow is not None and change.shadow.number in routed:
            raise Invalid(
                {"shadow": [f"v{change.shadow.number} takes traffic here; a shadow must be another version."]}
            )
        return change.shadow
    kept = alias.shadow if alias and alias.shadow_id else None
    return None if kept is None or kept.number in routed else kept


def _apply(
    actor: Actor,
    prompt: TaskPrompt,
    name: str,
    alias: Alias | None,
    before: dict | None,
    primary: PromptVersion,
    split: list[dict[str, int]],
    shadow: PromptVersion | None,
    policy: dict,
    change: AliasChange,
    verdicts: list[gates.Verdict],
) -> Alias:
    protected = change.protected if change.protected is not None else is_protected(alias, name)
    if alias is None:
        alias = Alias(tenant=actor.tenant, prompt=prompt, name=name)
    alias.version, alias.split, alias.shadow = primary, split, shadow
    alias.policy, alias.protected = policy, protected
    alias.save()
    after: dict[str, Any] = alias_view(alias)
    if verdicts:
        after["gate"] = [v.as_dict() for v in verdicts]
    overridden = [v for v in verdicts if not v.passed]
    if overridden:
        after["override_reason"] = change.override_reason.strip()
    moved = _routing(before) != _routing(after)
    record(
        actor,
        actor.tenant,
        AuditAction.ALIAS_MOVE if moved else AuditAction.ALIAS_UPDATE,
        alias,
        before=before,
        after=after,
    )
    if moved:
        emit(
            actor.tenant,
            WebhookEvent.ALIAS_MOVED,
            {
                "prompt": prompt.name,
                "alias": name,
                "version": primary.number,
                "split": split,
                "shadow": after["shadow"],
                "before": {k: before[k] for k in ("version", "split", "shadow")} if before else None,
            },
        )
    if overridden:
        logger.warning(
            "gate overridden on %s@%s -> v%s: %s",
            prompt.name,
            name,
            overridden[0].version,
            after["override_reason"],
        )
        _announce_gate(actor, prompt, name, overridden, after["override_reason"])
    return alias


def _announce_gate(
    actor: Actor, prompt: TaskPrompt, name: str, failed: list[gates.Verdict], override_reason: str
) -> None:
    emit(
        actor.tenant,
        WebhookEvent.GATE_FAILED,
        {
            "prompt": prompt.name,
            "alias": name,
            "gate": failed[0].as_dict(),
            "overridden": bool(override_reason),
            "override_reason": override_reason or None,
        },
    )


@transaction.atomic
def _refuse(actor: Actor, prompt: TaskPrompt, name: str, failed: list[gates.Verdict]) -> None:
    """A refused move leaves the alias as it was; the refusal itself is audited and announced."""
    record(
        actor,
        actor.tenant,
        AuditAction.ALIAS_GATE_FAILED,
        prompt,
        after={"alias": name, "gate": [v.as_dict() for v in failed]},
    )
    _announce_gate(actor, prompt, name, failed, "")


@transaction.atomic
def delete_alias(actor: Actor, alias: Alias) -> None:
    if alias.protected and not actor.may(MANAGE):
        raise Forbidden(
            f"{alias.name} is a protected alias: only owners and admins move, split, shadow or delete it."
        )
    record(actor, actor.tenant, AuditAction.ALIAS_DELETE, alias, before=alias_view(alias))
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
        AuditAction.PROMPT_EVAL_SET,
        prompt,
        before={"eval_dataset_version": before},
        after={"eval_dataset_version": str(dataset.pk) if dataset else None},
    )
    return prompt


@transaction.atomic
def evaluate_version(actor: Actor, prompt: TaskPrompt, version: PromptVersion) -> PromptVersion:
    """Re-score one ready version on the prompt's evaluation set (queued; the version shows pending)."""
    if prompt.eval_dataset_version_id is None:
        raise Invalid({"eval_dataset_version": [f"{prompt.name} pins no evaluation set: pin one first."]})
    if version.status != VersionStatus.READY or not version.artifact_key:
        raise Invalid({"version": [f"Version {version.number} is {version.status}, not ready."]})
    _queue([version])
    record(
        actor,
        actor.tenant,
        AuditAction.VERSION_EVALUATE,
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
    before = {name: _shown(getattr(prompt, name)) for name in changed}
    for name, value in changed.items():
        setattr(prompt, name, value)
    prompt.save(update_fields=list(changed))
    forgotten = 0
    if changed.get("keep_inputs") is False:
        forgotten = (
            Prediction.objects.for_tenant(actor.tenant)
            .filter(prompt=prompt, inputs__isnull=False)
            .update(inputs=None)
        )
    after = {name: _shown(value) for name, value in changed.items()}
    if forgotten:
        after["inputs_forgotten"] = forgotten
    record(actor, actor.tenant, AuditAction.PROMPT_UPDATE, prompt, before=before, after=after)
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
