"""Each method's default job settings and the measurement behind each (benchmarks/README.md).

Standard library only: the platform (which never imports torch) reads these for its API schema and the
new-job form, the engine for `TrainConfig` and the CLI. One place for every default number; the README's
table is checked against this module by a test (tests/engine/test_defaults.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

OPTIMIZERS = ("adafactor", "adamw")
# The precision policy for training and scoring (workers/engine/precision.py says what each means).
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"
# The key of the ensemble row: an ensemble job trains K members of a method, prompt tuning by default
# (the row holds prompt tuning's settings).
ENSEMBLE = "ensemble"
_ENSEMBLE_MEMBERS = "prompt"
# Every method's measurements used these; a method with its own would need TrainConfig to resolve them.
PROMPT_LENGTH = 20
# More than a budget allows on a CPU: the time budget, or early stopping, ends a default job. With 300,
# the README's 15-minute command stopped at its last step while still improving (benchmarks/README.md).
STEPS = 1000
EVAL_EVERY = 50  # steps between dev evaluations, at most
# The task types (the engine's TaskSpec spells them so too) and the one default that depends on them.
CLASSIFICATION, GENERATION = "classification", "generation"
# `labels` starts from the class-label words, which only a classification task has. A generation task
# (free-text targets) starts from words sampled from the vocabulary instead: the first generation task
# tried, number to words, trained with it to 61% exact on 59 unseen numbers in a 4-minute job (issue 21).
# Every other default (optimizer, rate, length, steps, budget) fits both task types.
LABELS_INIT = "labels"
GENERATION_INIT = "vocab"


@dataclass(frozen=True)
class JobDefaults:
    """The job settings that do not depend on the method: the API's, the new-job form's, the worker's (for
    a spec that names none) and the engine's `TrainConfig` defaults."""

    batch_size: int = 16  # training rows per step
    members: int = 5  # an ensemble job's members
    max_members: int = 32  # the most an ensemble may train in one bank
    seed: int = 0


JOB_DEFAULTS = JobDefaults()


def rate_text(rate: float) -> str:
    """A learning rate as the benchmarks write it: 3e-2, 5e-4, 0.3."""
    if rate >= 0.1:
        return f"{rate:g}"
    mantissa, exponent = f"{rate:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


@dataclass(frozen=True)
class MethodDefaults:
    """What a job of one method trains with when it names no setting of its own."""

    optimizer: str
    learning_rate: float
    init: str
    max_minutes: float  # the job's wall-clock budget; never above the platform's maximum (JobPolicy)
    reason: str  # one line: the measured evidence for these values
    prompt_length: int = PROMPT_LENGTH
    steps: int = STEPS

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
        positive = (self.learning_rate, self.max_minutes, self.prompt_length, self.steps)
        if not all(value > 0 for value in positive):
            raise ValueError("A default learning rate, budget, prompt length and step count are positive.")
        if not self.reason or "\n" in self.reason:
            raise ValueError("Every default carries a one-line reason.")

    def describe(self) -> str:
        """The defaults in one phrase, for help texts: "AdamW 3e-2, labels init, P=20, 300 steps, 30 min"."""
        optimizer = {"adamw": "AdamW", "adafactor": "Adafactor"}[self.optimizer]
        return (
            f"{optimizer} {rate_text(self.learning_rate)}, {self.init} init, P={self.prompt_length}, "
            f"{self.steps} steps, {self.max_minutes:g} min"
        )


_PROMPT = MethodDefaults(
    optimizer="adamw",
    learning_rate=3e-2,
    init="labels",
    max_minutes=30.0,
    reason="SST-2: the README's 15-minute command with these defaults (benchmarks/readme_command.py "
    "--seeds 3; bf16 on the 2-core CPU, ~400 steps) scored 88.7 ± 0.4% on 1,000 unseen dev rows and 88.6% "
    "on their 181 whole sentences; AdamW 3e-2 was chosen over Adafactor 0.3 on one 300-step seed each "
    "(87.85% vs 86.00%, 2026-11-25, in benchmarks/README.md's history).",
)

DEFAULTS: dict[str, MethodDefaults] = {
    "prompt": _PROMPT,
    "prefix": MethodDefaults(
        optimizer="adamw",
        learning_rate=5e-4,
        init="vocab",
        max_minutes=15.0,
        reason="SST-2: AdamW 5e-4 with vocab init scores 82.8 ± 3.2% in quality.py's small protocol "
        "(3 seeds; prompt tuning 83.0 ± 1.8%); in 60-step probes (2026-11-25) 5e-3 collapsed to one "
        "class and 1.5e-3 reached 81.7%; a prefix adds no input positions, so its steps are the fastest.",
    ),
    "ptuning": MethodDefaults(
        optimizer="adamw",
        learning_rate=3e-3,
        init="labels",
        max_minutes=20.0,
        reason="SST-2: label init + AdamW 3e-3 scores 82.4 ± 2.5% in quality.py's small protocol (3 "
        "seeds; prompt tuning 83.0 ± 1.8%) and scored 89.05% at 300 steps of 16 (one seed, 2026-11-25); "
        "an MLP encoder needs a gentler rate than prompt tuning's.",
    ),
    ENSEMBLE: replace(
        _PROMPT,
        max_minutes=120.0,
        reason="Members train with prompt tuning's settings (above); on a CPU a K-member bank costs about "
        "K single runs (benchmarks/train_throughput.py), so the budget is larger.",
    ),
}


def eval_every_for(steps: int) -> int:
    """How often a job of `steps` steps that names no interval is evaluated on dev: six times over its
    steps, at most every EVAL_EVERY (the engine CLI's default)."""
    return max(1, min(EVAL_EVERY, steps // 6))


def defaults_for(method: str, ensemble: bool = False, task_type: str = CLASSIFICATION) -> MethodDefaults:
    """The defaults a job of `method` trains with on a task of `task_type`; an ensemble's members train
    with their method's settings under the ensemble's (larger) budget."""
    try:
        chosen = DEFAULTS[method]
    except KeyError:
        raise ValueError(f"Unknown method {method!r}; use one of prompt, ptuning, prefix.") from None
    if task_type not in (CLASSIFICATION, GENERATION):
        raise ValueError(f"Unknown task type {task_type!r}; use {CLASSIFICATION} or {GENERATION}.")
    if ensemble and method != ENSEMBLE:
        chosen = (
            DEFAULTS[ENSEMBLE]
            if method == _ENSEMBLE_MEMBERS
            else replace(chosen, max_minutes=DEFAULTS[ENSEMBLE].max_minutes)
        )
    if task_type == GENERATION and chosen.init == LABELS_INIT:
        chosen = replace(chosen, init=GENERATION_INIT)
    return chosen


def per_method(value: Callable[[MethodDefaults], str], ensemble: bool = True) -> str:
    """One setting's default for each method, for help texts: "prompt labels, prefix vocab, …"."""
    return ", ".join(f"{m} {value(d)}" for m, d in DEFAULTS.items() if ensemble or m != ENSEMBLE)


def defaults_rows() -> list[dict[str, str]]:
    """Each method's defaults as display text, one row per method: the README's table and the new-job
    form's both show these."""
    return [
        {
            "method": method,
            "optimizer": d.optimizer,
            "learning_rate": rate_text(d.learning_rate),
            "init": d.init,
            "prompt_length": str(d.prompt_length),
            "steps": str(d.steps),
            "max_minutes": f"{d.max_minutes:g}",
            "reason": d.reason,
        }
        for method, d in DEFAULTS.items()
    ]


def defaults_table() -> str:
    """The Markdown table the README shows (a test keeps the README's copy equal to this)."""
    lines = [
        "| method | optimizer, learning rate | init | prompt length | steps | time budget | why |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in defaults_rows():
        lines.append(
            f"| {r['method']} | {r['optimizer']} {r['learning_rate']} | {r['init']} | {r['prompt_length']} "
            f"| {r['steps']} | {r['max_minutes']} min | {r['reason']} |"
        )
    return "\n".join(lines)
