from __future__ import annotations

import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from softserve.prompts import downloads
from softserve.prompts.models import NAME_PATTERN, Alias, PromptVersion, TaskPrompt
from workers.contracts import TaskType
from workers.engine.task import template_fields

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
        ]
        read_only_fields = fields

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
            "keep_inputs",
            "input_retention_days",
        ]
        # Settings change through PATCH (PromptUpdateSerializer), not at creation.
        read_only_fields = ["id", "created_at", "aliases", "keep_inputs", "input_retention_days"]

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


class PromptUpdateSerializer(serializers.Serializer):
    """PATCH /api/v1/prompts/{name}: the prompt's settings; each field is optional, the others stay."""

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
