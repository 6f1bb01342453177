"""Alias gates: may a version take traffic from the one it replaces, judged on the evaluation set?

A gate policy (`Alias.policy`'s "metric", "min", "max_regression", "alpha") is checked when a move routes
traffic to a version that had none (a new primary, or a new split entry with weight): the candidate's
metric must reach `min`, must not fall more than `max_regression` (absolute) below the version it
replaces, and must not be significantly worse on the paired rows (McNemar's exact test). Both versions'
scores come from `PromptVersion.evaluation`, which the evaluation worker fills by scoring each ready
version on the prompt's evaluation set through the serving pool. A gate that cannot check (no set, no
score yet, the scoring failed) does not pass: the refusal says why, and an owner may override it.

Everything here but `versions_by_number` (the one query) is pure: it reads the rows it is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.contracts import ParityStatus
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.tenancy.models import Tenant

GATE_KEYS = ("metric", "min", "max_regression", "alpha")
ROLLBACK_KEYS = ("max_error_rate", "max_p95_ms", "window_s", "min_requests")
METRICS = ("accuracy", "macro_f1")
DEFAULT_METRIC = "accuracy"
DEFAULT_ALPHA = 0.05
# Scores are fractions of rows: differences below this are float noise (0.79 - 0.80 is -0.0100000…09,
# which must not fail a 0.01 allowance).
EPSILON = 1e-9


class Evaluated(Protocol):
    """What a verdict reads of a version (a PromptVersion, or anything shaped like one)."""

    number: int
    parity: str
    evaluation: dict


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: under "the two versions are as good", each of the n = b + c
    discordant rows is equally likely to favour either, so min(b, c) is Binomial(n, 1/2); the p-value is
    twice its lower tail, capped at 1. Exact integer arithmetic (math.comb), no approximation."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def discordant(gold: Sequence, current: Sequence, candidate: Sequence) -> tuple[int, int]:
    """(b, c): rows the current version gets right and the candidate wrong, and the reverse."""
    b = c = 0
    for truth, old, new in zip(gold, current, candidate, strict=True):
        if old == truth and new != truth:
            b += 1
        elif new == truth and old != truth:
            c += 1
    return b, c


def has_gate(policy: dict | None) -> bool:
    """Whether a policy gates moves (the canary's rollback limits alone do not)."""
    return any(key in (policy or {}) for key in GATE_KEYS)


@dataclass
class Verdict:
    """The gate's answer for one candidate version against the version it replaces (None: a new alias)."""

    version: int
    against: int | None
    gated: bool
    metric: str
    min: float | None = None
    max_regression: float | None = None
    alpha: float = DEFAULT_ALPHA
    candidate: float | None = None
    current: float | None = None
    regression: float | None = None
    mcnemar: dict[str, Any] | None = None
    rows: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.gated or not self.reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "against": self.against,
            "gated": self.gated,
            "passed": self.passed,
            "metric": self.metric,
            "min": self.min,
            "max_regression": self.max_regression,
            "alpha": self.alpha,
            "candidate": self.candidate,
            "current": self.current,
            "regression": self.regression,
            "mcnemar": self.mcnemar,
            "rows": self.rows,
            "reasons": list(self.reasons),
        }


def _missing(version: Evaluated, eval_set: str | None, role: str) -> str | None:
    """Why `version` has no usable score on the evaluation set (None: it has one)."""
    name = f"v{version.number}{role}"
    evaluation = version.evaluation or {}
    if version.parity == ParityStatus.PENDING:
        return f"{name} is still being scored on the evaluation set."
    if version.parity == ParityStatus.ERROR:
        why = evaluation.get("error") or "no reason recorded"
        return f"{name} could not be scored on the evaluation set: {why}."
    if not evaluation.get("metrics"):
        return f"{name} has no score on the evaluation set."
    if eval_set is not None and str(evaluation.get("dataset_version")) != eval_set:
        return f"{name} was scored on another evaluation set than the prompt's."
    return None


def _score(version: Evaluated, metric: str) -> float | None:
    value = ((version.evaluation or {}).get("metrics") or {}).get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def paired(current: Evaluated, candidate: Evaluated) -> tuple[int, int, int] | str:
    """(b, c, rows) of McNemar's test on the two versions' per-row outputs, or why they cannot be paired."""
    old, new = current.evaluation or {}, candidate.evaluation or {}
    if str(old.get("dataset_version")) != str(new.get("dataset_version")):
        return f"v{current.number} and v{candidate.number} were scored on different evaluation sets."
    gold = new.get("gold") or old.get("gold")
    before, after = old.get("predictions"), new.get("predictions")
    if not isinstance(gold, list) or not isinstance(before, list) or not isinstance(after, list):
        return "The evaluations keep no per-row outputs to pair."
    if not len(gold) == len(before) == len(after):
        return f"The evaluations do not pair: {len(before)} and {len(after)} outputs for {len(gold)} rows."
    b, c = discordant(gold, before, after)
    return b, c, len(gold)


def verdict(
    policy: dict | None, candidate: Evaluated, current: Evaluated | None, eval_set: str | None
) -> Verdict:
    """The gate's verdict on routing traffic to `candidate` in place of `current` (None for a new alias),
    on the prompt's evaluation set `eval_set` (a dataset version id; None: the prompt pins none). The
    figures are filled wherever the scores allow, gated or not (the UI shows them before a move)."""
    policy = policy or {}
    metric = policy.get("metric") or DEFAULT_METRIC
    result = Verdict(
        version=candidate.number,
        against=current.number if current is not None else None,
        gated=has_gate(policy),
        metric=metric,
        min=policy.get("min"),
        max_regression=policy.get("max_regression"),
        alpha=policy.get("alpha", DEFAULT_ALPHA),
    )
    reasons = result.reasons
    if eval_set is None:
        reasons.append("The prompt pins no evaluation set: the gate has nothing to check on.")
        return result
    problem = _missing(candidate, eval_set, "")
    if problem:
        reasons.append(problem)
        return result
    if candidate.parity == ParityStatus.FAILED:
        gap = (candidate.evaluation or {}).get("gap")
        detail = f" (gap {gap:.3f} between training and serving)" if isinstance(gap, int | float) else ""
        reasons.append(f"v{candidate.number} failed train/serve parity{detail}.")
    result.candidate = _score(candidate, metric)
    result.rows = (candidate.evaluation or {}).get("rows")
    if result.candidate is None:
        reasons.append(f"v{candidate.number}'s evaluation has no {metric}.")
        return result
    if result.min is not None and result.candidate < result.min - EPSILON:
        reasons.append(f"{metric} {result.candidate:.4f} is below the minimum {result.min:.4f}.")
    if current is None or current.number == candidate.number:
        return result
    problem = _missing(current, eval_set, " (the version it replaces)")
    if problem:
        reasons.append(problem + " The gate cannot compare the two.")
        return result
    result.current = _score(current, metric)
    if result.current is None:
        reasons.append(f"v{current.number}'s evaluation has no {metric}.")
        return result
    change = result.candidate - result.current
    result.regression = round(change, 6)
    if result.max_regression is not None and change < -result.max_regression - EPSILON:
        reasons.append(
            f"{metric} falls {-change:.4f} below v{current.number}'s {result.current:.4f}; at most "
            f"{result.max_regression:.4f} is allowed."
        )
    pairs = paired(current, candidate)
    if isinstance(pairs, str):
        reasons.append(pairs)
        return result
    b, c, _ = pairs
    p_value = mcnemar_exact(b, c)
    result.mcnemar = {"b": b, "c": c, "p_value": p_value}
    if p_value < result.alpha and c < b:
        reasons.append(
            f"v{candidate.number} is significantly worse than v{current.number} on the paired rows: "
            f"{b} rows only v{current.number} gets right, {c} only v{candidate.number} (McNemar exact "
            f"p = {p_value:.4g} < {result.alpha})."
        )
    return result


def routed_versions(primary: int | None, split: Iterable[dict]) -> set[int]:
    """The version numbers that take traffic: the primary and every split entry with a weight."""
    routed = {int(e["version"]) for e in split if int(e.get("weight", 0)) > 0}
    if primary is not None:
        routed.add(primary)
    return routed


def versions_by_number(
    tenant: Tenant, prompt: TaskPrompt, numbers: Iterable[int]
) -> dict[int, PromptVersion]:
    """The prompt's versions with these numbers, in the caller's tenant: {number: PromptVersion}."""
    wanted = set(numbers)
    if not wanted:
        return {}
    rows = (
        PromptVersion.objects.for_tenant(tenant)
        .filter(prompt=prompt, number__in=wanted)
        .defer("inspection")  # a verdict reads the evaluation, never the nearest-token view
    )
    return {v.number: v for v in rows}
