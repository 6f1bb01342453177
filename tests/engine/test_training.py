"""Training lowers the loss on every architecture; the trainer honours its budget, seed and patience."""

import time
from dataclasses import replace

import pytest
import torch

from common.defaults import DEFAULTS
from common.errors import EngineError
from common.task import Example, TaskSpec
from tests.engine.slow import slow_evaluation
from workers.engine.methods.prompt_tuning import init_prompt
from workers.engine.training.budget import MIN_EVAL_ROWS
from workers.engine.training.config import TrainConfig
from workers.engine.training.pipeline import train_task
from workers.engine.training.trainer import train_prompt

SPEC = TaskSpec("classification", "{text}\nAnswer:", ["negative", "positive"])
GOOD = ["good", "great", "lovely", "fine", "superb"]
BAD = ["bad", "awful", "poor", "dull", "weak"]


def _data(n: int, seed: int) -> list[Example]:
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = GOOD if positive else BAD
        word = words[int(torch.randint(len(words), (1,), generator=gen))]
        rows.append(Example({"text": f"the film was {word}"}, "positive" if positive else "negative"))
    return rows


def _train(fm, **overrides):
    config = TrainConfig(
        **{
            "prompt_length": 4,
            "batch_size": 8,
            "steps": 30,
            "eval_every": 10,
            "learning_rate": 0.3,
            "dev_eval_limit": 16,
            **overrides,
        }
    )
    initial = init_prompt(fm, config.prompt_length, "random", seed=config.seed)
    return train_prompt(fm, SPEC, _data(64, 0), _data(16, 1), config, initial)


def test_training_lowers_the_loss(tiny):
    result = _train(tiny)
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert result.prompt.shape == (4, tiny.embed_dim)
    assert result.best_dev["n"] == 16


def test_same_seed_same_prompt_and_grad_accumulation_runs(tiny_models):
    fm = tiny_models["gpt2"]
    first, second = _train(fm, steps=6, eval_every=3), _train(fm, steps=6, eval_every=3)
    assert torch.equal(first.prompt, second.prompt)
    accumulated = _train(fm, steps=3, grad_accum=2, batch_size=4, eval_every=3)
    assert accumulated.steps_run == 3 and accumulated.train_tokens > 0


def test_time_budget_stops_and_keeps_the_best_checkpoint(tiny_models):
    result = _train(tiny_models["llama"], steps=100000, max_minutes=0.02, eval_every=1000)
    assert result.stop_reason == "time budget"
    assert result.steps_run < 100000 and result.best_step == result.steps_run
    assert result.best_dev  # evaluated at the stop


def test_early_stopping_after_patience(tiny_models):
    result = _train(
        tiny_models["gpt2"], steps=200, eval_every=1, patience=2, learning_rate=1e-9, optimizer="adamw"
    )
    assert result.stop_reason == "early stopping"
    assert result.steps_run < 200


def test_the_budget_holds_with_a_slow_final_evaluation(tiny_models):
    """Scoring all 200 dev rows takes as long as the whole 6-second budget (30 ms a row). Training stops
    early enough for the evaluation at the stop and a final evaluation of the sample that fits, and the
    metrics say how much of dev that was. (Before: 6 s of training, then dev scored twice: 3x the budget.)"""
    fm = tiny_models["gpt2"]
    config = TrainConfig(
        prompt_length=4, batch_size=8, steps=100_000, eval_every=100_000, max_minutes=0.1, eval_batch_size=8
    )
    dev = _data(200, 1)
    started = time.perf_counter()
    with slow_evaluation(fm, 0.03):
        artifact = train_task(fm, SPEC, _data(64, 0), dev, config)
    wall = time.perf_counter() - started
    metrics = artifact.metrics
    print(f"wall {wall:.2f} s:", {k: v for k, v in metrics.items() if k != "dev"})
    assert wall <= 1.1 * 6.0, (wall, metrics)
    assert metrics["stop_reason"] == "time budget" and metrics["steps_run"] > 1
    assert metrics["dev_rows"] == 200 and MIN_EVAL_ROWS <= metrics["final_eval_rows"] < 200
    assert metrics["dev"]["n"] == metrics["final_eval_rows"] and "confusion" in metrics["dev"]
    assert metrics["eval_s_per_row"] >= 0.03  # measured while training: the sleep (per pass) and the model


def test_a_dev_split_the_probe_covered_is_reported_without_a_second_pass(tiny_models):
    """One prompt whose dev evaluations score all of dev: the final report (per-label figures, confusion)
    comes from the best evaluation's predictions; a second pass would take 0.5 s here."""
    fm = tiny_models["gpt2"]
    config = TrainConfig(
        prompt_length=4, batch_size=8, steps=6, eval_every=3, max_minutes=1, eval_batch_size=8
    )
    with slow_evaluation(fm, 0.03):
        artifact = train_task(fm, SPEC, _data(32, 0), _data(16, 1), config)
    metrics = artifact.metrics
    assert metrics["final_eval_rows"] == metrics["dev_rows"] == 16 and metrics["stop_reason"] == "steps"
    assert metrics["final_eval_seconds"] < 0.2 and metrics["dev"]["per_label"]["positive"]["support"] == 8


@pytest.mark.parametrize(
    "bad",
    [
        {"prompt_length": 0},
        {"prompt_length": 151},
        {"init": "zeros"},
        {"optimizer": "sgd"},
        {"learning_rate": 0},
        {"batch_size": 0},
        {"steps": -1},
        {"method": "lora"},
        {"init": "file"},
        {"max_minutes": 0},
        {"weight_decay": -1},
    ],
)
def test_config_refuses_bad_values(bad):
    with pytest.raises(EngineError):
        TrainConfig(**bad)


def test_a_config_copied_for_another_method_takes_that_methods_optimiser():
    """`replace(config, method=...)` re-resolves the defaults (a benchmark once trained prefixes with
    prompt tuning's Adafactor at 0.3 this way); an explicit choice is kept."""
    prompt = TrainConfig()
    prefix = replace(prompt, method="prefix")
    for config, method in ((prompt, "prompt"), (prefix, "prefix")):
        expected = DEFAULTS[method]
        resolved = (config.effective_optimizer, config.effective_learning_rate, config.effective_init)
        assert resolved == (expected.optimizer, expected.learning_rate, expected.init)
    assert (prompt.effective_optimizer, prompt.effective_learning_rate, prompt.effective_init) == (
        "adamw",
        3e-2,
        "labels",
    )
    assert prefix.to_dict()["optimizer"] == "adamw" and prefix.to_dict()["init"] == "vocab"
    assert prefix.to_dict()["learning_rate"] == 5e-4
    chosen = replace(TrainConfig(optimizer="adamw", learning_rate=0.01), method="ptuning")
    assert (chosen.effective_optimizer, chosen.effective_learning_rate) == ("adamw", 0.01)


def test_auto_precision_takes_bf16_only_where_the_device_runs_it_natively(monkeypatch):
    from workers.engine import precision

    cpu = torch.device("cpu")
    assert TrainConfig().precision == "auto"
    assert (precision.resolved_precision("fp32", cpu), precision.resolved_precision("bf16", cpu)) == (
        "fp32",
        "bf16",
    )
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert precision.resolved_precision("auto", cpu) == expected
    assert precision.resolved_precision("auto", torch.device("meta")) == "fp32"
    with pytest.raises(EngineError, match="auto, fp32 or bf16"):
        TrainConfig(precision="fp16")
