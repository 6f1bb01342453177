"""One call from labelled examples to a finished artifact: what the CLI and the workers both run."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import torch

from common.contracts import StopReason
from common.task import Example, TaskSpec
from workers.engine.artifacts.artifact import PromptArtifact, ensemble_tensors, load_artifact
from workers.engine.base_model import FrozenModel
from workers.engine.inference.evaluation import evaluate, metrics_of
from workers.engine.inference.predict import LoadedPrompt
from workers.engine.methods.prompt_tuning import INIT_FILE, init_prompt
from workers.engine.training.bank import Member
from workers.engine.training.checkpoint import BankState
from workers.engine.training.config import TrainConfig
from workers.engine.training.results import Progress, TrainResult
from workers.engine.training.trainer import build_module, train_bank


def initial_prompts(fm: FrozenModel, spec: TaskSpec, config: TrainConfig) -> list[torch.Tensor]:
    """A starting (P, E) prompt per member; member k draws with seed `seed + k`."""
    if config.effective_init == INIT_FILE:
        # TrainConfig refuses the file init without a file, so init_file is set here.
        start = load_artifact(cast(str, config.init_file))
        start.check_fits(fm)
        config.prompt_length = start.prompt_length
        members = start.members
        return [members[k % len(members)].clone() for k in range(config.ensemble_size)]
    words = [spec.verbalizer[label] for label in spec.labels]
    return [
        init_prompt(
            fm,
            config.prompt_length,
            config.effective_init,
            label_words=words,
            text=config.init_text,
            seed=config.seed + k,
        )
        for k in range(config.ensemble_size)
    ]


def _final_evaluation(
    fm: FrozenModel,
    spec: TaskSpec,
    dev: list[Example],
    config: TrainConfig,
    results: list[TrainResult],
    prompts: list[torch.Tensor],
) -> tuple[dict[str, Any], float]:
    """The version's dev report and the seconds it took: the best evaluation's own predictions when that
    scored all of dev (one prompt), else a pass over dev, or over the seeded sample the budget left room
    for (`final_rows`)."""
    lead, started = results[0], time.perf_counter()
    if lead.stop_reason == StopReason.STOPPED:  # a cancelled job: stop now, with the probe's figures
        return lead.best_dev, 0.0
    if len(results) == 1 and lead.probe_is_dev and lead.best_outputs is not None:
        # The probe scored dev in its own (seeded, here identity) order: dev_probe is dev itself.
        final = metrics_of(spec, 1, dev, lead.best_outputs, detail=True)
        return final, time.perf_counter() - started
    rows = dev if lead.final_rows >= len(dev) else random.Random(config.seed).sample(dev, lead.final_rows)
    final = evaluate(
        fm,
        LoadedPrompt.build(fm, prompts, spec, config.max_input_tokens),
        rows,
        config.eval_batch_size,
        detail=True,  # the version keeps per-label figures and the confusion matrix
        # The precision the run trained and probed at (its evaluation speed was measured so).
        precision=config.precision,
    )
    return final, time.perf_counter() - started


def train_task(
    fm: FrozenModel,
    spec: TaskSpec,
    train: list[Example],
    dev: list[Example],
    config: TrainConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: BankState | None = None,
    on_checkpoint: Callable[[BankState], None] | None = None,
    checkpoint_every: int = 0,
) -> PromptArtifact:
    """Train the configured method (K members for an ensemble, in one bank) and score it on all of dev.

    Checkpointing and `resume` are `train_bank`'s (a worker resumes a job from its last checkpoint).
    The defaults that depend on the task's type (the init) follow `spec`.
    """
    if config.task_type != spec.task_type:
        config = replace(config, task_type=spec.task_type)
    members = [
        Member(
            spec=spec, train=train, dev=dev, module=build_module(fm, config, initial), seed=config.seed + k
        )
        for k, initial in enumerate(initial_prompts(fm, spec, config))
    ]
    results = train_bank(
        fm,
        members,
        config,
        on_progress,
        should_stop,
        resume,
        on_checkpoint,
        checkpoint_every,
        final_evaluation=True,
    )
    prompts = [result.prompt for result in results]
    lead = results[0]
    final, final_s = _final_evaluation(fm, spec, dev, config, results, prompts)
    return PromptArtifact(
        tensors=ensemble_tensors(prompts),
        method=config.method,
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=spec,
        train_config=config.to_dict(),
        metrics={
            "dev": final,
            "best_step": [r.best_step for r in results] if len(results) > 1 else lead.best_step,
            "steps_run": max(r.steps_run for r in results),
            "stop_reason": lead.stop_reason,
            "train_seconds": round(lead.train_seconds, 2),
            "tokens_per_s": round(
                sum(r.train_tokens for r in results) / max(lead.train_seconds - lead.eval_seconds, 1e-9), 1
            ),
            # How much of dev the final score covers (a budget may leave room for a sample only), and what
            # that evaluation cost.
            "final_eval_rows": final.get("n", 0),
            "dev_rows": len(dev),
            "final_eval_seconds": round(final_s, 2),
            "eval_s_per_row": round(lead.eval_s_per_row, 4) if lead.eval_s_per_row is not None else None,
        },
    )
