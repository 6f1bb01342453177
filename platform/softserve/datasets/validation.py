"""Streaming validation of an uploaded dataset into normalised JSONL, collecting every problem.

The upload is read once, row by row (never whole into memory); good rows are written to a temporary
JSONL file while hashing. Any problem means nothing is stored: the caller gets the problems, each
with its row number, instead of a file.

Text cells are kept exactly as sent: a row that opens with `=`, `@`, `+` or `-` (a wiki heading, a
tweet, a rating) is ordinary training text. Formula injection is a property of a file a spreadsheet
opens, so it is neutralised where the platform writes one (`softserve.spreadsheet`), not here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from common.contracts import TaskType
from softserve.limits import Limits

FORMATS = ("csv", "tsv", "jsonl")
SPLIT_ALIASES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev"}
_EXTRA = "\0extra"  # where csv puts cells beyond the header


@dataclass
class UploadSpec:
    format: str
    text_columns: list[str] | None = None  # None: `text`, or `text_a` and `text_b`
    label_column: str = "label"
    split_column: str | None = None  # None: `split` when present, else a seeded train/dev split
    task_type: str | None = None  # None: classification when labels repeat, else generation
    labels: list[str] | None = None  # a declared label set; other labels are problems
    dev_fraction: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class Problem:
    row: int | None
    message: str
    too_large: bool = False  # a size limit (bytes, rows, line length): the answer is a 413

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}" if self.row else self.message


@dataclass
class NormalisedDataset:
    file: IO[bytes]  # the JSONL, rewound
    checksum: str
    size_bytes: int
    columns: dict[str, str]  # canonical field -> source column
    task_type: str
    labels: list[str]
    label_counts: dict[str, int]
    split_counts: dict[str, int]
    problems: list[Problem] = field(default_factory=list)
    problems_not_listed: int = 0  # beyond Limits.max_problems_listed: counted, not kept

    @property
    def too_large(self) -> bool:
        return any(p.too_large for p in self.problems)

    def messages(self) -> list[str]:
        shown = [str(p) for p in self.problems]
        return shown + ([f"… and {self.problems_not_listed} more"] if self.problems_not_listed else [])


class _SeenTexts:
    """Which texts came before, with their labels, in a temporary on-disk index: memory stays flat
    however many rows the upload has."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("")  # "" = a private temporary database that lives on disk
        self.db.execute("CREATE TABLE seen (digest BLOB PRIMARY KEY, label TEXT) WITHOUT ROWID")

    def label_of(self, digest: bytes) -> str | None:
        row = self.db.execute("SELECT label FROM seen WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def add(self, digest: bytes, label: str) -> None:
        self.db.execute("INSERT INTO seen VALUES (?, ?)", (digest, label))

    def close(self) -> None:
        self.db.close()


class _Problems(list):
    """The first `listed` problems; later ones are only counted, so a file of a million bad rows costs
    no more memory than one of a hundred. A size problem is always kept (it decides the status)."""

    def __init__(self, listed: int) -> None:
        super().__init__()
        self.listed = listed
        self.not_listed = 0

    def add(self, row: int | None, message: str, too_large: bool = False) -> None:
        if len(self) < self.listed or too_large:
            self.append(Problem(row, message, too_large))
        else:
            self.not_listed += 1


class LineTooLong(Exception):
    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"line {line} is longer than {limit} characters, the limit")
        self.line = line


def _lines(text: IO[str], limit: int) -> Iterator[str]:
    """The text's physical lines, none longer than `limit` characters: a line that has not ended by
    then stops the reading (memory stays bounded by the limit, not by the file)."""
    number = 0
    while True:
        line = text.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith("\n")):
            raise LineTooLong(number, limit)
        yield line


def _rows(
    stream: IO[bytes], fmt: str, problems: _Problems, limits: Limits
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number as a person counts it, row) pairs; a header line is row 1 for CSV/TSV."""
    # utf-8-sig: a UTF-8 byte-order mark (as spreadsheets write) is dropped, not taken for a column name.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", errors="strict")
    lines = _lines(text, limits.dataset_max_line_chars)
    if fmt == "jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, a huge integer, deep nesting
                reason = (
                    exc.msg if isinstance(exc, json.JSONDecodeError) else "too deep or too large a number"
                )
                problems.add(number, f"not valid JSON ({reason})")
                continue
            if not isinstance(row, dict):
                problems.add(number, "not a JSON object")
                continue
            yield number, {str(k): v for k, v in row.items()}
        return
    reader = csv.DictReader(lines, delimiter="\t" if fmt == "tsv" else ",", restkey=_EXTRA)
    header = reader.fieldnames or []
    if len(header) > limits.dataset_max_columns:
        problems.add(1, f"the header has {len(header)} columns, over {limits.dataset_max_columns}")
        return
    if any("\x00" in str(name) for name in header):
        problems.add(1, "the header contains a NUL character")
        return
    twice = [name for name, n in Counter(header).items() if n > 1]
    if twice:
        problems.add(1, f"the header names {limits.echo(twice[:5])} more than once")
        return
    for row in reader:
        number = reader.line_num
        if _EXTRA in row:
            cells = len(row) - 1 + len(row[_EXTRA])
            problems.add(number, f"has {cells} cells, the header has {len(row) - 1}")
            continue
        yield number, row


def _canonical(columns: list[str]) -> list[str]:
    return ["text"] if len(columns) == 1 else [f"text_{chr(ord('a') + i)}" for i in range(len(columns))]


def _text_columns(header: list[str], spec: UploadSpec) -> list[str] | None:
    if spec.text_columns:
        return spec.text_columns
    if "text" in header:
        return ["text"]
    if "text_a" in header and "text_b" in header:
        return ["text_a", "text_b"]
    return None


def _header(
    row: dict[str, Any], spec: UploadSpec, limits: Limits, problems: _Problems
) -> tuple[list[str], list[str], str | None] | None:
    """The first row's columns: the text columns, their canonical field names and the split column; None
    (with the problem added) when a column is missing."""
    header = list(row)
    sources = _text_columns(header, spec)
    if sources is None:
        problems.add(None, f"no text column: name one (text_columns); the columns are {limits.echo(header)}")
        return None
    missing = [c for c in [*sources, spec.label_column] if c not in header]
    if missing:
        problems.add(None, f"missing column(s) {limits.echo(missing)}; the columns are {limits.echo(header)}")
        return None
    split_column = spec.split_column
    if split_column is None and "split" in header:
        split_column = "split"
    return sources, _canonical(sources), split_column


def _field_problems(
    number: int,
    sources: list[str],
    texts: list[str],
    label: str,
    spec: UploadSpec,
    limits: Limits,
    problems: _Problems,
) -> bool:
    """Add the row's problems with its texts and label; whether it has any."""
    bad = False
    for column, value in zip(sources, texts, strict=True):
        if not value.strip():
            problems.add(number, f"empty text in column {limits.echo(column)}")
            bad = True
        elif len(value) > limits.dataset_max_text_chars:
            problems.add(
                number,
                f"text in {limits.echo(column)} is {len(value)} characters, "
                f"over {limits.dataset_max_text_chars}",
            )
            bad = True
    if not label:
        problems.add(number, f"empty label in column {limits.echo(spec.label_column)}")
        bad = True
    elif len(label) > limits.dataset_max_target_chars:
        problems.add(
            number,
            f"label/target in {limits.echo(spec.label_column)} is {len(label)} characters, "
            f"over {limits.dataset_max_target_chars}",
        )
        bad = True
    elif spec.labels is not None and label not in spec.labels:
        problems.add(
            number, f"unknown label {limits.echo(label)}; the label set is {limits.echo(spec.labels)}"
        )
        bad = True
    return bad


def _split_of(
    row: dict[str, Any], rows: int, split_column: str | None, spec: UploadSpec, offset: float
) -> str | None:
    """The row's split: its split column's (None when that names neither train nor dev), else a seeded
    stride that makes the dev share exact and spreads it evenly through the file."""
    if split_column:
        raw = str(row.get(split_column) or "").strip().lower()
        return SPLIT_ALIASES.get(raw)
    if int(rows * spec.dev_fraction + offset) > int((rows - 1) * spec.dev_fraction + offset):
        return "dev"
    return "train"


def _label_problems(
    label_counts: Counter[str], many_labels: bool, limits: Limits, problems: _Problems
) -> None:
    """A classification dataset's label set: within the limits, two labels or more, enough rows each."""
    if many_labels or len(label_counts) > limits.max_labels:
        problems.add(None, f"more than {limits.max_labels} labels, the limit")
    elif any(len(label) > limits.max_label_chars for label in label_counts):
        problems.add(None, f"a label is longer than {limits.max_label_chars} characters, the limit")
    if len(label_counts) < 2:
        problems.add(None, f"a classification dataset needs two labels or more, found {sorted(label_counts)}")
    for label, count in sorted(label_counts.items()):
        if count < limits.dataset_min_rows_per_label:
            problems.add(
                None,
                f"label {limits.echo(label)} has {count} row(s), "
                f"fewer than {limits.dataset_min_rows_per_label}",
            )


@dataclass
class _Tally:
    """What the accepted rows add up to: their number, and the rows per label and per split."""

    rows: int = 0
    label_counts: Counter[str] = field(default_factory=Counter)
    split_counts: Counter[str] = field(default_factory=Counter)
    many_labels: bool = False

    def count(self, label: str, split: str, limits: Limits) -> None:
        if label in self.label_counts or len(self.label_counts) <= limits.max_labels:
            self.label_counts[label] += 1
        else:
            # Free-text targets: counting each would hold every target in memory; past the class
            # limit this is a generation dataset (or too many classes), so counting stops here.
            self.many_labels = True
        self.split_counts[split] += 1

    def task_type(self, limits: Limits) -> TaskType:
        """Classification when a few labels repeat (2 to the limit, every label twice on average)."""
        labels = len(self.label_counts)
        if not self.many_labels and 2 <= labels <= limits.max_labels and labels * 2 <= self.rows:
            return TaskType.CLASSIFICATION
        return TaskType.GENERATION


def _duplicate(
    number: int, key: bytes, label: str, seen: _SeenTexts, limits: Limits, problems: _Problems
) -> bool:
    """Whether the row's text came before (a duplicate, or a contradiction when labelled otherwise)."""
    earlier = seen.label_of(key)
    if earlier is None:
        return False
    if earlier == label:
        problems.add(number, "duplicates an earlier row")
    else:
        problems.add(
            number, f"same text as an earlier row labelled {limits.echo(earlier)}, here {limits.echo(label)}"
        )
    return True


def _result(
    out: IO[bytes],
    digest: Any,
    spec: UploadSpec,
    limits: Limits,
    problems: _Problems,
    columns: dict[str, str],
    tally: _Tally,
) -> NormalisedDataset:
    """The normalised file with its figures, after the checks that need every row."""
    task_type = spec.task_type or tally.task_type(limits)
    classification = task_type == TaskType.CLASSIFICATION
    if not problems and classification:
        _label_problems(tally.label_counts, tally.many_labels, limits, problems)
    if not problems and not tally.split_counts.get("dev"):
        problems.add(None, "no dev rows: add a split column with dev rows, or upload more rows")
    size = out.seek(0, 2)
    out.seek(0)
    return NormalisedDataset(
        file=out,
        checksum=digest.hexdigest(),
        size_bytes=size,
        columns=columns,
        task_type=task_type,
        labels=sorted(tally.label_counts) if classification else [],
        label_counts=dict(tally.label_counts) if classification else {},
        split_counts={"train": tally.split_counts["train"], "dev": tally.split_counts["dev"]},
        problems=list(problems),
        problems_not_listed=problems.not_listed,
    )


def normalise(stream: IO[bytes], spec: UploadSpec, limits: Limits) -> NormalisedDataset:
    """Validate and normalise; on any problem, `.problems` is non-empty and the file is to be dropped."""
    problems = _Problems(limits.max_problems_listed)
    out = tempfile.SpooledTemporaryFile(max_size=2**20)  # noqa: SIM115 - the caller closes it
    digest = hashlib.sha256()
    offset = random.Random(spec.seed).random()
    seen = _SeenTexts()  # text digest -> label: duplicates and contradictions
    tally = _Tally()
    sources: list[str] | None = None
    fields: list[str] = []
    split_column = None
    try:
        for number, row in _rows(stream, spec.format, problems, limits):
            if sources is None:
                columns = _header(row, spec, limits, problems)
                if columns is None:
                    break
                sources, fields, split_column = columns
            tally.rows += 1
            if tally.rows > limits.dataset_max_rows:
                problems.add(number, f"more than {limits.dataset_max_rows} rows, the limit", too_large=True)
                break
            texts = ["" if row.get(c) is None else str(row.get(c)) for c in sources]
            label = "" if row.get(spec.label_column) is None else str(row[spec.label_column]).strip()
            if any("\x00" in value for value in (*texts, label)):
                # PostgreSQL keeps no NUL in text or jsonb (labels are stored in rows).
                problems.add(number, "contains a NUL character")
                continue
            bad = _field_problems(number, sources, texts, label, spec, limits, problems)
            split = _split_of(row, tally.rows, split_column, spec, offset)
            if split is None:
                raw = str(row.get(split_column or "") or "").strip().lower()
                problems.add(number, f"split {limits.echo(raw)} is not train or dev")
                split, bad = "train", True
            key = hashlib.blake2b("\0".join(texts).encode(), digest_size=16).digest()
            if bad or _duplicate(number, key, label, seen, limits, problems):
                continue
            seen.add(key, label)
            tally.count(label, split, limits)
            line = json.dumps(
                {**dict(zip(fields, texts, strict=True)), "label": label, "split": split}, ensure_ascii=False
            ).encode()
            digest.update(line + b"\n")
            out.write(line + b"\n")
            if out.tell() > limits.dataset_max_bytes:
                problems.add(number, f"the data is over {limits.dataset_max_bytes} bytes, the limit", True)
                break
    except LineTooLong as exc:
        problems.add(None, str(exc), too_large=True)
    except UnicodeDecodeError as exc:
        problems.add(None, f"the file is not UTF-8 text (byte {exc.start} of a chunk cannot be decoded)")
    except csv.Error as exc:
        problems.add(None, f"the file is not valid {spec.format.upper()}: {limits.echo(str(exc))}")
    finally:
        seen.close()
    if sources is None and not problems:
        problems.add(None, "the file has no rows")
    return _result(out, digest, spec, limits, problems, dict(zip(fields, sources or [], strict=False)), tally)


def detect_format(filename: str, declared: str | None) -> str | None:
    if declared:
        return declared if declared in FORMATS else None
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"csv": "csv", "tsv": "tsv", "tab": "tsv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix)
