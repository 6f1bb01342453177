from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from softserve.serving.models import Usage

ALIAS_OR_NUMBER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$"


def _routing_key() -> serializers.CharField:
    return serializers.CharField(
        max_length=200,
        required=False,
        help_text="An alias with a traffic split: the same key always reaches the same version",
    )


class PredictSerializer(serializers.Serializer):
    # Each input: an object of the template's fields, or a string when the template has one field.
    # The fields are checked against the prompt's template in actions.validate_inputs.
    inputs = serializers.JSONField()
    alias = serializers.RegexField(ALIAS_OR_NUMBER, required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    timeout_ms = serializers.IntegerField(min_value=1, required=False)
    max_new_tokens = serializers.IntegerField(
        min_value=1, required=False, help_text="Generation prompts: the longest answer, in tokens"
    )
    routing_key = _routing_key()

    def validate_max_new_tokens(self, value: int) -> int:
        return _within_token_limit(value)

    def validate(self, data: dict) -> dict:
        if "alias" in data and "version" in data:
            raise serializers.ValidationError({"version": ["Name a version or an alias, not both."]})
        return data


def _within_token_limit(value: int) -> int:
    if value > settings.SERVING_MAX_NEW_TOKENS:
        raise serializers.ValidationError(f"At most {settings.SERVING_MAX_NEW_TOKENS} tokens.")
    return value


class OutputSerializer(serializers.Serializer):
    label = serializers.CharField(required=False)
    scores = serializers.DictField(child=serializers.FloatField(), required=False)
    votes = serializers.DictField(child=serializers.IntegerField(), required=False)
    text = serializers.CharField(required=False)
    finish_reason = serializers.ChoiceField(["stop", "length"], required=False)


class PredictResponseSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version that answered (an alias's split picks one)")
    prediction_id = serializers.UUIDField(help_text="This prediction in the log (feedback refers to it)")
    alias = serializers.CharField(required=False, help_text="The alias the version was reached through")
    outputs = OutputSerializer(many=True)


class CompletionSerializer(serializers.Serializer):
    model = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(@[A-Za-z0-9][A-Za-z0-9_.-]{0,49})?$",
        error_messages={"invalid": "Use `prompt@alias` or `prompt@version` (default alias: production)."},
    )
    prompt = serializers.JSONField(help_text="A string, or a list of strings or field objects")
    timeout_ms = serializers.IntegerField(min_value=1, required=False)
    max_tokens = serializers.IntegerField(
        min_value=1, required=False, help_text="Generation prompts: the longest answer, in tokens"
    )
    routing_key = _routing_key()

    def validate_max_tokens(self, value: int) -> int:
        return _within_token_limit(value)


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    finish_reason = serializers.CharField()
    scores = serializers.DictField(child=serializers.FloatField(), required=False)


class CompletionSoftserveSerializer(serializers.Serializer):
    prediction_id = serializers.UUIDField()
    version = serializers.IntegerField()
    alias = serializers.CharField(required=False)


class CompletionResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = serializers.DictField(child=serializers.IntegerField())
    softserve = CompletionSoftserveSerializer(
        help_text="Softserve's own: the prediction log's id, the version"
    )


class UsageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Usage
        fields = ["prompt_name", "day", "requests", "inputs"]
        read_only_fields = fields


class FeedbackSerializer(serializers.Serializer):
    """The right answer for one output: `label` (classification) or `target` (generation); checked
    against the prediction's prompt in softserve.serving.feedback."""

    label = serializers.CharField(required=False, max_length=200, trim_whitespace=False)
    target = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)
    index = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="Which input of the request (default 0)."
    )

    def validate_target(self, value: str) -> str:
        most = settings.LIMITS.dataset_max_target_chars
        if len(value) > most:
            raise serializers.ValidationError(f"{len(value)} characters; at most {most}.")
        return value

    def validate(self, data: dict) -> dict:
        if "label" in data and "target" in data:
            raise serializers.ValidationError({"label": ["Send `label` or `target`, not both."]})
        if "label" not in data and "target" not in data:
            raise serializers.ValidationError(
                {"label": ["Send `label` (classification) or `target` (generation)."]}
            )
        return data


class FeedbackRecordedSerializer(serializers.Serializer):
    prediction_id = serializers.UUIDField()
    index = serializers.IntegerField()
    label = serializers.CharField(allow_blank=True)
    target = serializers.CharField(allow_blank=True)
    correct = serializers.BooleanField(help_text="Whether the prediction's output equals it.")
    created_at = serializers.DateTimeField()


class FeedbackDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    count = serializers.IntegerField()
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)


class FeedbackVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    count = serializers.IntegerField()
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    days = FeedbackDaySerializer(many=True)


class FeedbackAccuracySerializer(serializers.Serializer):
    prompt = serializers.CharField()
    days = serializers.IntegerField()
    since = serializers.DateField()
    versions = FeedbackVersionSerializer(many=True)


class FeedbackWindowSerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, default=30, min_value=1, max_value=365)


class FeedbackDatasetSerializer(serializers.Serializer):
    dataset = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        required=False,
        error_messages={
            "invalid": "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."
        },
        help_text="The dataset to add a version to (default `<prompt>-feedback`).",
    )
    since = serializers.DateTimeField(required=False, help_text="Only feedback recorded from then on.")


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`prompt@alias` or `prompt@version`: the `model` of a completion.")
    object = serializers.CharField()
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ModelSerializer(many=True)


class TrafficQuerySerializer(serializers.Serializer):
    window_s = serializers.IntegerField(
        min_value=10, max_value=24 * 3600, default=300, help_text="The last this many seconds (at most a day)"
    )
