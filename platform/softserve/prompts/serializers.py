from __future__ import annotations

import math
import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.contracts import TaskType, VersionStatus
from common.task import template_fields
from softserve.datasets.models import DatasetVersion
from softserve.prompts import downloads, evalsets, gates
from softserve.prompts.actions import AliasChange
from softserve.prompts.models import NAME_PATTERN, Alias, PromptVersion, TaskPrompt
from softserve.tenancy.models import Tenant

# The per-row lists of a version's evaluation: only its detail view carries them.
EVALUATION_ROWS = ("predictions", "gold")
NAME_ERROR = {"invalid": "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."}


class PromptVersionSerializer(serializers.ModelSerializer):
    """A version; `metrics.dev` holds its dev figures: for classification accuracy, macro_f1, n and (for
    versions trained or evaluated since they were added) per_label {label: precision, recall, f1,
    support} and confusion {labels, matrix (rows gold, columns predicted), folded}; for generation
    exact_match. A trained version's metrics also say which checkpoint it keeps: best_step (see the
    field), steps_run and stop_reason. The list reads prompt names from the joined prompt
    (`select_related("prompt")`)."""

    dataset_version = serializers.UUIDField(source="dataset_version_id", read_only=True)
    downloads = serializers.SerializerMethodField(
        help_text="Per format (softserve, peft): its URL, or null and the reason it has none."
    )
    nearest_tokens = serializers.SerializerMethodField(help_text="URL of the nearest-vocabulary-token view.")
    parity = serializers.CharField(
        read_only=True,
        help_text="Train/serve parity on the prompt's evaluation set: none (no set pinned), pending, "
        "passed, parity_failed (the serving pool's score differs from the training-time dev score by more "
        "than the tolerance) or error (evaluation.error says why).",
    )
    evaluation = serializers.SerializerMethodField(
        help_text="The score on the prompt's evaluation set through the serving pool: dataset_version, "
        "rows, metrics (accuracy, macro_f1, per_label; generation: exact_match), dev_metrics (training "
        "time), serving_dev_metrics (the dev rows re-scored by the pool), gap, gap_basis, tolerance, "
        "evaluated_at, error; a version's own URL adds predictions and gold (one per row, in order)."
    )
    best_step = serializers.SerializerMethodField(
        help_text="The training step of the checkpoint this version keeps: early stopping keeps the one "
        "with the best metric on the job's dev split (an ensemble: one step per member). Null until "
        "training ends. Also in metrics.best_step, beside steps_run and stop_reason."
    )

    class Meta:
        model = PromptVersion
        fields = [
            "id",
            "number",
            "created_at",
            "method",
            "hyperparameters",
            "dataset_version",
            "ensemble_size",
            "status",
            "metrics",
            "best_step",
            "artifact_key",
            "artifact_sha256",
            "downloads",
            "nearest_tokens",
            "parity",
            "evaluation",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object"})
    def get_evaluation(self, version: PromptVersion) -> dict:
        """Lists leave out the per-row predictions and gold labels (one per evaluation-set row): the
        version's own page (detail) carries them."""
        evaluation = dict(version.evaluation or {})
        if not self.context.get("full_evaluation"):
            for key in EVALUATION_ROWS:
                evaluation.pop(key, None)
        return evaluation

    def _url(self, version: PromptVersion, name: str, **extra) -> str:
        return reverse(name, kwargs={"name": version.prompt.name, "number": version.number, **extra})

    def get_downloads(self, version: PromptVersion) -> dict[str, dict[str, str | None]]:
        out = {}
        for fmt in downloads.FORMATS.values():
            reason = downloads.unavailable(version, fmt)
            url = None if reason else self._url(version, "prompt-version-artifact", fmt=fmt.name)
            out[fmt.name] = {"url": url, "unavailable": reason}
        return out

    @extend_schema_field(
        {
            "oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}],
            "nullable": True,
        }
    )
    def get_best_step(self, version: PromptVersion) -> int | list[int] | None:
        return (version.metrics or {}).get("best_step")

    def get_nearest_tokens(self, version: PromptVersion) -> str:
        return self._url(version, "prompt-version-tokens")


class PromptSerializer(serializers.ModelSerializer):
    name = serializers.RegexField(NAME_PATTERN, max_length=100, error_messages=NAME_ERROR)
    base_model = serializers.CharField(required=False)
    aliases = serializers.SerializerMethodField()
    eval_dataset_version = serializers.UUIDField(
        source="eval_dataset_version_id",
        read_only=True,
        allow_null=True,
        help_text="The pinned evaluation set (a dataset version id; PATCH to pin or unpin), or null.",
    )

    class Meta:
        model = TaskPrompt
        fields = [
            "id",
            "name",
            "task_type",
            "template",
            "labels",
            "verbalizer",
            "base_model",
            "created_at",
            "aliases",
            "eval_dataset_version",
            "keep_inputs",
            "input_retention_days",
        ]
        # Settings change through PATCH (PromptUpdateSerializer), not at creation.
        read_only_fields = [
            "id",
            "created_at",
            "aliases",
            "eval_dataset_version",
            "keep_inputs",
            "input_retention_days",
        ]

    def get_aliases(self, prompt: TaskPrompt) -> dict[str, int]:
        # prompt.aliases.all(): the list view prefetches them with their versions (one query per page).
        return {alias.name: alias.version.number for alias in prompt.aliases.all()}

    def validate_template(self, value: str) -> str:
        most = settings.LIMITS.max_template_chars
        if len(value) > most:
            raise serializers.ValidationError(f"{len(value)} characters; at most {most}.")
        try:
            template_fields(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_labels(self, value) -> list[str]:
        limits = settings.LIMITS
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise serializers.ValidationError("A list of label strings.")
        if len(value) > limits.max_labels:
            raise serializers.ValidationError(f"{len(value)} labels; at most {limits.max_labels}.")
        long = [i for i, x in enumerate(value) if len(x) > limits.max_label_chars]
        if long:
            raise serializers.ValidationError(
                f"Label {long[0]} is {len(value[long[0]])} characters; at most {limits.max_label_chars}."
            )
        return value

    def validate_verbalizer(self, value) -> dict[str, str]:
        limits = settings.LIMITS
        if not isinstance(value, dict) or not all(isinstance(w, str) for w in value.values()):
            raise serializers.ValidationError("An object from label to its words (a string).")
        if len(value) > limits.max_labels:
            raise serializers.ValidationError(f"{len(value)} entries; at most {limits.max_labels}.")
        for label, words in value.items():
            if len(words) > limits.max_verbalizer_chars or len(words.split()) > limits.max_verbalizer_words:
                raise serializers.ValidationError(
                    f"The words for {limits.echo(label)} are over the limit: at most "
                    f"{limits.max_verbalizer_words} words and {limits.max_verbalizer_chars} characters."
                )
        return value

    def validate_base_model(self, value: str) -> str:
        if value not in settings.SOFTSERVE_BASE_MODELS:
            raise serializers.ValidationError(f"Allowed base models: {settings.SOFTSERVE_BASE_MODELS}.")
        return value

    def validate(self, data: dict) -> dict:
        data.setdefault("base_model", settings.SOFTSERVE_BASE_MODELS[0])
        labels, verbalizer = data.get("labels") or [], data.get("verbalizer") or {}
        if data["task_type"] == TaskType.CLASSIFICATION:
            if (
                len(labels) < 2
                or len(set(labels)) != len(labels)
                or not all(isinstance(x, str) and x.strip() for x in labels)
            ):
                raise serializers.ValidationError({"labels": ["Two or more distinct, non-empty labels."]})
            unknown = sorted(set(verbalizer) - set(labels))
            if unknown:
                raise serializers.ValidationError(
                    {"verbalizer": [f"Labels {settings.LIMITS.echo(unknown)} are not in the label set."]}
                )
            words = [w.strip() for w in verbalizer.values()]
            if not all(words) or len(set(words)) != len(words):
                raise serializers.ValidationError({"verbalizer": ["Words must be non-empty and distinct."]})
        elif labels or verbalizer:
            raise serializers.ValidationError({"labels": ["A generation task has no labels or verbalizer."]})
        return data


VERSION_MAX = 2**31 - 1  # a version number as the database holds it


class SplitEntrySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=VERSION_MAX)
    weight = serializers.IntegerField(min_value=0, max_value=100)


class AliasPolicySerializer(serializers.Serializer):
    """The schema of an alias policy (validated by `clean_policy`): the gate and the canary's limits."""

    metric = serializers.ChoiceField(choices=list(gates.METRICS), required=False)
    min = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_regression = serializers.FloatField(min_value=0, max_value=1, required=False)
    alpha = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_error_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_p95_ms = serializers.IntegerField(min_value=1, max_value=600_000, required=False)
    window_s = serializers.IntegerField(min_value=1, max_value=86_400, required=False)
    min_requests = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)


class AliasSerializer(serializers.ModelSerializer):
    """An alias: its primary version, traffic split ([] when the primary takes all of it), shadow version
    (scores the same inputs, callers never see its answer), policy (gate and canary limits) and whether
    only owners and admins may move it."""

    version = serializers.IntegerField(source="version.number")
    shadow = serializers.SerializerMethodField()
    split = serializers.ListField(child=SplitEntrySerializer())
    policy = serializers.SerializerMethodField()

    class Meta:
        model = Alias
        fields = ["name", "version", "split", "shadow", "policy", "protected", "updated_at"]
        read_only_fields = fields

    def get_shadow(self, alias: Alias) -> int | None:
        return alias.shadow.number if alias.shadow_id else None

    @extend_schema_field(AliasPolicySerializer)
    def get_policy(self, alias: Alias) -> dict:
        return dict(alias.policy or {})  # as stored: every key, none dropped by a field list


@extend_schema_field(SplitEntrySerializer(many=True))
class SplitField(serializers.JSONField):
    """A list of {version, weight}; its rules are checked with the rest of the body (`clean_split`)."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError('A list of {"version": n, "weight": w} objects.')
        return data


@extend_schema_field(AliasPolicySerializer)
class PolicyField(serializers.JSONField):
    """An object of policy keys ({} clears the policy); each key is checked by `clean_policy`."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("An object of policy keys; {} clears the policy.")
        return data


class GateQuerySerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=VERSION_MAX, help_text="The candidate version.")


class CompareQuerySerializer(serializers.Serializer):
    a = serializers.IntegerField(min_value=1, max_value=VERSION_MAX, help_text="The baseline version.")
    b = serializers.IntegerField(min_value=1, max_value=VERSION_MAX, help_text="The version compared to it.")


MAX_SPLIT = 4  # versions in one split: a canary or two beside the primary, not a lottery
OVERRIDE_MAX_CHARS = 500
# (low, high, whole number): the range of each numeric policy key, both ends allowed except alpha's 0.
POLICY_RANGES: dict[str, tuple[float, float, bool]] = {
    "min": (0, 1, False),
    "max_regression": (0, 1, False),
    "alpha": (0, 1, False),
    "max_error_rate": (0, 1, False),
    "max_p95_ms": (1, 600_000, True),
    "window_s": (1, 86_400, True),
    "min_requests": (1, 1_000_000, True),
}


def clean_split(entries: list) -> list[dict[str, int]]:
    """[{version, weight}] checked: 1 to MAX_SPLIT entries of distinct versions with whole-number weights
    from 0 to 100 that sum to 100. Messages go under `versions`."""
    problems: list[str] = []
    if not entries:
        problems.append("Name at least one version.")
    elif len(entries) > MAX_SPLIT:
        problems.append(f"{len(entries)} versions; a split has at most {MAX_SPLIT}.")
    out: list[dict[str, int]] = []
    for i, entry in enumerate(entries[: MAX_SPLIT + 1], start=1):
        if not isinstance(entry, dict) or set(entry) != {"version", "weight"}:
            problems.append(f"Entry {i}: an object with exactly `version` and `weight`.")
            continue
        version, weight = entry["version"], entry["weight"]
        if not _whole(version) or not 1 <= version <= VERSION_MAX:
            problems.append(f"Entry {i}: version must be a version number (1 or more).")
        elif not _whole(weight) or not 0 <= weight <= 100:
            problems.append(f"Entry {i}: weight must be a whole number from 0 to 100.")
        else:
            out.append({"version": version, "weight": weight})
    if problems:
        raise serializers.ValidationError({"versions": problems})
    numbers = [e["version"] for e in out]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        problems.append(f"Version {repeated[0]} is named more than once.")
    total = sum(e["weight"] for e in out)
    if total != 100:
        problems.append(f"The weights sum to {total}; they must sum to 100.")
    if problems:
        raise serializers.ValidationError({"versions": problems})
    return out


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def clean_policy(policy: dict) -> dict:
    """The policy checked key by key (`policy.<key>` errors); unknown keys are refused, not dropped."""
    errors: dict[str, list[str]] = {}
    allowed = (*gates.GATE_KEYS, *gates.ROLLBACK_KEYS)
    for key, value in policy.items():
        where = f"policy.{key}"
        if key not in allowed:
            errors[where] = [f"Unknown policy key; known keys: {', '.join(allowed)}."]
        elif key == "metric":
            if value not in gates.METRICS:
                errors[where] = [f"One of {', '.join(gates.METRICS)}."]
        else:
            low, high, whole = POLICY_RANGES[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or (whole and not _whole(value)) or not math.isfinite(value):
                errors[where] = ["A whole number." if whole else "A number."]
            elif key == "alpha" and not 0 < value < 1:
                errors[where] = ["A significance level above 0 and below 1 (0.05 is usual)."]
            elif not low <= value <= high:
                errors[where] = [f"From {low} to {high}."]
    if errors:
        raise serializers.ValidationError(errors)
    return dict(policy)


class AliasMoveSerializer(serializers.Serializer):
    """Move an alias: `version` (all traffic to one version; clears a split) or `versions` (a weighted
    split; the primary is the heaviest), `shadow` (a version number, or null to stop shadowing; omitted:
    kept), `policy` (replaces the stored one; {} clears it; omitted: kept), `protected` and
    `override_reason` (owners and admins only). Every field may be omitted for an existing alias."""

    version = serializers.IntegerField(min_value=1, max_value=VERSION_MAX, required=False)
    versions = SplitField(required=False)
    shadow = serializers.IntegerField(min_value=1, max_value=VERSION_MAX, required=False, allow_null=True)
    policy = PolicyField(required=False)
    protected = serializers.BooleanField(required=False)
    override_reason = serializers.CharField(
        max_length=OVERRIDE_MAX_CHARS,
        required=False,
        help_text="Moves past a failing gate (owners and admins); kept in the audit log with the verdict.",
    )

    def validate(self, data: dict) -> dict:
        if "version" in data and "versions" in data:
            raise serializers.ValidationError({"versions": ["Send `version` or `versions`, not both."]})
        if "versions" in data:
            data["versions"] = clean_split(data["versions"])
        if "policy" in data:
            data["policy"] = clean_policy(data["policy"])
        return data


ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")


def alias_target(tenant, prompt: TaskPrompt, alias: str, number: int) -> PromptVersion:
    """The version an alias of `prompt` may move to (API and web UI alike); field errors otherwise."""
    if not ALIAS_PATTERN.match(alias):
        raise serializers.ValidationError({"alias": ["Use 1-50 letters, digits, '.', '_' or '-'."]})
    version = PromptVersion.objects.for_tenant(tenant).filter(prompt=prompt, number=number).first()
    if version is None:
        raise serializers.ValidationError({"version": [f"{prompt.name} has no version {number}."]})
    return version


class EvalSetSerializer(serializers.Serializer):
    """PATCH /prompts/{name}: pin an evaluation set (a dataset version of the team's that fits the prompt,
    at most EVAL_SET_MAX_ROWS rows) or unpin it (null)."""

    eval_dataset_version = serializers.UUIDField(allow_null=True)

    def validate_eval_dataset_version(self, value):
        if value is None:
            return None
        prompt: TaskPrompt = self.context["prompt"]
        version = (
            DatasetVersion.objects.for_tenant(prompt.tenant)
            .select_related("dataset")
            .filter(pk=value)
            .first()
        )
        if version is None:  # another team's id reads exactly like one that does not exist
            raise serializers.ValidationError("No such dataset version.")
        problems = evalsets.fit_problems(prompt, version)
        if problems:
            raise serializers.ValidationError(problems)
        return version


class PromptUpdateSerializer(EvalSetSerializer):
    """PATCH /api/v1/prompts/{name}: the evaluation set and the prompt's settings; each field is optional,
    the others stay."""

    eval_dataset_version = serializers.UUIDField(
        allow_null=True,
        required=False,
        help_text="Pin this dataset version as the evaluation set (null: unpin).",
    )

    keep_inputs = serializers.BooleanField(
        required=False,
        help_text="Keep prediction inputs (for datasets made from feedback); turning it off forgets the "
        "inputs kept so far at once.",
    )
    input_retention_days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=365,
        help_text="Kept inputs are forgotten this many days after their prediction.",
    )

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError({"non_field_errors": ["Send at least one setting to change."]})
        return data


def alias_targets(
    tenant: Tenant, prompt: TaskPrompt, alias: str, numbers: dict[str, list[int]]
) -> dict[int, PromptVersion]:
    """The versions a move names ({field: [numbers]}), each ready: {number: version}; field errors name
    the field that named a missing or unready version."""
    if not ALIAS_PATTERN.match(alias):
        raise serializers.ValidationError({"alias": ["Use 1-50 letters, digits, '.', '_' or '-'."]})
    found = gates.versions_by_number(tenant, prompt, [n for ns in numbers.values() for n in ns])
    errors: dict[str, list[str]] = {}
    for name, wanted in numbers.items():
        for number in wanted:
            version = found.get(number)
            if version is None:
                errors.setdefault(name, []).append(f"{prompt.name} has no version {number}.")
            elif version.status != VersionStatus.READY:
                errors.setdefault(name, []).append(f"Version {number} is {version.status}, not ready.")
    if errors:
        raise serializers.ValidationError(errors)
    return found


def alias_change(tenant: Tenant, prompt: TaskPrompt, alias: str, data: dict) -> AliasChange:
    """A validated AliasMoveSerializer body as the action takes it, its version numbers resolved."""
    split = data.get("versions")
    numbers: dict[str, list[int]] = {}
    if "version" in data:
        numbers["version"] = [data["version"]]
    if split:
        numbers["versions"] = [e["version"] for e in split]
    if data.get("shadow") is not None:
        numbers["shadow"] = [data["shadow"]]
    found = alias_targets(tenant, prompt, alias, numbers)
    return AliasChange(
        version=found[data["version"]] if "version" in data else None,
        split=split,
        versions=found,
        shadow=found[data["shadow"]] if data.get("shadow") is not None else None,
        set_shadow="shadow" in data,
        policy=data.get("policy"),
        protected=data.get("protected"),
        override_reason=data.get("override_reason", ""),
    )
