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
    if prompt.spec.task_type != "classification":
        texts = [out["text"] for out in outputs]
        return {"exact_match": round(exact_match(gold, texts), 4), "n": len(examples)}
    metrics = _classification(gold, [out["label"] for out in outputs], prompt.spec.labels)
    if len(prompt.members) > 1:
        # The paper's Table 3: every member, their average and best, and the ensemble, from one pass.
        members = [
            _classification(gold, [out["members"][k] for out in outputs], prompt.spec.labels)
            for k in range(len(prompt.members))
        ]
        metrics["members"] = members
        metrics["member_avg_accuracy"] = round(sum(m["accuracy"] for m in members) / len(members), 4)
        metrics["member_best_accuracy"] = max(m["accuracy"] for m in members)
    return metrics


def _classification(gold: list[str], predicted: list[str], labels: Sequence[str]) -> dict[str, Any]:
    return {
        "accuracy": round(accuracy(gold, predicted), 4),
        "macro_f1": round(macro_f1(gold, predicted, labels), 4),
        "n": len(gold),
    }


def headline(metrics: dict[str, Any]) -> float:
    """The number early stopping maximises."""
    return float(metrics.get("accuracy", metrics.get("exact_match", 0.0)))
