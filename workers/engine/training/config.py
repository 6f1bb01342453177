"""A training run's settings: `TrainConfig`, checked when it is made, with the method's defaults resolved
on use (common/defaults.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from common.contracts import Method, TaskType
from common.defaults import (
    DEFAULT_PRECISION,
    JOB_DEFAULTS,
    OPTIMIZERS,
    PROMPT_LENGTH,
    STEPS,
    MethodDefaults,
    defaults_for,
)
from common.errors import EngineError
from workers.engine.inference.encoding import DEFAULT_MAX_INPUT_TOKENS
from workers.engine.methods import METHODS
from workers.engine.methods.prompt_tuning import INIT_FILE, INIT_STRATEGIES, check_prompt_length
from workers.engine.precision import check_precision


@dataclass
class TrainConfig:
    method: str = Method.PROMPT
    prompt_length: int = PROMPT_LENGTH
    # None in `init`, `optimizer`, `learning_rate`: the method's default (common/defaults.py)
    init: str | None = None
    init_text: str | None = None
    init_file: str | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    ptuning_encoder: str = "mlp"
    prefix_reparameterize: bool = True
    ensemble_size: int = 1
    weight_decay: float = 1e-5
    batch_size: int = JOB_DEFAULTS.batch_size
    grad_accum: int = 1
    steps: int = STEPS
    max_minutes: float | None = None  # None: no wall-clock limit (the CLI and the platform set one)
    eval_every: int = 50
    patience: int = 5
    dev_eval_limit: int | None = 500
    eval_batch_size: int = 32
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    # "bf16": autocast the frozen model's matmuls (the prompt stays fp32); "auto": bf16 where native
    precision: str = DEFAULT_PRECISION
    seed: int = JOB_DEFAULTS.seed
    # The task's type decides one default (a generation task has no label words to start from);
    # `train_task` sets it from the task it trains.
    task_type: str = TaskType.CLASSIFICATION

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EngineError(f"Unknown method {self.method!r}; use one of {', '.join(METHODS)}.")
        check_prompt_length(self.prompt_length)
        if self.task_type not in tuple(TaskType):
            raise EngineError(
                f"Unknown task type {self.task_type!r}; "
                f"use {TaskType.CLASSIFICATION} or {TaskType.GENERATION}."
            )
        for entry in METHODS.values():  # every method's own settings are valid, whichever trains
            entry.check(self)
        if not 1 <= self.ensemble_size <= JOB_DEFAULTS.max_members:
            raise EngineError(
                f"An ensemble has 1 to {JOB_DEFAULTS.max_members} members, got {self.ensemble_size}."
            )
        if self.effective_init not in INIT_STRATEGIES:
            raise EngineError(
                f"Unknown init {self.effective_init!r}; use one of {', '.join(INIT_STRATEGIES)}."
            )
        if self.effective_init == INIT_FILE and not self.init_file:
            raise EngineError("The file init needs --init-file, a saved prompt to continue from.")
        if self.effective_optimizer not in OPTIMIZERS:
            raise EngineError(
                f"Unknown optimizer {self.effective_optimizer!r}; use one of {', '.join(OPTIMIZERS)}."
            )
        positive = {
            "learning rate": self.effective_learning_rate,
            "batch size": self.batch_size,
            "gradient accumulation": self.grad_accum,
            "steps": self.steps,
            "eval interval": self.eval_every,
            "patience": self.patience,
            "eval batch size": self.eval_batch_size,
            "max input tokens": self.max_input_tokens,
        }
        for name, value in positive.items():
            if not value > 0:
                raise EngineError(f"The {name} must be positive, got {value}.")
        if self.weight_decay < 0:
            raise EngineError(f"The weight decay must not be negative, got {self.weight_decay}.")
        check_precision(self.precision)
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise EngineError(f"--max-minutes must be positive, got {self.max_minutes}.")

    # None means the method's default, resolved on use rather than written back:
    # `dataclasses.replace(config, method=...)` must not keep the previous method's optimiser or init.
    @property
    def defaults(self) -> MethodDefaults:
        return defaults_for(self.method, ensemble=self.ensemble_size > 1, task_type=self.task_type)

    @property
    def effective_optimizer(self) -> str:
        return self.optimizer or self.defaults.optimizer

    @property
    def effective_learning_rate(self) -> float:
        return self.defaults.learning_rate if self.learning_rate is None else self.learning_rate

    @property
    def effective_init(self) -> str:
        return self.init or self.defaults.init

    def to_dict(self) -> dict[str, Any]:
        """The settings as trained (defaults resolved), for the artifact's metadata."""
        return {
            **asdict(self),
            "init": self.effective_init,
            "optimizer": self.effective_optimizer,
            "learning_rate": self.effective_learning_rate,
        }
