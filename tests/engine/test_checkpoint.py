"""Resumable training: a bank stopped at a checkpoint and resumed ends where an unbroken run ends."""

import pytest
import torch

from common.errors import EngineError
from tests.engine.test_bank_and_ensemble import TOPIC, _config, _topic_data
from tests.engine.test_training import SPEC, _data
from workers.engine.methods.p_tuning import PromptEncoder, PTuningConfig
from workers.engine.methods.prompt_tuning import SoftPrompt, init_prompt
from workers.engine.training.bank import Member
from workers.engine.training.checkpoint import BankState
from workers.engine.training.trainer import train_bank

TASKS = [(SPEC, _data(24, 0), _data(8, 1), 0), (TOPIC, _topic_data(24, 2), _topic_data(8, 3), 5)]


def _members(fm, method: str) -> list[Member]:
    def module(seed):
        initial = init_prompt(fm, 4, "vocab", seed=seed)
        return PromptEncoder(initial, PTuningConfig()) if method == "ptuning" else SoftPrompt(initial)

    return [Member(spec, train, dev, module(seed), seed=seed) for spec, train, dev, seed in TASKS]


@pytest.mark.parametrize(("method", "optimizer"), [("prompt", "adafactor"), ("ptuning", "adamw")])
def test_resumed_bank_equals_an_unbroken_run(tiny, method, optimizer):
    config = _config(steps=6, eval_every=2, optimizer=optimizer, learning_rate=0.05)
    unbroken = train_bank(tiny, _members(tiny, method), config)

    saved: list[bytes] = []
    asked = iter([False, False, False, True])  # the job is cancelled during step 4
    first = train_bank(
        tiny,
        _members(tiny, method),
        config,
        should_stop=lambda: next(asked, True),
        on_checkpoint=lambda state: saved.append(state.to_bytes()),
        checkpoint_every=2,
    )
    assert [r.stop_reason for r in first] == ["stopped", "stopped"]
    assert [BankState.from_bytes(b).step for b in saved] == [2, 4]  # every 2 steps, and at the stop

    resumed = train_bank(tiny, _members(tiny, method), config, resume=BankState.from_bytes(saved[0]))
    for whole, again in zip(unbroken, resumed, strict=True):
        assert again.steps_run == whole.steps_run == 6
        assert again.best_step == whole.best_step
        assert torch.allclose(again.prompt, whole.prompt, atol=1e-5), (
            (again.prompt - whole.prompt).abs().max()
        )
        assert [h["loss"] for h in again.history] == pytest.approx(
            [h["loss"] for h in whole.history], abs=1e-5
        )


def test_a_checkpoint_for_another_bank_or_garbage_is_refused(tiny_models):
    fm = tiny_models["gpt2"]
    saved: list[BankState] = []
    train_bank(
        fm, _members(fm, "prompt")[:1], _config(steps=2), on_checkpoint=saved.append, checkpoint_every=2
    )
    with pytest.raises(EngineError, match="holds 1 members, the bank 2"):
        train_bank(fm, _members(fm, "prompt"), _config(steps=2), resume=saved[0])
    with pytest.raises(EngineError, match="cannot be read"):
        BankState.from_bytes(b"not a checkpoint at all")


def test_a_bank_resumed_from_the_checkpoint_written_at_a_stop_trains_on(tiny_models):
    """A cancelled (or taken-over, or out-of-time) attempt's last checkpoint marks its members stopped; a
    retry resuming from it must go on training, not find nothing to train (it divided by zero)."""
    fm = tiny_models["gpt2"]
    config = _config(steps=6, eval_every=2)
    saved: list[BankState] = []
    asked = iter([False, False, True])  # stopped during step 3
    train_bank(
        fm, _members(fm, "prompt"), config, lambda p: None, lambda: next(asked, True), None, saved.append, 2
    )
    assert saved[-1].step == 3 and all(not run["active"] for run in saved[-1].runs)
    resumed = train_bank(fm, _members(fm, "prompt"), config, resume=saved[-1])
    assert [r.steps_run for r in resumed] == [6, 6] and [r.stop_reason for r in resumed] == ["steps"] * 2
