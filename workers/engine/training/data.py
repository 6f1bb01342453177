"""Reading labelled data (CSV, TSV, JSONL) into examples, with one clear error for each problem."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path

from common.contracts import TaskType
from common.errors import DataError
from common.task import Example, TaskSpec, default_template, template_fields

csv.field_size_limit(10 * 1024 * 1024)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV, TSV or JSONL file (chosen by extension) as dicts of strings."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"The data file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if suffix in (".jsonl", ".json", ".ndjson"):
                rows = _read_jsonl(handle, path)
            else:
                delimiter = "\t" if suffix in (".tsv", ".tab") else ","
                rows = [dict(row) for row in csv.DictReader(handle, delimiter=delimiter)]
    except UnicodeDecodeError as exc:
        raise DataError(f"The data file {path} is not UTF-8 text (byte {exc.start}).") from exc
    if not rows:
        raise DataError(f"The data file {path} has no rows.")
    return [{str(k): "" if v is None else str(v) for k, v in row.items() if k is not None} for row in rows]


def _read_jsonl(handle: Iterable[str], path: Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"Line {number} of {path} is not valid JSON: {exc.msg}.") from exc
        if not isinstance(row, dict):
            raise DataError(f"Line {number} of {path} is not a JSON object.")
        rows.append(row)
    return rows


def resolve_template(rows: list[dict[str, str]], template: str | None, text_column: str | None) -> str:
    return template or default_template(list(rows[0].keys()), text_column)


def to_examples(
    rows: list[dict[str, str]], template: str, label_column: str, source: str = "the data"
) -> list[Example]:
    """Examples from rows; every column the template names and the label column must be present."""
    columns = list(rows[0].keys())
    needed = [*template_fields(template), label_column]
    missing = [name for name in needed if name not in columns]
    if missing:
        raise DataError(f"{source} has no column(s) {missing}; its columns are {columns}.")
    examples = []
    for number, row in enumerate(rows, start=2):
        target = row[label_column].strip()
        if not target:
            raise DataError(f"Row {number} of {source} has an empty {label_column!r}.")
        fields = {name: row[name] for name in template_fields(template)}
        if not any(value.strip() for value in fields.values()):
            raise DataError(f"Row {number} of {source} has no text in {list(fields)}.")
        examples.append(Example(fields=fields, target=target))
    return examples


def infer_task(examples: list[Example], template: str, max_classes: int = 50) -> TaskSpec:
    """Classification when the targets form a small label set, generation otherwise."""
    labels = sorted({ex.target for ex in examples})
    # A label set repeats: free-text targets are (nearly) all distinct.
    if 2 <= len(labels) <= max_classes and len(labels) * 2 <= len(examples):
        return TaskSpec(task_type=TaskType.CLASSIFICATION, template=template, labels=labels)
    return TaskSpec(task_type=TaskType.GENERATION, template=template)


def check_labels(examples: list[Example], spec: TaskSpec, source: str) -> None:
    if spec.task_type != TaskType.CLASSIFICATION:
        return
    known = set(spec.labels)
    for number, ex in enumerate(examples, start=2):
        if ex.target not in known:
            raise DataError(
                f"Row {number} of {source} has the label {ex.target!r}, "
                f"which is not in the label set {spec.labels}."
            )


def split_train_dev(
    examples: list[Example], dev_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle-split; the dev part has at least one example and the train part keeps the rest."""
    if len(examples) < 2:
        raise DataError("At least two examples are needed to carve a dev split; pass --dev.")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_dev = min(len(examples) - 1, max(1, round(len(examples) * dev_fraction)))
    dev = [examples[i] for i in order[:n_dev]]
    train = [examples[i] for i in order[n_dev:]]
    return train, dev


def remap_rows(
    rows: list[dict[str, str]], column_map: dict[str, str], label_map: dict[str, str], label_column: str
) -> list[dict[str, str]]:
    """Rows of another dataset seen through a prompt's fields and labels (domain transfer).

    `column_map` maps a template field to the column holding it there; `label_map` maps that
    dataset's label words to the prompt's.
    """
    columns = list(rows[0].keys())
    missing = [column for column in column_map.values() if column not in columns]
    if missing:
        raise DataError(f"The data has no column(s) {missing} to map; its columns are {columns}.")
    remapped = []
    for row in rows:
        row = {**row, **{field: row[column] for field, column in column_map.items()}}
        if label_column in row:
            row[label_column] = label_map.get(row[label_column].strip(), row[label_column])
        remapped.append(row)
    return remapped
