"""Versions with evaluation-set scores, written straight onto the rows as the evaluation worker leaves
them (its code is tested on its own): the gate, compare and alias-editor tests build on these."""

from __future__ import annotations

import json

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from common.contracts import ParityStatus, VersionStatus
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.teams import make_dataset_version

LABELS = ("negative", "positive")


def gold_labels(rows: int = 40) -> list[str]:
    return [LABELS[i % 2] for i in range(rows)]


def flip(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def outputs(gold: list[str], wrong: set[int]) -> list[str]:
    """Predictions that are right on every row but the `wrong` ones."""
    return [flip(g) if i in wrong else g for i, g in enumerate(gold)]


def scores(gold: list[str], predicted: list[str]) -> dict:
    """accuracy, macro_f1 and per_label as the evaluation worker computes them."""
    per_label = {}
    for label in LABELS:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p == label)
        said = sum(1 for p in predicted if p == label)
        support = sum(1 for g in gold if g == label)
        precision = tp / said if said else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    accuracy = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p) / len(gold)
    macro = sum(s["f1"] for s in per_label.values()) / len(per_label)
    return {"accuracy": accuracy, "macro_f1": macro, "per_label": per_label}


def eval_set(tenant, prompt: TaskPrompt, gold: list[str], store: bool = False):
    """A dataset version pinned as the prompt's evaluation set; with `store`, its JSONL rows stored."""
    dataset = make_dataset_version(tenant, name=f"eval-{prompt.name}")
    if store:
        lines = "".join(
            json.dumps({"text": f"review number {i}", "label": g, "split": "train"}) + "\n"
            for i, g in enumerate(gold)
        )
        dataset.storage_key = default_storage.save(
            f"tenants/{tenant.pk}/datasets/{dataset.dataset_id}/1/data.jsonl", ContentFile(lines.encode())
        )
        dataset.save(update_fields=["storage_key"])
    prompt.eval_dataset_version = dataset
    prompt.save(update_fields=["eval_dataset_version"])
    return dataset


def evaluated_version(
    tenant,
    prompt: TaskPrompt,
    number: int,
    dataset=None,
    gold: list[str] | None = None,
    wrong: set[int] | None = None,
    parity: str = ParityStatus.PASSED,
    status: str = VersionStatus.READY,
) -> PromptVersion:
    """A version of `prompt`; with `dataset`, scored on it (wrong on the `wrong` rows of `gold`)."""
    evaluation = {}
    if dataset is not None:
        predicted = outputs(gold, wrong or set())
        evaluation = {
            "dataset_version": str(dataset.pk),
            "rows": len(gold),
            "metrics": scores(gold, predicted),
            "dev_metrics": {"accuracy": 0.9},
            "gap": 0.01,
            "tolerance": 0.05,
            "predictions": predicted,
            "gold": list(gold),
            "evaluated_at": "2026-12-07T09:00:00+00:00",
        }
    return PromptVersion.objects.create(
        tenant=tenant,
        prompt=prompt,
        number=number,
        method="prompt",
        status=status,
        artifact_key=f"a/{number}",
        evaluation=evaluation,
        # Unscored: `none` unless told (pending: being scored, error: the scoring failed).
        parity=ParityStatus.NONE if dataset is None and parity == ParityStatus.PASSED else parity,
    )
