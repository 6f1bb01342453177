"""What a task is: a template over text fields, and either a label set with a verbalizer or free text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from workers import contracts
from workers.engine.errors import DataError, EngineError

TaskType = Literal["classification", "generation"]

SINGLE_TEXT_TEMPLATE = "{text}\nAnswer:"
PAIR_TEXT_TEMPLATE = "{text_a}\n{text_b}\nAnswer:"


def template_fields(template: str) -> list[str]:
    """Names of the `{field}` placeholders in a template, in order of first use."""
    try:
        return contracts.template_fields(template)
    except ValueError as exc:
        raise EngineError(str(exc)) from exc


def default_template(columns: list[str], text_column: str | None = None) -> str:
    """A template for the columns at hand: one text column, or the `text_a`/`text_b` pair."""
    if text_column:
        return "{" + text_column + "}\nAnswer:"
    if "text" in columns:
        return SINGLE_TEXT_TEMPLATE
    if "text_a" in columns and "text_b" in columns:
        return PAIR_TEXT_TEMPLATE
    raise DataError(
        f"No text column found among {columns}; name one with --text-column or give a --template."
    )


@dataclass
class TaskSpec:
    """How rows become model inputs and targets. Serialised into every artifact's metadata."""

    task_type: TaskType
    template: str
    labels: list[str] = field(default_factory=list)
    verbalizer: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in ("classification", "generation"):
            raise EngineError(f"Unknown task type {self.task_type!r}; use classification or generation.")
        self.fields = template_fields(self.template)
        if self.task_type == "classification":
            if len(self.labels) < 2:
                raise EngineError(f"A classification task needs at least two labels, got {self.labels}.")
            if len(set(self.labels)) != len(self.labels):
                raise EngineError(f"The label set {self.labels} has duplicates.")
            # The default verbalizer is the label text itself.
            self.verbalizer = {label: self.verbalizer.get(label, label) for label in self.labels}
            words = list(self.verbalizer.values())
            if any(not w.strip() for w in words):
                raise EngineError("Every label needs a non-empty verbalizer word.")
            if len(set(words)) != len(words):
                raise EngineError(f"Two labels share a verbalizer word: {self.verbalizer}.")

    def render(self, row: dict[str, str]) -> str:
        """The input text for one row; a missing or empty field is the caller's error."""
        missing = [name for name in self.fields if name not in row]
        if missing:
            raise DataError(f"The input is missing the field(s) {missing} that the template needs.")
        return self.template.format(**{name: row[name] for name in self.fields})

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "template": self.template,
            "labels": list(self.labels),
            "verbalizer": dict(self.verbalizer),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(
            task_type=data["task_type"],
            template=data["template"],
            labels=list(data.get("labels", [])),
            verbalizer=dict(data.get("verbalizer", {})),
        )


@dataclass(frozen=True)
class Example:
    """One labelled row: the template's fields and the target (a label, or free text)."""

    fields: dict[str, str]
    target: str
