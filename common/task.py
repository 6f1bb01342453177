"""What a task is: a template over text fields, and either a label set with a verbalizer or free text.

Standard library only (no torch): the platform imports this module to check templates with the very
parser that renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from common.errors import DataError, EngineError


class TaskType(StrEnum):
    """Defined here, with the task it describes, and re-exported by common.contracts with the vocabulary
    (which imports this module, so this one cannot import it)."""

    CLASSIFICATION = "classification"
    GENERATION = "generation"


# A task type as read back from an artifact's or a request's JSON: the enum's value, not the enum.
TaskTypeName = Literal["classification", "generation"]

SINGLE_TEXT_TEMPLATE = "{text}\nAnswer:"
PAIR_TEXT_TEMPLATE = "{text_a}\n{text_b}\nAnswer:"

# A template is tenant input that every serving worker renders: bounded, so rendering is cheap whatever
# was stored (the inputs filling it are bounded by the platform's SERVING_MAX_INPUT_CHARS).
MAX_TEMPLATE_CHARS = 4000
MAX_TEMPLATE_FIELDS = 16


class TemplateError(EngineError, ValueError):
    """A template the safe renderer refuses (a ValueError too, for callers that validate input)."""


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text around `{identifier}` fields; `{{` and `}}` are literal braces.

    Nothing else is a placeholder: no attribute access, indexing, conversions, format specs or positional
    fields (what `str.format` would run or allocate on a tenant's behalf). Values are inserted verbatim.
    """

    literals: tuple[str, ...]  # one more than `slots`: text before, between and after the fields
    slots: tuple[str, ...]  # the field filling each placeholder, in order (a field may repeat)

    @classmethod
    def parse(cls, template: object) -> Template:
        if not isinstance(template, str):
            raise TemplateError("The template must be a string.")
        if len(template) > MAX_TEMPLATE_CHARS:
            raise TemplateError(
                f"The template has {len(template)} characters; the limit is {MAX_TEMPLATE_CHARS}."
            )
        literals: list[str] = []
        slots: list[str] = []
        text: list[str] = []
        i, n = 0, len(template)
        while i < n:
            char = template[i]
            if char in "{}" and template[i : i + 2] == char * 2:
                text.append(char)
                i += 2
            elif char == "}":
                raise TemplateError(
                    f"The template has a single '}}' at position {i}; write '}}}}' for a brace."
                )
            elif char == "{":
                end = template.find("}", i + 1)
                name = template[i + 1 : end] if end != -1 else ""
                if end == -1 or "{" in name:
                    raise TemplateError(
                        f"The template has an unclosed '{{' at position {i}; write '{{{{' for a brace."
                    )
                if not (name.isidentifier() and name.isascii()):
                    shown = name if len(name) <= 40 else name[:40] + "…"
                    raise TemplateError(
                        f"The template's placeholder {{{shown}}} is not a field name: use {{name}} with "
                        "letters, digits and '_' only (no attributes, indexes, conversions or formats)."
                    )
                literals.append("".join(text))
                text = []
                slots.append(name)
                i = end + 1
            else:
                text.append(char)
                i += 1
        literals.append("".join(text))
        parsed = cls(tuple(literals), tuple(slots))
        if not slots:
            raise TemplateError("The template names no field; use placeholders such as {text}.")
        if len(parsed.fields) > MAX_TEMPLATE_FIELDS:
            raise TemplateError(
                f"The template has {len(parsed.fields)} fields; the limit is {MAX_TEMPLATE_FIELDS}."
            )
        return parsed

    @property
    def fields(self) -> list[str]:
        """The distinct field names, in order of first use."""
        return list(dict.fromkeys(self.slots))

    def render(self, row: dict[str, str]) -> str:
        """The text for one row; a missing field is a DataError, a value is inserted as it is."""
        missing = [name for name in self.fields if name not in row]
        if missing:
            raise DataError(f"The input is missing the field(s) {missing} that the template needs.")
        pieces = [self.literals[0]]
        for name, literal in zip(self.slots, self.literals[1:], strict=True):
            pieces.append(str(row[name]))
            pieces.append(literal)
        return "".join(pieces)


def template_fields(template: str) -> list[str]:
    """Names of the `{field}` placeholders in a template, in order of first use; TemplateError if bad."""
    return Template.parse(template).fields


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

    task_type: TaskType | TaskTypeName
    template: str
    labels: list[str] = field(default_factory=list)
    verbalizer: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in ("classification", "generation"):
            raise EngineError(f"Unknown task type {self.task_type!r}; use classification or generation.")
        self.parsed = Template.parse(self.template)
        self.fields = self.parsed.fields
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
        return self.parsed.render(row)

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
