"""Every bound on what a tenant may send, in one place: read once from the environment (settings.LIMITS).

Serializers, upload validation, pagination and the request-size middleware all read this object, so a
limit has one name, one default and one environment variable (declared in common/settings.py, each a
positive whole number; listed in .env.example).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common import settings as decl
from common.settings import read_settings, setting


@dataclass(frozen=True)
class Limits:
    # Whole requests (bytes as sent): a dataset upload, and any other body (JSON, forms). Over: 413.
    # Only the dataset upload (API and web UI) takes upload_max_bytes; every other body, multipart included,
    # body_max_bytes. Large uploads spool to disk, at most upload_max_concurrent at once per web process.
    upload_max_bytes: int = setting(decl.UPLOAD_MAX_BYTES)
    body_max_bytes: int = setting(decl.BODY_MAX_BYTES)
    upload_max_concurrent: int = setting(decl.UPLOAD_MAX_CONCURRENT)
    # A dataset after normalisation: JSONL bytes and rows (over: 413), characters per text field, per
    # target (a generation dataset's answer or a label) and per physical line of the upload (over: 413).
    dataset_max_bytes: int = setting(decl.DATASET_MAX_BYTES)
    dataset_max_rows: int = setting(decl.DATASET_MAX_ROWS)
    dataset_max_text_chars: int = setting(decl.DATASET_MAX_TEXT_CHARS)
    dataset_max_target_chars: int = setting(decl.DATASET_MAX_TARGET_CHARS)
    dataset_max_line_chars: int = setting(decl.DATASET_MAX_LINE_CHARS)
    dataset_min_rows_per_label: int = setting(decl.DATASET_MIN_ROWS_PER_LABEL)
    dataset_max_columns: int = setting(decl.DATASET_MAX_COLUMNS)
    # Classes of a classification task (dataset and prompt), characters of a label, and a verbalizer's
    # words per label and characters per label's words.
    max_labels: int = setting(decl.MAX_LABELS)
    max_label_chars: int = setting(decl.MAX_LABEL_CHARS)
    max_verbalizer_words: int = setting(decl.MAX_VERBALIZER_WORDS)
    max_verbalizer_chars: int = setting(decl.MAX_VERBALIZER_CHARS)
    # A prompt's template, in characters: the engine's parser bound is the default (and its ceiling).
    max_template_chars: int = setting(decl.MAX_TEMPLATE_CHARS)
    # Problems listed in one refused upload (the rest are counted), and characters of a tenant's own
    # value quoted back in a message.
    max_problems_listed: int = setting(decl.MAX_PROBLEMS_LISTED)
    max_echo_chars: int = setting(decl.MAX_ECHO_CHARS)
    # `?limit=` of every list.
    page_max: int = setting(decl.PAGE_MAX)
    page_default: int = setting(decl.PAGE_DEFAULT)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Each field from the variable of its upper-case name (e.g. DATASET_MAX_ROWS), else its default."""
        return read_settings(cls, environ)

    def echo(self, value: object) -> str:
        """A tenant's value quoted in a message: repr'd, and cut to max_echo_chars."""
        text = repr(value)
        if len(text) <= self.max_echo_chars:
            return text
        return f"{text[: self.max_echo_chars]}… ({len(text)} characters)"
