from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from common.contracts import INITS, JOB_KINDS, METHODS, Init, JobKind, Method, inits_for
from common.defaults import (
    DEFAULTS,
    GENERATION,
    GENERATION_INIT,
    JOB_DEFAULTS,
    LABELS_INIT,
    OPTIMIZERS,
    PROMPT_LENGTH,
    STEPS,
    defaults_for,
    per_method,
    rate_text,
)
from softserve.datasets.models import DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts import evalsets
from softserve.prompts.models import PromptVersion, TaskPrompt, VersionStatus


def _per_method(value) -> str:
    """ "default: the method's (prompt labels, prefix vocab, …)" for one setting's help text."""
    return f"default: the method's ({per_method(value)})"


# Each method's defaults with the measurement behind them: the `method` field's description in the schema.
METHOD_HELP = "Defaults by method (a setting the request gives replaces its default): " + " ".join(
    f"{m}: {d.describe()}; why: {d.reason}" for m, d in DEFAULTS.items()
)


class JobSerializer(serializers.ModelSerializer):
    prompt = serializers.CharField(source="prompt_version.prompt.name", read_only=True)
    version = serializers.IntegerField(source="prompt_version.number", read_only=True)
    dataset_version = serializers.UUIDField(source="dataset_version_id", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "prompt",
            "version",
            "dataset_version",
            "spec",
            "progress",
            "metric_history",
            "result",
            "attempts",
            "gpu_seconds",
            "worker",
            "cancel_requested",
            "error",
            "error_code",
            "queued_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields


class JobCreateSerializer(serializers.Serializer):
    """A job request; `validate` resolves names and ids inside the caller's tenant only."""

    kind = serializers.ChoiceField(choices=JOB_KINDS)
    prompt = serializers.CharField(max_length=100)
    dataset_version = serializers.UUIDField()
    version = serializers.IntegerField(
        min_value=1, required=False, help_text="evaluate: the version to score"
    )
    method = serializers.ChoiceField(choices=METHODS, default=Method.PROMPT, help_text=METHOD_HELP)
    prompt_length = serializers.IntegerField(min_value=1, max_value=150, default=PROMPT_LENGTH)
    init = serializers.ChoiceField(
        choices=INITS,
        required=False,
        help_text=_per_method(lambda d: d.init)
        + f"; a {GENERATION} prompt starts from {GENERATION_INIT} where that is {LABELS_INIT} "
        "(it has no label words)",
    )
    init_text = serializers.CharField(
        max_length=2000, required=False, help_text="init text: the words the prompt starts from"
    )
    steps = serializers.IntegerField(
        min_value=1,
        max_value=100_000,
        default=STEPS,
        help_text="optimiser steps; early stopping keeps the step with the best dev metric (best_step)",
    )
    optimizer = serializers.ChoiceField(
        choices=OPTIMIZERS, required=False, help_text=_per_method(lambda d: d.optimizer)
    )
    learning_rate = serializers.FloatField(
        min_value=1e-6,
        max_value=10,
        required=False,
        help_text=_per_method(lambda d: rate_text(d.learning_rate)),
    )
    batch_size = serializers.IntegerField(min_value=1, max_value=512, default=JOB_DEFAULTS.batch_size)
    members = serializers.IntegerField(min_value=2, max_value=JOB_DEFAULTS.max_members, required=False)
    max_minutes = serializers.FloatField(
        min_value=0.1,
        required=False,
        help_text="wall-clock budget in minutes across all attempts, at most SOFTSERVE_JOB_MAX_MINUTES; "
        "when it runs out the job keeps its best prompt so far ("
        + _per_method(lambda d: f"{d.max_minutes:g}")
        + ", or SOFTSERVE_JOB_DEFAULT_MINUTES where the operator set it)",
    )
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=JOB_DEFAULTS.seed)
    allow_eval_overlap = serializers.BooleanField(
        default=False,
        help_text="tune/ensemble: train even though rows of the dataset version are also rows of the "
        "prompt's evaluation set (refused otherwise: the set is held out)",
    )

    def validate_max_minutes(self, value: float) -> float:
        most = settings.SOFTSERVE_JOB_POLICY.job_max_minutes
        if value > most:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {most:g} minutes.")
        return value

    def validate(self, data: dict) -> dict:
        tenant = self.context["tenant"]
        prompt = TaskPrompt.objects.for_tenant(tenant).filter(name=data["prompt"]).first()
        if prompt is None:
            raise serializers.ValidationError({"prompt": [f"No prompt named {data['prompt']!r}."]})
        dataset = (
            DatasetVersion.objects.for_tenant(tenant)
            .select_related("dataset")
            .filter(pk=data["dataset_version"])
            .first()
        )
        if dataset is None:
            raise serializers.ValidationError({"dataset_version": ["No such dataset version."]})
        misfits = dataset.misfits(prompt.task_type, prompt.labels, prompt.template)
        if misfits:
            raise serializers.ValidationError({"dataset_version": list(misfits.values())})
        kind = data["kind"]
        if kind == JobKind.ENSEMBLE:
            data.setdefault("members", JOB_DEFAULTS.members)
        elif "members" in data:
            raise serializers.ValidationError({"members": ["Only ensemble jobs have members."]})
        if kind != JobKind.EVALUATE:
            # The method's defaults for the prompt's task type, written into the spec: the job trains as
            # it was asked even if the platform's defaults change while it waits.
            defaults = defaults_for(
                data["method"], ensemble=kind == JobKind.ENSEMBLE, task_type=prompt.task_type
            )
            data.setdefault("init", defaults.init)
            data.setdefault("optimizer", defaults.optimizer)
            data.setdefault("learning_rate", defaults.learning_rate)
        init = data.get("init")
        if init == Init.TEXT and not data.get("init_text", "").strip():
            raise serializers.ValidationError({"init_text": ["The text init needs init_text to start from."]})
        if init != Init.TEXT and "init_text" in data:
            raise serializers.ValidationError({"init_text": ["init_text goes with init 'text' only."]})
        if init is not None and init not in inits_for(prompt.task_type):
            allowed = ", ".join(inits_for(prompt.task_type))
            raise serializers.ValidationError(
                {
                    "init": [
                        f"The {init} init needs a classification prompt; {prompt.name} is "
                        f"{prompt.task_type}: choose {allowed}."
                    ]
                }
            )
        target = None
        if kind == JobKind.EVALUATE:
            if "version" not in data:
                raise serializers.ValidationError(
                    {"version": ["An evaluate job names the version to score."]}
                )
            target = (
                PromptVersion.objects.for_tenant(tenant).filter(prompt=prompt, number=data["version"]).first()
            )
            if target is None or target.status != VersionStatus.READY:
                raise serializers.ValidationError(
                    {"version": [f"{prompt.name} has no ready version {data['version']}."]}
                )
        elif "version" in data:
            raise serializers.ValidationError({"version": ["Only evaluate jobs name a version."]})
        if kind != JobKind.EVALUATE and not data["allow_eval_overlap"]:
            self._held_out(prompt, dataset)
        data["prompt_obj"], data["dataset_obj"], data["target"] = prompt, dataset, target
        return data

    def _held_out(self, prompt: TaskPrompt, dataset: DatasetVersion) -> None:
        """A training job may not see the rows of its prompt's evaluation set unless told to."""
        if prompt.eval_dataset_version_id is None:
            return
        count = evalsets.overlap(prompt, dataset)
        if count:
            raise serializers.ValidationError(
                {"dataset_version": [evalsets.overlap_message(prompt, dataset, count)]}
            )

    def spec(self) -> dict:
        data = self.validated_data
        keys = [
            "method",
            "prompt_length",
            "init",
            "init_text",
            "steps",
            "optimizer",
            "learning_rate",
            "batch_size",
            "members",
            "max_minutes",
            "seed",
            "version",
        ]
        spec = {key: data[key] for key in keys if key in data}
        spec["dataset_version"] = str(data["dataset_version"])
        if data.get("allow_eval_overlap") and data["kind"] != JobKind.EVALUATE:
            spec["allow_eval_overlap"] = True  # on record: this version may have seen evaluation rows
        if data["kind"] != JobKind.EVALUATE:  # the budget the job runs under, on record from the start
            policy = settings.SOFTSERVE_JOB_POLICY
            spec.setdefault("max_minutes", policy.default_minutes(data["method"], data["kind"]))
        return spec
