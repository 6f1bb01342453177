"""Two versions side by side on the prompt's evaluation set: scores, per-label F1, McNemar's figures and
the rows where their outputs differ (with each row's input read from the stored evaluation dataset)."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.core.files.storage import default_storage

from softserve.datasets.models import DatasetVersion
from softserve.prompts import gates
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.tenancy.models import Tenant

logger = logging.getLogger(__name__)

ROWS_SHOWN = 100  # disagreeing rows in one answer: enough to read, bounded whatever the set's size
STORED_FIELDS = ("label", "split")  # what a stored dataset row holds beside the template's fields


def _side(version: PromptVersion) -> dict[str, Any]:
    evaluation = version.evaluation or {}
    metrics = evaluation.get("metrics") or {}
    return {
        "version": version.number,
        "status": version.status,
        "parity": version.parity,
        "dataset_version": evaluation.get("dataset_version"),
        "rows": evaluation.get("rows"),
        "accuracy": metrics.get("accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "dev_metrics": evaluation.get("dev_metrics"),
        "evaluated_at": evaluation.get("evaluated_at"),
    }


def per_label(prompt: TaskPrompt, a: PromptVersion, b: PromptVersion) -> list[dict[str, Any]]:
    """One row per label (the prompt's labels first, in their order): each version's precision, recall,
    F1 and support, and F1's change from a to b."""
    left = ((a.evaluation or {}).get("metrics") or {}).get("per_label") or {}
    right = ((b.evaluation or {}).get("metrics") or {}).get("per_label") or {}
    labels = [x for x in prompt.labels if x in left or x in right]
    labels += sorted((set(left) | set(right)) - set(labels))
    rows = []
    for label in labels:
        x, y = left.get(label), right.get(label)
        f1s = [s.get("f1") if isinstance(s, dict) else None for s in (x, y)]
        numbers = all(isinstance(f, int | float) for f in f1s)
        delta = round(f1s[1] - f1s[0], 6) if numbers else None
        rows.append({"label": label, "a": x, "b": y, "delta_f1": delta})
    return rows


def _inputs(tenant: Tenant, dataset_version: str | None, wanted: set[int]) -> dict[int, dict] | None:
    """{row index: the row's input fields} for the wanted rows of the stored evaluation set, read from
    the start up to the last one wanted; None when the set or its stored rows are gone."""
    if not wanted or not dataset_version:
        return {}
    try:
        key = uuid.UUID(str(dataset_version))
    except ValueError:
        return None
    version = DatasetVersion.objects.for_tenant(tenant).filter(pk=key).first()
    if version is None:
        return None
    last = max(wanted)
    out: dict[int, dict] = {}
    try:
        with default_storage.open(version.storage_key, "rb") as handle:
            for index, line in enumerate(handle):
                if index > last:
                    break
                if index in wanted:
                    row = json.loads(line)
                    out[index] = {k: v for k, v in row.items() if k not in STORED_FIELDS}
    except FileNotFoundError:
        logger.warning("evaluation set %s: stored rows missing", version.pk)
        return None
    return out


def compare(
    tenant: Tenant, prompt: TaskPrompt, a: PromptVersion, b: PromptVersion, limit: int = ROWS_SHOWN
) -> dict[str, Any]:
    """The comparison of a (the baseline) and b on their evaluation: McNemar's b counts rows only a gets
    right, c rows only b gets right. `paired` is false (with `reason`) when the two cannot be paired."""
    out: dict[str, Any] = {
        "eval_dataset_version": str(prompt.eval_dataset_version_id)
        if prompt.eval_dataset_version_id
        else None,
        "a": _side(a),
        "b": _side(b),
        "per_label": per_label(prompt, a, b),
        "paired": False,
        "reason": None,
        "mcnemar": None,
        "disagreements": 0,
        "rows_shown": 0,
        "inputs_missing": False,
        "rows": [],
    }
    for version in (a, b):
        if not (version.evaluation or {}).get("metrics"):
            out["reason"] = (
                f"v{version.number} has no score on the evaluation set (parity: {version.parity})."
            )
            return out
    pairs = gates.paired(a, b)
    if isinstance(pairs, str):
        out["reason"] = pairs
        return out
    only_a, only_b, _ = pairs
    out["paired"] = True
    out["mcnemar"] = {"b": only_a, "c": only_b, "p_value": gates.mcnemar_exact(only_a, only_b)}
    gold = b.evaluation.get("gold") or a.evaluation.get("gold")
    left, right = a.evaluation["predictions"], b.evaluation["predictions"]
    differ = [i for i, (x, y) in enumerate(zip(left, right, strict=True)) if x != y]
    shown = differ[:limit]
    inputs = _inputs(tenant, b.evaluation.get("dataset_version"), set(shown))
    out["disagreements"] = len(differ)
    out["rows_shown"] = len(shown)
    out["inputs_missing"] = inputs is None
    out["rows"] = [
        {"index": i, "input": (inputs or {}).get(i), "gold": gold[i], "a": left[i], "b": right[i]}
        for i in shown
    ]
    return out
