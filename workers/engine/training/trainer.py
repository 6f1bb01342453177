"""The training loop shared by the methods: length-bucketed batches, Adafactor or AdamW, gradient
accumulation, periodic dev evaluation with early stopping, and a wall-clock budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any

import torch
from torch import nn

from common.contracts import StopReason
from common.errors import EngineError
from common.task import Example, TaskSpec
from workers.engine.base_model import FrozenModel
from workers.engine.inference.batching import PromptSet
from workers.engine.inference.scoring import target_nll
from workers.engine.methods import METHODS
from workers.engine.precision import autocast
from workers.engine.training.bank import Member, MemberRun
from workers.engine.training.budget import CALIBRATION_ROWS, Budget
from workers.engine.training.checkpoint import BankState
from workers.engine.training.config import TrainConfig
from workers.engine.training.results import Progress, TrainResult


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.effective_optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.effective_learning_rate, weight_decay=config.weight_decay)
    from transformers.optimization import Adafactor

    # The paper's setting: a fixed learning rate, no parameter scaling, no relative step.
    return Adafactor(
        params,
        lr=config.effective_learning_rate,
        scale_parameter=False,
        relative_step=False,
        warmup_init=False,
        weight_decay=config.weight_decay,
    )


def build_module(fm: FrozenModel, config: TrainConfig, initial: torch.Tensor) -> nn.Module:
    """The trainable module of the configured method; calling it yields the prompt it trains."""
    return METHODS[config.method].build(fm, initial, config)


def _length_sorted_chunks(inputs: Sequence[Sized], targets: Sequence[Sized], rows: int) -> list[list[int]]:
    """Row indices in length order, cut every `rows`: a bank's concatenated members pad little.

    Each member's own batch is already length-bucketed, but members bucket independently; one forward
    over all of them would pad every row to the longest member's. On a CPU, compute-bound, every padded
    position costs as much as a real one, so a bank runs in chunks of one member's batch size; a GPU
    gets the whole bank in one forward (that is what a bank is for). A single prompt is one chunk.
    """
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]) + len(targets[i]))
    return [order[start : start + rows] for start in range(0, len(order), rows)]


class _Bank:
    """One attempt at training a bank: its members' runs, their shared optimiser, the budget's clock and
    the seconds spent on dev evaluations. `train_bank` drives it a step at a time."""

    def __init__(
        self,
        fm: FrozenModel,
        members: list[Member],
        config: TrainConfig,
        resume: BankState | None,
        final_evaluation: bool,
    ):
        # The budget counts from here: encoding the data is part of the run's time.
        self.started, self.eval_seconds, self.first_step = time.perf_counter(), 0.0, 1
        self.fm, self.members, self.config = fm, members, config
        torch.manual_seed(config.seed)
        self.runs = [MemberRun(fm, member, config) for member in members]
        for member in members:
            member.module.to(fm.device)
        self.optimizer = make_optimizer([p for m in members for p in m.module.parameters()], config)
        # With a time limit, training stops early enough for what follows it: `final_evaluation` says that
        # the caller scores the returned prompts on dev afterwards (train_task does), within the same budget.
        self.clock = Budget(
            config.max_minutes * 60 if config.max_minutes else math.inf,
            len(members[0].dev),
            len(members),
            final=final_evaluation,
        )
        if resume is not None:
            self._restore(resume)
        self.clock.probe_rows = self.runs[0].probe_rows
        self.clock.evaluated = any(run.best_metric > -math.inf for run in self.runs)

    def _restore(self, resume: BankState) -> None:
        if len(resume.modules) != len(self.members):
            raise EngineError(
                f"The checkpoint holds {len(resume.modules)} members, the bank {len(self.members)}."
            )
        for run, module_state, run_state in zip(self.runs, resume.modules, resume.runs, strict=True):
            run.member.module.load_state_dict(module_state)
            run.restore(run_state)
        self.optimizer.load_state_dict(resume.optimizer)
        self.started, self.first_step = self.started - resume.elapsed_s, resume.step + 1

    def snapshot(self, step: int) -> BankState:
        return BankState(
            step=step,
            elapsed_s=time.perf_counter() - self.started,
            modules=[{k: v.detach().clone() for k, v in m.module.state_dict().items()} for m in self.members],
            optimizer=self.optimizer.state_dict(),
            runs=[run.state() for run in self.runs],
        )

    def plan(self, active: list[MemberRun]) -> None:
        """Time a few dev rows (once per attempt, before the first dev evaluation), then fix the size of
        the dev evaluations (once per run: a resumed run keeps its sample, so its best stays comparable)."""
        clock = self.clock
        if not clock.limited or clock.s_per_row is not None:
            return
        seconds, rows = active[0].time_rows(self.fm, self.config, CALIBRATION_ROWS)
        self.eval_seconds += seconds
        clock.measured(seconds, rows)
        if clock.probe_rows is None:
            clock.probe_rows = clock.plan_probe(len(self.runs[0].dev_probe))
            for run in self.runs:
                run.use_probe_rows(clock.probe_rows)

    def single_reusable(self) -> bool:
        """One member whose dev evaluations score all of dev, and whose best kept its predictions. Before
        any dev evaluation there is nothing to reuse: a stop for time then skips the stop probe and the
        final evaluation scores the last prompt, so its time stays reserved."""
        run = self.runs[0]
        return (
            len(self.runs) == 1 and len(run.dev_probe) == self.clock.dev_rows and run.best_outputs is not None
        )

    def optimise(self, active: list[MemberRun]) -> dict[int, float]:
        """One optimiser step over `grad_accum` batches of every active member; each member's loss."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = dict.fromkeys(range(len(active)), 0.0)
        for _ in range(self.config.grad_accum):
            self._accumulate(active, losses)
        self.optimizer.step()
        return losses

    def _accumulate(self, active: list[MemberRun], losses: dict[int, float]) -> None:
        """Gradients of one batch per active member, all of them in the same forward passes."""
        fm, config = self.fm, self.config
        picks = [run.next_batch() for run in active]
        row_member = [k for k, pick in enumerate(picks) for _ in pick]
        inputs = [run.inputs[i] for run, pick in zip(active, picks, strict=True) for i in pick]
        targets = [run.targets[i] for run, pick in zip(active, picks, strict=True) for i in pick]
        # Sum of per-member means: each member's gradient is the one it would get alone.
        weights = torch.tensor([1.0 / (len(picks[k]) * config.grad_accum) for k in row_member])
        chunk_rows = config.batch_size if fm.device.type == "cpu" else len(inputs)
        for chunk in _length_sorted_chunks(inputs, targets, chunk_rows):
            prompts = PromptSet.from_list([run.member.module() for run in active], fm.embed_dim)
            with autocast(fm.device, config.precision):
                nll = target_nll(
                    fm,
                    prompts,
                    torch.tensor([row_member[i] for i in chunk], dtype=torch.long),
                    [inputs[i] for i in chunk],
                    [targets[i] for i in chunk],
                ).float()  # (rows in chunk,)
            weighted = nll * weights[chunk].to(nll.device)
            weighted.sum().backward()
            for i, loss in zip(chunk, weighted.detach().tolist(), strict=True):
                losses[row_member[i]] += loss
        for k, (run, pick) in enumerate(zip(active, picks, strict=True)):
            run.tokens += sum(len(run.inputs[i]) + len(run.targets[i]) for i in pick)
            run.tokens += len(pick) * int(prompts.lengths[k])  # a prefix adds no input tokens

    def after_step(
        self,
        step: int,
        active: list[MemberRun],
        losses: dict[int, float],
        should_stop: Callable[[], bool] | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> StopReason | None:
        """Evaluate on dev when due (or before a stop), record the step, report progress; returns why
        training stops after this step, if it does."""
        clock = self.clock
        self.plan(active)
        clock.reuse_final = self.single_reusable()
        elapsed = time.perf_counter() - self.started
        out_of_time = clock.out_of_time(elapsed)
        stop_requested = bool(should_stop and should_stop())
        due = step % self.config.eval_every == 0 or step == self.config.steps
        evaluating = due or out_of_time or stop_requested
        if evaluating and not (due or stop_requested) and clock.skip_stop_probe():
            evaluating = False
            for run in active:
                run.keep_current(step)  # the final evaluation scores it: one pass, not two
        self._record(step, active, losses, elapsed, evaluating)
        if evaluating:
            # The prompt was just evaluated: if the rest would not fit after one more step, stop here.
            out_of_time = out_of_time or clock.out_of_time(time.perf_counter() - self.started)
        if on_progress:
            on_progress(self._progress(step, active, losses, elapsed))
        return StopReason.STOPPED if stop_requested else StopReason.TIME_BUDGET if out_of_time else None

    def _record(
        self, step: int, active: list[MemberRun], losses: dict[int, float], elapsed: float, evaluating: bool
    ) -> None:
        """The step in each active member's history, with its dev figures when `evaluating`."""
        eval_started = time.perf_counter()
        for k, run in enumerate(active):
            run.steps = step
            entry: dict[str, Any] = {"step": step, "loss": round(losses[k], 5), "elapsed_s": round(elapsed)}
            if evaluating:
                entry["dev"] = run.evaluate(self.fm, self.config, step)
            run.history.append(entry)
        if evaluating:
            took = time.perf_counter() - eval_started
            self.eval_seconds += took
            self.clock.measured(took, sum(len(run.dev_probe) for run in active))
            self.clock.evaluated = True
            self.clock.reuse_final = self.single_reusable()

    def _progress(
        self, step: int, active: list[MemberRun], losses: dict[int, float], elapsed: float
    ) -> Progress:
        runs, steps = self.runs, self.config.steps
        rate = step / max(elapsed, 1e-9)
        optimising_s = time.perf_counter() - self.started - self.eval_seconds
        bests = [run.best_metric for run in runs if run.best_metric > -math.inf]
        return Progress(
            step,
            steps,
            sum(losses.values()) / len(active),
            sum(run.tokens for run in runs) / max(optimising_s, 1e-9),
            elapsed,
            min((steps - step) / rate, max(self.clock.budget_s - elapsed, 0.0)),
            active[0].history[-1].get("dev") if len(runs) == 1 else None,
            sum(bests) / len(bests) if bests else None,
        )

    def stop(self, reason: StopReason) -> None:
        for run in self.runs:
            if run.active:
                run.active, run.stop_reason = False, reason

    def results(self) -> list[TrainResult]:
        train_seconds = time.perf_counter() - self.started
        final_rows = self.clock.final_rows(self.clock.budget_s - train_seconds)
        return [
            TrainResult(
                prompt=run.best_prompt.cpu(),
                best_step=run.best_step,
                best_dev=run.best_dev,
                steps_run=run.steps,
                stop_reason=run.stop_reason,
                train_seconds=train_seconds,
                train_tokens=run.tokens,
                eval_seconds=self.eval_seconds,
                history=run.history,
                best_outputs=run.best_outputs,
                probe_is_dev=len(run.dev_probe) == self.clock.dev_rows,
                final_rows=final_rows,
                eval_s_per_row=self.clock.s_per_row,
            )
            for run in self.runs
        ]


def train_bank(
    fm: FrozenModel,
    members: list[Member],
    config: TrainConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: BankState | None = None,
    on_checkpoint: Callable[[BankState], None] | None = None,
    checkpoint_every: int = 0,
    final_evaluation: bool = False,
) -> list[TrainResult]:
    """Train N independent prompts in the same batches; returns each member's best dev checkpoint.

    Every member keeps its own parameters (so its own optimiser state), data order and early
    stopping; a step's forward pass carries all active members' rows, each behind its own prompt.
    `on_checkpoint` receives the resumable state every `checkpoint_every` steps and when training
    stops early; `resume` continues from such a state.
    """
    if not members:
        raise EngineError("A bank needs at least one member.")
    bank = _Bank(fm, members, config, resume, final_evaluation)
    step_started = time.perf_counter()
    for step in range(bank.first_step, config.steps + 1):
        active = [run for run in bank.runs if run.active]
        if not active:  # resumed from a checkpoint where every member had already finished
            break
        losses = bank.optimise(active)
        bank.clock.step_took(time.perf_counter() - step_started)
        reason = bank.after_step(step, active, losses, should_stop, on_progress)
        if reason:
            bank.stop(reason)
        finished = not any(run.active for run in bank.runs)
        stop_requested = reason == StopReason.STOPPED
        if on_checkpoint and (stop_requested or (checkpoint_every and step % checkpoint_every == 0)):
            on_checkpoint(bank.snapshot(step))
        if finished:
            break
        step_started = time.perf_counter()
    return bank.results()


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
    member = Member(
        spec=spec, train=train, dev=dev, module=build_module(fm, config, initial), seed=config.seed
    )
    return train_bank(fm, [member], config, on_progress, should_stop)[0]
