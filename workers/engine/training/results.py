"""What training reports: `Progress` while it runs, a `TrainResult` per member when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from common.contracts import StopReason


@dataclass
class Progress:
    step: int
    total_steps: int
    loss: float
    tokens_per_s: float
    elapsed_s: float
    eta_s: float
    dev: dict[str, Any] | None = None
    best_dev: float | None = None


@dataclass
class TrainResult:
    prompt: torch.Tensor  # (P, E): the best dev checkpoint
    best_step: int
    best_dev: dict[str, Any]
    steps_run: int
    stop_reason: StopReason
    train_seconds: float
    train_tokens: int
    eval_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    # The best dev evaluation's predictions (in `dev_probe` order) and whether that probe was all of dev.
    best_outputs: list[dict[str, Any]] | None = None
    probe_is_dev: bool = False
    # How many dev rows the final evaluation may score within the budget (all of dev without one), and the
    # measured seconds per (member, dev row) that planned it.
    final_rows: int = 0
    eval_s_per_row: float | None = None

    @property
    def tokens_per_s(self) -> float:
        """Real (unpadded) tokens per second of optimisation, dev evaluations excluded."""
        return self.train_tokens / max(self.train_seconds - self.eval_seconds, 1e-9)
