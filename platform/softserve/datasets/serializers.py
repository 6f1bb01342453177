from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from common.contracts import TaskType, choices
from softserve.datasets.models import Dataset, DatasetVersion
from softserve.datasets.validation import FORMATS, UploadSpec, detect_format


class DatasetVersionSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "dataset",
            "number",
            "created_at",
            "source_format",
            "source_filename",
            "task_type",
            "columns",
            "labels",
            "label_counts",
            "split_counts",
            "row_count",
            "size_bytes",
            "checksum",
        ]
        read_only_fields = fields


class DatasetSerializer(serializers.ModelSerializer):
    versions = DatasetVersionSerializer(many=True, read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "created_at", "versions"]
        read_only_fields = fields


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    name = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        error_messages={
            "invalid": "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."
        },
    )
    format = serializers.ChoiceField(choices=FORMATS, required=False)
    text_columns = serializers.CharField(
        required=False, max_length=1000, help_text="comma-separated; default text or text_a,text_b"
    )
    label_column = serializers.CharField(required=False, default="label", max_length=100)
    split_column = serializers.CharField(required=False, max_length=100)
    task_type = serializers.ChoiceField(choices=choices(TaskType), required=False)
    labels = serializers.CharField(
        required=False,
        max_length=settings.LIMITS.max_labels * (settings.LIMITS.max_label_chars + 1),
        help_text="comma-separated label set; other labels are errors",
    )
    dev_fraction = serializers.FloatField(required=False, default=0.1, min_value=0.01, max_value=0.5)

    def validate_text_columns(self, value: str) -> list[str]:
        names = _names(value)
        if not names or len(set(names)) != len(names):
            raise serializers.ValidationError("Name one or more distinct columns, comma-separated.")
        return names

    def validate_labels(self, value: str) -> list[str]:
        labels, limits = _names(value), settings.LIMITS
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise serializers.ValidationError("Give two or more distinct labels, comma-separated.")
        if len(labels) > limits.max_labels or any(len(x) > limits.max_label_chars for x in labels):
            raise serializers.ValidationError(
                f"At most {limits.max_labels} labels of at most {limits.max_label_chars} characters each."
            )
        return labels

    def upload_spec(self) -> UploadSpec:
        """The validated request as the validator's spec (the API and the web UI share this)."""
        data = self.validated_data
        fmt = detect_format(data["file"].name, data.get("format"))
        if fmt is None:
            raise serializers.ValidationError(
                {"format": ["Unknown file type; name the file .csv, .tsv or .jsonl or send format."]}
            )
        return UploadSpec(
            format=fmt,
            text_columns=data.get("text_columns"),
            label_column=data["label_column"],
            split_column=data.get("split_column"),
            task_type=data.get("task_type"),
            labels=data.get("labels"),
            dev_fraction=data["dev_fraction"],
        )
