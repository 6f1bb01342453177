"""Metrics: accuracy and macro-F1 for classification, exact match for generation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.engine.base_model import FrozenModel
from workers.engine.inference import LoadedPrompt, predict
from workers.engine.task import Example


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(gold))


def macro_f1(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over the label set (a label never gold nor predicted scores 0)."""
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / max(1, len(scores))


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(gold: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(_normalise(g) == _normalise(p) for g, p in zip(gold, predicted, strict=True)) / max(
        1, len(gold)
    )


def evaluate(
    fm: FrozenModel, prompt: LoadedPrompt, examples: Sequence[Example], batch_size: int = 32
) -> dict[str, Any]:
    """Score a prompt on labelled examples: {"accuracy", "macro_f1", "n"} or {"exact_match", "n"}."""
    outputs = predict(fm, prompt, [ex.fields for ex in examples], batch_size=batch_size)
    gold = [ex.target for ex in examples]
    if prompt.spec.task_type == "classification":
        predicted = [out["label"] for out in outputs]
        return {
            "accuracy": round(accuracy(gold, predicted), 4),
            "macro_f1": round(macro_f1(gold, predicted, prompt.spec.labels), 4),
            "n": len(examples),
        }
    return {"exact_match": round(exact_match(gold, [out["text"] for out in outputs]), 4), "n": len(examples)}


def headline(metrics: dict[str, Any]) -> float:
    """The number early stopping maximises."""
    return float(metrics.get("accuracy", metrics.get("exact_match", 0.0)))
