"""The training loop shared by the methods: length-bucketed batches, Adafactor or AdamW, gradient
accumulation, periodic dev evaluation with early stopping, and a wall-clock budget."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from workers.engine.base_model import FrozenModel
from workers.engine.batching import PromptSet, length_buckets
from workers.engine.encoding import DEFAULT_MAX_INPUT_TOKENS, TaskEncoder
from workers.engine.errors import EngineError
from workers.engine.evaluation import evaluate, headline
from workers.engine.inference import LoadedPrompt
from workers.engine.prompt_tuning import INIT_STRATEGIES, SoftPrompt, check_prompt_length
from workers.engine.scoring import target_nll
from workers.engine.task import Example, TaskSpec

METHODS = ("prompt",)
OPTIMIZERS = ("adafactor", "adamw")


@dataclass
class TrainConfig:
    method: str = "prompt"
    prompt_length: int = 20
    init: str = "labels"
    init_text: str | None = None
    init_file: str | None = None
    optimizer: str = "adafactor"
    learning_rate: float = 0.3
    weight_decay: float = 1e-5
    batch_size: int = 16
    grad_accum: int = 1
    steps: int = 300
    max_minutes: float | None = None
    eval_every: int = 50
    patience: int = 5
    dev_eval_limit: int | None = 500
    eval_batch_size: int = 32
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EngineError(f"Unknown method {self.method!r}; use one of {', '.join(METHODS)}.")
        check_prompt_length(self.prompt_length)
        if self.init not in INIT_STRATEGIES:
            raise EngineError(f"Unknown init {self.init!r}; use one of {', '.join(INIT_STRATEGIES)}.")
        if self.init == "file" and not self.init_file:
            raise EngineError("The file init needs --init-file, a saved prompt to continue from.")
        if self.optimizer not in OPTIMIZERS:
            raise EngineError(f"Unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
        positive = {
            "learning rate": self.learning_rate,
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
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise EngineError(f"--max-minutes must be positive, got {self.max_minutes}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    stop_reason: str
    train_seconds: float
    train_tokens: int
    eval_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        """Real (unpadded) tokens per second of optimisation, dev evaluations excluded."""
        return self.train_tokens / max(self.train_seconds - self.eval_seconds, 1e-9)


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    from transformers.optimization import Adafactor

    # The paper's setting: a fixed learning rate, no parameter scaling, no relative step.
    return Adafactor(
        params,
        lr=config.learning_rate,
        scale_parameter=False,
        relative_step=False,
        warmup_init=False,
        weight_decay=config.weight_decay,
    )


def _dev_subset(dev: list[Example], limit: int | None, seed: int) -> list[Example]:
    if limit is None or len(dev) <= limit:
        return dev
    return random.Random(seed).sample(dev, limit)


def train_prompt(
    fm: FrozenModel,
    spec: TaskSpec,
    train: list[Example],
    dev: list[Example],
    config: TrainConfig,
    initial: torch.Tensor,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train one prompt from `initial` (P, E); returns the prompt of the best dev evaluation."""
    if not train:
        raise EngineError("The training data is empty.")
    if not dev:
        raise EngineError("The dev data is empty; early stopping needs a dev split.")
    torch.manual_seed(config.seed)
    encoder = TaskEncoder(fm, spec, config.max_input_tokens)
    inputs, targets = encoder.encode(train)
    dev_probe = _dev_subset(dev, config.dev_eval_limit, config.seed)
    soft = SoftPrompt(initial).to(fm.device)
    optimizer = make_optimizer(soft.parameters(), config)
    batches = length_buckets(
        [len(i) + len(t) for i, t in zip(inputs, targets, strict=True)], config.batch_size, config.seed
    )
    budget_s = config.max_minutes * 60 if config.max_minutes else math.inf
    best_metric, best_step, best_dev = -math.inf, 0, {}
    best_prompt = soft.vectors.detach().clone()
    history: list[dict[str, Any]] = []
    evals_without_gain, tokens, stop_reason, eval_seconds = 0, 0, "steps", 0.0
    started = time.perf_counter()
    step = 0
    for step in range(1, config.steps + 1):
        soft.train()
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(config.grad_accum):
            index = next(batches)
            rows = torch.zeros(len(index), dtype=torch.long)
            loss = (
                target_nll(
                    fm,
                    PromptSet.single(soft.vectors),
                    rows,
                    [inputs[i] for i in index],
                    [targets[i] for i in index],
                ).mean()
                / config.grad_accum
            )
            loss.backward()
            step_loss += float(loss.detach())
            tokens += sum(len(inputs[i]) + len(targets[i]) + soft.length for i in index)
        optimizer.step()
        elapsed = time.perf_counter() - started
        out_of_time = elapsed >= budget_s
        stop_requested = bool(should_stop and should_stop())
        entry: dict[str, Any] = {"step": step, "loss": round(step_loss, 5), "elapsed_s": round(elapsed, 2)}
        dev_metrics = None
        if step % config.eval_every == 0 or step == config.steps or out_of_time or stop_requested:
            eval_started = time.perf_counter()
            dev_metrics = evaluate(
                fm,
                LoadedPrompt.build(fm, soft.vectors, spec, config.max_input_tokens),
                dev_probe,
                config.eval_batch_size,
            )
            eval_seconds += time.perf_counter() - eval_started
            entry["dev"] = dev_metrics
            if headline(dev_metrics) > best_metric:
                best_metric, best_step, best_dev = headline(dev_metrics), step, dev_metrics
                best_prompt = soft.vectors.detach().clone()
                evals_without_gain = 0
            else:
                evals_without_gain += 1
        history.append(entry)
        if on_progress:
            rate = step / max(elapsed, 1e-9)
            eta = min((config.steps - step) / rate, max(budget_s - elapsed, 0.0))
            on_progress(
                Progress(
                    step,
                    config.steps,
                    step_loss,
                    tokens / max(elapsed - eval_seconds, 1e-9),
                    elapsed,
                    eta,
                    dev_metrics,
                    best_metric if best_metric > -math.inf else None,
                )
            )
        if stop_requested:
            stop_reason = "stopped"
            break
        if out_of_time:
            stop_reason = "time budget"
            break
        if evals_without_gain >= config.patience:
            stop_reason = "early stopping"
            break
    return TrainResult(
        prompt=best_prompt.cpu(),
        best_step=best_step,
        best_dev=best_dev,
        steps_run=step,
        stop_reason=stop_reason,
        train_seconds=time.perf_counter() - started,
        train_tokens=tokens,
        eval_seconds=eval_seconds,
        history=history,
    )
