"""A bank's members: each prompt's task, data stream, best checkpoint and early-stopping state.

`train_bank` (trainer.py) drives many of these through the same batches; each keeps what it would
have trained alone.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from common.contracts import RESUMABLE_STOPS, StopReason
from common.errors import EngineError
from common.task import Example, TaskSpec
from workers.engine.base_model import FrozenModel
from workers.engine.inference.batching import length_buckets
from workers.engine.inference.encoding import TaskEncoder
from workers.engine.inference.evaluation import headline, metrics_of
from workers.engine.inference.predict import LoadedPrompt, predict
from workers.engine.training.config import TrainConfig


def _dev_subset(dev: list[Example], limit: int | None, seed: int) -> list[Example]:
    if limit is None or len(dev) <= limit:
        return dev
    return random.Random(seed).sample(dev, limit)


@dataclass
class Member:
    """One prompt of a bank: its task, its data, its method module (calling it yields the prompt: (P, E)
    vectors or a prefix) and its seed."""

    spec: TaskSpec
    train: list[Example]
    dev: list[Example]
    module: nn.Module
    seed: int = 0


class MemberRun:
    """A member's moving parts during training: its data stream, best checkpoint and stopping state."""

    def __init__(self, fm: FrozenModel, member: Member, config: TrainConfig):
        if not member.train:
            raise EngineError("The training data is empty.")
        if not member.dev:
            raise EngineError("The dev data is empty; early stopping needs a dev split.")
        self.member = member
        self.encoder = TaskEncoder(fm, member.spec, config.max_input_tokens)
        self.inputs, self.targets = self.encoder.encode(member.train)
        lengths = [len(i) + len(t) for i, t in zip(self.inputs, self.targets, strict=True)]
        # Each member has its own seeded data order: the same batches it would see trained alone.
        self.batches = length_buckets(lengths, config.batch_size, member.seed)
        self.batches_drawn = 0
        self.dev_probe = _dev_subset(member.dev, config.dev_eval_limit, member.seed)
        # Rows of each dev evaluation once the run's budget has planned them (None: the configured limit).
        self.probe_rows: int | None = None
        self.best_metric, self.best_step = -math.inf, 0
        self.best_dev: dict[str, Any] = {}
        # The best evaluation's predictions, in dev_probe order: when the probe is all of dev, the final
        # report is computed from them instead of scoring dev a second time. Not checkpointed.
        self.best_outputs: list[dict[str, Any]] | None = None
        self.best_prompt = member.module().detach().clone()
        self.evals_without_gain, self.tokens, self.steps = 0, 0, 0
        self.stop_reason: StopReason = StopReason.STEPS
        self.active = True
        self.history: list[dict[str, Any]] = []

    def next_batch(self) -> list[int]:
        self.batches_drawn += 1
        return next(self.batches)

    _STATE = (
        *("best_metric", "best_step", "best_dev", "evals_without_gain", "tokens", "steps"),
        *("stop_reason", "active", "history", "batches_drawn", "probe_rows"),
    )

    def state(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self._STATE}, "best_prompt": self.best_prompt}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue where a checkpoint left off: the same data order, at the same position."""
        for _ in range(state["batches_drawn"]):
            next(self.batches)
        for name in self._STATE:
            if name in state:  # a checkpoint from before a field existed keeps its default
                setattr(self, name, state[name])
        if self.probe_rows is not None:
            self.use_probe_rows(self.probe_rows)
        self.best_prompt = state["best_prompt"].to(self.best_prompt.device)
        # A run stopped from outside (a cancel, a lost worker) or by the time budget of that attempt goes
        # on; one that finished by early stopping or its step count stays finished.
        if self.stop_reason in RESUMABLE_STOPS:
            self.active, self.stop_reason = True, StopReason.STEPS

    def use_probe_rows(self, rows: int) -> None:
        """Dev evaluations score `rows` rows (a seeded sample of dev; all of it when dev is no larger)."""
        self.probe_rows = rows
        self.dev_probe = _dev_subset(self.member.dev, rows, self.member.seed)

    def _vectors(self) -> torch.Tensor:
        """The prompt the member's module yields now (its eval mode: no dropout in a prompt encoder)."""
        module = self.member.module
        module.eval()
        with torch.no_grad():
            vectors: torch.Tensor = module().detach()
        module.train()
        return vectors

    def _prompt(self, fm: FrozenModel, config: TrainConfig) -> tuple[torch.Tensor, LoadedPrompt]:
        vectors = self._vectors()
        return vectors, LoadedPrompt.build(fm, vectors, self.member.spec, config.max_input_tokens)

    def time_rows(self, fm: FrozenModel, config: TrainConfig, rows: int) -> tuple[float, int]:
        """Seconds to score the first `rows` rows of the dev probe with the current prompt (nothing is
        recorded): how fast this run evaluates, before its first dev evaluation says so."""
        sample = self.dev_probe[:rows]
        _, prompt = self._prompt(fm, config)
        started = time.perf_counter()
        predict(
            fm,
            prompt,
            [ex.fields for ex in sample],
            batch_size=config.eval_batch_size,
            precision=config.precision,
        )
        return time.perf_counter() - started, len(sample)

    def keep_current(self, step: int) -> None:
        """Keep the prompt as it is now, unevaluated (training stopped before any dev evaluation and the
        caller's final evaluation scores it)."""
        self.best_prompt, self.best_step, self.best_outputs = self._vectors().clone(), step, None

    def evaluate(self, fm: FrozenModel, config: TrainConfig, step: int) -> dict[str, Any]:
        vectors, prompt = self._prompt(fm, config)
        rows = [ex.fields for ex in self.dev_probe]
        outputs = predict(fm, prompt, rows, batch_size=config.eval_batch_size, precision=config.precision)
        metrics = metrics_of(self.member.spec, 1, self.dev_probe, outputs)
        if headline(metrics) > self.best_metric:
            self.best_metric, self.best_step, self.best_dev = headline(metrics), step, metrics
            self.best_prompt = vectors.clone()
            self.best_outputs = outputs
            self.evals_without_gain = 0
        else:
            self.evals_without_gain += 1
            if self.evals_without_gain >= config.patience:
                self.active, self.stop_reason = False, StopReason.EARLY_STOPPING
        return metrics
