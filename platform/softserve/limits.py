"""Every bound on what a tenant may send, in one place: read once from the environment (settings.LIMITS).

Serializers, upload validation, pagination and the request-size middleware all read this object, so a
limit has one name, one default and one environment variable (listed in .env.example).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from common.task import MAX_TEMPLATE_CHARS


@dataclass(frozen=True)
class Limits:
    # Whole requests (bytes as sent): a dataset upload, and any other body (JSON, forms). Over: 413.
    # Only the dataset upload (API and web UI) takes upload_max_bytes; every other body, multipart included,
    # body_max_bytes. Large uploads spool to disk, at most upload_max_concurrent at once per web process.
    upload_max_bytes: int = 512 * 2**20
    body_max_bytes: int = 2 * 2**20
    upload_max_concurrent: int = 2
    # A dataset after normalisation: JSONL bytes and rows (over: 413), characters per text field, per
    # target (a generation dataset's answer or a label) and per physical line of the upload (over: 413).
    dataset_max_bytes: int = 512 * 2**20
    dataset_max_rows: int = 2_000_000
    dataset_max_text_chars: int = 20_000
    dataset_max_target_chars: int = 2_000
    dataset_max_line_chars: int = 100_000
    dataset_min_rows_per_label: int = 2
    dataset_max_columns: int = 100
    # Classes of a classification task (dataset and prompt), characters of a label, and a verbalizer's
    # words per label and characters per label's words.
    max_labels: int = 1_000
    max_label_chars: int = 100
    max_verbalizer_words: int = 8
    max_verbalizer_chars: int = 100
    # A prompt's template, in characters: the engine's parser bound is the default (and its ceiling).
    max_template_chars: int = MAX_TEMPLATE_CHARS
    # Problems listed in one refused upload (the rest are counted), and characters of a tenant's own
    # value quoted back in a message.
    max_problems_listed: int = 100
    max_echo_chars: int = 80
    # `?limit=` of every list.
    page_max: int = 200
    page_default: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Each field from the variable of its upper-case name (e.g. DATASET_MAX_ROWS), else its default."""
        values = {}
        for f in fields(cls):
            raw = env.get(f.name.upper(), "")
            if raw.strip():
                value = int(raw)
                if value < 1:
                    raise ValueError(f"{f.name.upper()} must be a positive whole number, got {raw!r}")
                values[f.name] = value
        return cls(**values)

    def echo(self, value: object) -> str:
        """A tenant's value quoted in a message: repr'd, and cut to max_echo_chars."""
        text = repr(value)
        if len(text) <= self.max_echo_chars:
            return text
        return f"{text[: self.max_echo_chars]}… ({len(text)} characters)"
