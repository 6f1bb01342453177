"""Evaluation sets, the platform's side: which dataset version a prompt may pin, and how many of a training
job's rows are also in it (held out: a job that trains on them is refused unless told).

Rows are compared by their template fields' text and their label, whitespace normalised: the same
example uploaded again under another name, another column order or extra columns still counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

from django.conf import settings
from django.core.files.storage import default_storage

from common.contracts import template_fields
from softserve.datasets.models import DatasetVersion
from softserve.prompts.models import TaskPrompt

logger = logging.getLogger(__name__)

RowKey = tuple[str, ...]


def fit_problems(prompt: TaskPrompt, version: DatasetVersion) -> list[str]:
    """Why `version` cannot be `prompt`'s evaluation set (empty: it can): it must fit the prompt as a job's
    data must (task type, labels within the prompt's, the template's fields as columns) and stay within
    EVAL_SET_MAX_ROWS, since every new version is scored on all of it through the serving pool."""
    problems = list(version.misfits(prompt.task_type, prompt.labels, prompt.template).values())
    most = settings.EVAL_SET_MAX_ROWS
    if version.row_count > most:
        problems.append(
            f"The dataset {version} has {version.row_count} rows; an evaluation set has at most {most} "
            "(EVAL_SET_MAX_ROWS): upload a smaller held-out set."
        )
    return problems


def _normal(text: object) -> str:
    return " ".join(str(text).split())


def row_keys(version: DatasetVersion, fields: list[str]) -> Iterator[RowKey]:
    """Each stored row of `version` as (its fields' texts..., label), whitespace normalised."""
    with default_storage.open(version.storage_key, "rb") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                yield (*(_normal(row.get(f, "")) for f in fields), _normal(row.get("label", "")))


def overlap(prompt: TaskPrompt, data: DatasetVersion) -> int:
    """How many of `data`'s rows are also rows of `prompt`'s evaluation set (0 when it pins none)."""
    held_out = prompt.eval_dataset_version
    if held_out is None:
        return 0
    fields = template_fields(prompt.template)
    kept = set(row_keys(held_out, fields))
    return sum(key in kept for key in row_keys(data, fields))


def overlap_message(prompt: TaskPrompt, data: DatasetVersion, count: int) -> str:
    return (
        f"{count} of the {data.row_count} rows of {data} are also in {prompt.name}'s evaluation set "
        f"{prompt.eval_dataset_version}: training on them inflates the scores gates compare versions on. "
        "Choose other data, or allow the overlap (allow_eval_overlap)."
    )
