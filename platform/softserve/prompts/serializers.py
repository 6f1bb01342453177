from __future__ import annotations

import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from softserve.datasets.models import DatasetVersion
from softserve.prompts import downloads, evalsets
from softserve.prompts.models import NAME_PATTERN, Alias, PromptVersion, TaskPrompt
from workers.contracts import TaskType
from workers.engine.task import template_fields

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


class AliasSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = Alias
        fields = ["name", "version", "updated_at"]
        read_only_fields = fields


class AliasMoveSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


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
