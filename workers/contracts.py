"""What the platform and the workers agree on: task names, queues and payloads. Standard library only.

The platform sends tasks by these names; workers register handlers under them. Payloads carry ids
only: the database is the source of truth for a job's spec and state.
"""

from __future__ import annotations

import string
from typing import TypedDict

TASK_TUNE = "softserve.jobs.tune"
TASK_ENSEMBLE = "softserve.jobs.ensemble"
TASK_EVALUATE = "softserve.jobs.evaluate"
TASK_FOR_KIND = {"tune": TASK_TUNE, "ensemble": TASK_ENSEMBLE, "evaluate": TASK_EVALUATE}

QUEUE_GPU = "gpu"
QUEUE_DEFAULT = "default"

JOB_KINDS = tuple(TASK_FOR_KIND)
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
METHODS = ("prompt", "ptuning", "prefix")
INITS = ("random", "vocab", "labels", "text")


class JobPayload(TypedDict):
    job_id: str


def job_payload(job_id: str) -> JobPayload:
    return {"job_id": str(job_id)}


def template_fields(template: str) -> list[str]:
    """Names of the `{field}` placeholders of an input template, in order of first use.

    Raises ValueError with a readable message for a malformed template or one without fields.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"The template {template!r} is not valid: {exc}.") from exc
    names: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(
                f"The template {template!r} has a placeholder {{{name}}} that is not a column name."
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"The template {template!r} names no column; use placeholders such as {{text}}.")
    return names
