"""Metrics: accuracy and macro-F1 for classification, exact match for generation; on request, a
classification's per-label precision, recall and F1 and its confusion matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from common.contracts import TaskType
from common.task import Example, TaskSpec
from workers.engine.base_model import FrozenModel
from workers.engine.inference.predict import LoadedPrompt, predict


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(gold))


# The confusion matrix keeps the labels with the most gold rows and folds the rest into one OTHER row
# and column: a prompt may have up to LIMITS.max_labels (1,000) labels, and a million-cell matrix is
# neither storable per version nor readable. Per-label figures cover every label (linear in labels).
CONFUSION_MAX_LABELS = 20
OTHER = "(other labels)"


def macro_f1(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over the label set (a label never gold nor predicted scores 0)."""
    scores = [row["f1"] for row in per_label(gold, predicted, labels, digits=None).values()]
    return sum(scores) / max(1, len(scores))


def per_label(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str], digits: int | None = 4
) -> dict[str, dict[str, float | int]]:
    """{label: {precision, recall, f1, support}} in label order; one pass over the rows, not one per label.

    A label never predicted has precision 0, one never gold recall 0 (F1 0 either way), as in macro_f1."""
    pairs = Counter(zip(gold, predicted, strict=True))
    gold_n: Counter[str] = Counter()
    predicted_n: Counter[str] = Counter()
    for (g, p), n in pairs.items():
        gold_n[g] += n
        predicted_n[p] += n

    def num(x: float) -> float:
        return x if digits is None else round(x, digits)

    report: dict[str, dict[str, float | int]] = {}
    for label in labels:
        tp = pairs[(label, label)]
        report[label] = {
            "precision": num(tp / predicted_n[label] if predicted_n[label] else 0.0),
            "recall": num(tp / gold_n[label] if gold_n[label] else 0.0),
            "f1": num(2 * tp / (gold_n[label] + predicted_n[label]) if tp else 0.0),
            "support": gold_n[label],
        }
    return report


def confusion(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str], most: int = CONFUSION_MAX_LABELS
) -> dict[str, Any]:
    """{"labels": [...], "matrix": rows = gold, columns = predicted, "folded": how many labels went into
    OTHER}. At most `most` labels (those with the most gold rows, ties in label order) plus OTHER."""
    support = Counter(gold)
    kept = list(labels)
    folded = 0
    if len(kept) > most:
        keep = set(sorted(kept, key=lambda label: -support[label])[:most])
        kept = [label for label in labels if label in keep]
        folded = len(labels) - len(kept)
    index = {label: i for i, label in enumerate(kept)}
    other = len(kept)
    # A gold label outside the prompt's set (data the platform did not check) lands in OTHER too.
    strays = any(g not in index or p not in index for g, p in zip(gold, predicted, strict=True))
    names = [*kept, OTHER] if folded or strays else kept
    matrix = [[0] * len(names) for _ in names]
    for g, p in zip(gold, predicted, strict=True):
        matrix[index.get(g, other)][index.get(p, other)] += 1
    return {"labels": names, "matrix": matrix, "folded": folded}


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(gold: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(_normalise(g) == _normalise(p) for g, p in zip(gold, predicted, strict=True)) / max(
        1, len(gold)
    )


def evaluate(
    fm: FrozenModel,
    prompt: LoadedPrompt,
    examples: Sequence[Example],
    batch_size: int = 32,
    detail: bool = False,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Score a prompt on labelled examples: {"accuracy", "macro_f1", "n"} or {"exact_match", "n"}.

    `detail` adds a classification's "per_label" and "confusion" (the final score a version keeps; the
    probes during training, recorded in the job's history, stay small)."""
    outputs = predict(fm, prompt, [ex.fields for ex in examples], batch_size=batch_size, precision=precision)
    return metrics_of(prompt.spec, len(prompt.members), examples, outputs, detail)


def metrics_of(
    spec: TaskSpec,
    members: int,
    examples: Sequence[Example],
    outputs: Sequence[dict[str, Any]],
    detail: bool = False,
) -> dict[str, Any]:
    """`evaluate`'s figures from predictions already made (`predict`'s outputs for `examples`, in order):
    a training run's final report reuses its best dev evaluation's predictions instead of a second pass."""
    gold = [ex.target for ex in examples]
    if spec.task_type != TaskType.CLASSIFICATION:
        texts = [out["text"] for out in outputs]
        return {"exact_match": round(exact_match(gold, texts), 4), "n": len(examples)}
    labels = [out["label"] for out in outputs]
    metrics = _classification(gold, labels, spec.labels)
    if detail:
        metrics["per_label"] = per_label(gold, labels, spec.labels)
        metrics["confusion"] = confusion(gold, labels, spec.labels)
    if members > 1:
        # The paper's Table 3: every member, their average and best, and the ensemble, from one pass.
        member_metrics = [
            _classification(gold, [out["members"][k] for out in outputs], spec.labels) for k in range(members)
        ]
        metrics["members"] = member_metrics
        metrics["member_avg_accuracy"] = round(sum(m["accuracy"] for m in member_metrics) / members, 4)
        metrics["member_best_accuracy"] = max(m["accuracy"] for m in member_metrics)
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
