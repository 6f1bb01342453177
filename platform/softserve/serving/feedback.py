"""Feedback on predictions: what the right answer was for one output, accuracy from it per version over
time, and the corrected rows as a new dataset version (through the upload path, so it is ready for a job).

Inputs are kept (`Prediction.inputs`) only for prompts that opt in (`TaskPrompt.keep_inputs`) and only for
`input_retention_days`; `forget_inputs` is what turning the option off does at once, and the periodic
worker task TASK_EXPIRE_PREDICTION_INPUTS (workers/retention.py) does the same past the retention period.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.contracts import AuditAction, TaskType, template_fields
from softserve.datasets import actions as dataset_actions
from softserve.datasets.models import DatasetVersion
from softserve.datasets.validation import UploadSpec
from softserve.errors import Invalid, NotFound
from softserve.prompts.models import TaskPrompt
from softserve.serving.models import Feedback, Prediction
from softserve.tenancy.actions import record
from softserve.tenancy.permissions import Actor

log = logging.getLogger(__name__)

FEEDBACK_DATASET_SUFFIX = "-feedback"
FEEDBACK_FILENAME = "feedback.jsonl"


def prediction_of(actor: Actor, prediction_id: Any) -> Prediction:
    """The caller's team's prediction with its prompt; another team's (or none) is a 404."""
    found = (
        Prediction.objects.for_tenant(actor.tenant)
        .select_related("prompt")
        .filter(pk=prediction_id)
        .only("id", "tenant_id", "rows", "outputs", "prompt__task_type", "prompt__labels", "prompt__name")
        .first()
    )
    if found is None:
        raise NotFound("No such prediction.")
    return found


def _output_text(output: Any) -> str:
    """An output as the log keeps it: the label or text itself (or, defensively, its reply object)."""
    if isinstance(output, dict):
        output = output.get("label", output.get("text", ""))
    return "" if output is None else str(output)


def _answer(prediction: Prediction, label: str | None, target: str | None) -> tuple[str, str]:
    """(label, target) checked against the prompt's task: a classification takes one of its labels, a
    generation a bounded target text; field errors otherwise."""
    prompt = prediction.prompt
    if prompt.task_type == TaskType.CLASSIFICATION:
        if target is not None:
            raise Invalid({"target": ["A classification prompt takes `label`, not `target`."]})
        if label is None:
            raise Invalid({"label": ["Name the right label."]})
        if label not in prompt.labels:
            raise Invalid(
                {
                    "label": [
                        f"Not a label of {prompt.name}; its labels: {settings.LIMITS.echo(prompt.labels)}."
                    ]
                }
            )
        return label, ""
    if label is not None:
        raise Invalid({"label": ["A generation prompt takes `target` (the right text), not `label`."]})
    if target is None or not target.strip():
        raise Invalid({"target": ["The right answer's text, not empty."]})
    most = settings.LIMITS.dataset_max_target_chars
    if len(target) > most:
        raise Invalid({"target": [f"{len(target)} characters; at most {most}."]})
    return "", target


def record_feedback(
    actor: Actor, prediction: Prediction, index: int, label: str | None, target: str | None
) -> Feedback:
    """Record (or replace: the newest word counts) the right answer for output `index` of `prediction`.

    No audit row: feedback arrives at the rate of predictions (a caller may send one per prediction), and
    the audit log is for changes to a team's configuration and assets; the Feedback row itself says what
    was sent and when, and the dataset made from feedback is audited where it is made.
    """
    rows = prediction.rows or len(prediction.outputs or [])
    if index >= rows:
        raise Invalid({"index": [f"The prediction has {rows} output(s): index 0 to {rows - 1}."]})
    label, target = _answer(prediction, label, target)
    outputs = prediction.outputs or []
    given = _output_text(outputs[index]) if index < len(outputs) else None
    wanted = label or target
    correct = given is not None and given.strip() == wanted.strip()
    feedback, _ = Feedback.objects.update_or_create(
        prediction=prediction,
        index=index,
        defaults={
            "tenant": actor.tenant,
            "label": label,
            "target": target,
            "correct": correct,
            "created_at": timezone.now(),
        },
    )
    return feedback


# --- accuracy from feedback --------------------------------------------------------------------------


def accuracy(actor: Actor, prompt: TaskPrompt, days: int) -> dict[str, Any]:
    """Per version of `prompt`: feedback count, correct, accuracy, and a per-day series over the last
    `days` days (by the day the prediction was served), newest version first."""
    since = timezone.now() - timedelta(days=days)
    scoped = Feedback.objects.for_tenant(actor.tenant).filter(
        prediction__prompt=prompt, prediction__created_at__gte=since
    )
    correct = Count("id", filter=Q(correct=True))
    daily = (
        scoped.annotate(day=TruncDate("prediction__created_at"))
        .values("prediction__version__number", "day")
        .annotate(count=Count("id"), correct=correct)
        .order_by("prediction__version__number", "day")
    )
    versions: dict[int, dict[str, Any]] = {}
    for row in daily:
        number = row["prediction__version__number"]
        entry = versions.setdefault(number, {"version": number, "count": 0, "correct": 0, "days": []})
        entry["count"] += row["count"]
        entry["correct"] += row["correct"]
        entry["days"].append(
            {
                "day": row["day"],
                "count": row["count"],
                "correct": row["correct"],
                "accuracy": _share(row["correct"], row["count"]),
            }
        )
    out = []
    for number in sorted(versions, reverse=True):
        entry = versions[number]
        out.append({**entry, "accuracy": _share(entry["correct"], entry["count"])})
    return {"prompt": prompt.name, "days": days, "since": since.date(), "versions": out}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def day_labels(days: int, today: date | None = None) -> list[date]:
    """The calendar days of a `days`-long window ending today (the chart's x axis)."""
    today = today or timezone.now().date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


# --- a dataset version from feedback -----------------------------------------------------------------


@dataclass
class FeedbackRows:
    rows: list[dict[str, str]]
    feedback: int  # feedback rows looked at (with or without their input)
    without_input: int  # feedback whose prediction kept no input (not kept, or past retention)


def corrected_rows(actor: Actor, prompt: TaskPrompt, since: datetime | None) -> FeedbackRows:
    """The feedback rows that still have their input, as dataset rows (template fields + `label`), newest
    feedback first and one row per distinct input (the newest word on it): an upload refuses repeated
    texts, and a caller who corrected the same input twice meant the later answer. At most
    LIMITS.dataset_max_rows rows, the newest: memory stays bounded."""
    fields = template_fields(prompt.template)
    most = settings.LIMITS.dataset_max_rows
    scoped = Feedback.objects.for_tenant(actor.tenant).filter(prediction__prompt=prompt)
    if since is not None:
        scoped = scoped.filter(created_at__gte=since)
    seen: set[tuple[str, ...]] = set()
    rows: list[dict[str, str]] = []
    total = missing = 0
    for index, answer, target, inputs in (
        scoped.order_by("-created_at")
        .values_list("index", "label", "target", "prediction__inputs")
        .iterator(chunk_size=2000)
    ):
        total += 1
        item = inputs[index] if isinstance(inputs, list) and index < len(inputs) else None
        if isinstance(item, str) and len(fields) == 1:
            item = {fields[0]: item}
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in fields):
            missing += 1
            continue
        texts = tuple(item[f] for f in fields)
        if texts in seen:
            continue
        seen.add(texts)
        rows.append({**dict(zip(fields, texts, strict=True)), "label": answer or target})
        if len(rows) >= most:
            break
    return FeedbackRows(rows, total, missing)


def make_dataset(
    actor: Actor, prompt: TaskPrompt, dataset: str | None = None, since: datetime | None = None
) -> DatasetVersion:
    """A new version of `dataset` (default `<prompt>-feedback`) from the prompt's corrected predictions,
    written by the upload path (validation, storage, quota, row and label counts), and audited."""
    name = dataset or f"{prompt.name}{FEEDBACK_DATASET_SUFFIX}"[:100]
    if not prompt.keep_inputs:
        raise Invalid(
            {
                "prompt": [
                    f"{prompt.name} does not keep prediction inputs, so feedback has no rows to learn "
                    "from: turn on keep_inputs (Kept inputs on the prompt's page, or PATCH "
                    "/api/v1/prompts/{name}) and collect feedback first."
                ]
            }
        )
    found = corrected_rows(actor, prompt, since)
    if not found.rows:
        said = (
            f"none of its {found.feedback} feedback row(s) still has its input (kept inputs are "
            f"forgotten after {prompt.input_retention_days} days)"
            if found.feedback
            else "it has no feedback yet"
        )
        raise Invalid({"feedback": [f"No corrected predictions of {prompt.name} to use: {said}."]})
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in found.rows).encode()
    fields = template_fields(prompt.template)
    spec = UploadSpec(
        format="jsonl",
        text_columns=fields,
        label_column="label",
        task_type=prompt.task_type,
        labels=list(prompt.labels) if prompt.task_type == TaskType.CLASSIFICATION else None,
    )
    with transaction.atomic():
        try:
            version = dataset_actions.upload(actor, name, io.BytesIO(body), FEEDBACK_FILENAME, spec)
        except Invalid as exc:
            # The upload path names the file; here the rows are the prompt's feedback.
            detail = exc.fields.get("file") or [m for messages in exc.fields.values() for m in messages]
            raise Invalid({"feedback": detail}) from None
        record(
            actor,
            actor.tenant,
            AuditAction.FEEDBACK_DATASET,
            version,
            after={
                "prompt": prompt.name,
                "dataset": name,
                "number": version.number,
                "rows": len(found.rows),
                "since": since.isoformat() if since else None,
            },
        )
    log.info(
        "dataset %s v%d made from %d feedback rows of %s", name, version.number, len(found.rows), prompt.name
    )
    return version
