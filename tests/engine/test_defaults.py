"""Each method's defaults: the measured values, importable without torch, the same in every place that
shows them (CLI help, README) and within the platform's time-budget policy."""

import re
import subprocess
import sys
from dataclasses import replace

import pytest

from tests.conftest import ROOT
from workers.contracts import INITS, METHODS, JobKind, JobPolicy, TaskType, inits_for
from workers.engine.cli import _parser
from workers.engine.defaults import (
    CLASSIFICATION,
    DEFAULTS,
    ENSEMBLE,
    GENERATION,
    GENERATION_INIT,
    LABELS_INIT,
    defaults_for,
    defaults_table,
)
from workers.engine.errors import EngineError
from workers.engine.pipeline import train_task
from workers.engine.task import Example, TaskSpec
from workers.engine.trainer import TrainConfig

# The decision of issue 15 (benchmarks/README.md): optimizer, learning rate, init, budget in minutes.
MEASURED = {
    "prompt": ("adamw", 3e-2, "labels", 30),
    "prefix": ("adamw", 5e-4, "vocab", 15),
    "ptuning": ("adamw", 3e-3, "labels", 20),
    "ensemble": ("adamw", 3e-2, "labels", 120),
}


def test_the_defaults_are_the_measured_settings_with_a_reason_each():
    assert set(DEFAULTS) == {*METHODS, ENSEMBLE}
    for method, (optimizer, rate, init, minutes) in MEASURED.items():
        d = DEFAULTS[method]
        assert (d.optimizer, d.learning_rate, d.init, d.max_minutes) == (optimizer, rate, init, minutes)
        assert (d.prompt_length, d.steps) == (20, 1000)
        assert d.reason and "\n" not in d.reason
    assert "87.85%" in DEFAULTS["prompt"].reason and "86.0%" in DEFAULTS["prefix"].reason
    assert "89.05%" in DEFAULTS["ptuning"].reason
    ensemble, prompt = DEFAULTS[ENSEMBLE], DEFAULTS["prompt"]  # its members train as prompt tuning does
    assert (ensemble.optimizer, ensemble.learning_rate, ensemble.init) == (
        prompt.optimizer,
        prompt.learning_rate,
        prompt.init,
    )


def test_defaults_import_without_torch():
    """The platform reads them for its schema and form and must never import torch."""
    code = (
        "import sys; import workers.engine.defaults, workers.contracts; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_train_config_resolves_each_methods_defaults_and_keeps_explicit_choices():
    for method in METHODS:
        config = TrainConfig(method=method)
        d = DEFAULTS[method]
        assert (config.effective_optimizer, config.effective_learning_rate, config.effective_init) == (
            d.optimizer,
            d.learning_rate,
            d.init,
        )
        assert (config.prompt_length, config.steps) == (d.prompt_length, d.steps)
    assert TrainConfig(ensemble_size=5).defaults == DEFAULTS[ENSEMBLE]
    chosen = TrainConfig(method="prefix", init="labels", optimizer="adafactor", learning_rate=0.3)
    assert chosen.to_dict()["init"] == "labels" and chosen.to_dict()["optimizer"] == "adafactor"
    assert chosen.to_dict()["learning_rate"] == 0.3


def test_an_ensemble_of_another_method_keeps_its_methods_settings_with_the_ensemble_budget():
    prefix_bank = defaults_for("prefix", ensemble=True)
    assert (prefix_bank.learning_rate, prefix_bank.init) == (5e-4, "vocab")
    assert prefix_bank.max_minutes == DEFAULTS[ENSEMBLE].max_minutes
    with pytest.raises(ValueError, match="Unknown method"):
        defaults_for("lora")


def test_cli_train_without_optimizer_flags_takes_the_defaults_and_its_help_says_why():
    args = _parser().parse_args(["train", "--train", "t.csv", "--out", "p.safetensors"])
    assert (args.optimizer, args.lr, args.init, args.max_minutes) == (None, None, None, None)
    assert (args.prompt_length, args.steps) == (20, 1000)
    help_text = _parser()._subparsers._group_actions[0].choices["train"].format_help()
    flat = " ".join(help_text.split())
    for method, d in DEFAULTS.items():
        assert f"{method}: {d.describe()}" in flat
        assert " ".join(d.reason.split()) in flat


def test_the_readme_table_is_the_one_defaults_py_makes():
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- defaults:start[^\n]*-->\n(.*?)\n<!-- defaults:end -->", readme, re.S)
    assert found, "README.md lost its defaults table markers"
    assert found.group(1) == defaults_table(), "run: python -c 'from workers.engine.defaults import *; ...'"


def test_the_readme_15_minute_command_relies_on_the_defaults():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"softserve-engine train .*?--max-minutes 15", readme, re.S)
    assert command, "the README's 15-minute SST-2 command is gone"
    assert "--optimizer" not in command.group(0) and "--lr" not in command.group(0)


def test_default_budgets_stay_within_the_platform_maximum():
    policy = JobPolicy()
    for method in METHODS:
        for kind in (JobKind.TUNE, JobKind.ENSEMBLE):
            minutes = policy.default_minutes(method, kind)
            assert minutes == defaults_for(method, ensemble=kind == JobKind.ENSEMBLE).max_minutes
            assert minutes <= policy.job_max_minutes
    with pytest.raises(ValueError, match="ensemble"):
        JobPolicy(job_max_minutes=60)  # below the ensemble's 120-minute default
    override = JobPolicy(job_default_minutes=30, job_max_minutes=60)
    assert override.default_minutes("prompt", JobKind.ENSEMBLE) == 30
    assert JobPolicy.from_env({}).job_default_minutes is None
    assert JobPolicy.from_env({"SOFTSERVE_JOB_DEFAULT_MINUTES": "45"}).default_minutes("prefix", "tune") == 45


def test_every_default_fits_the_task_type():
    """A generation task has no label words: where a method's init is labels it starts from vocab;
    every other default is the same for both task types."""
    assert {t.value for t in TaskType} == {CLASSIFICATION, GENERATION}
    assert {LABELS_INIT, GENERATION_INIT} <= set(INITS)
    for method in DEFAULTS:
        for ensemble in (False, True):
            classification = defaults_for(method, ensemble=ensemble)
            for task_type in TaskType:
                chosen = defaults_for(method, ensemble=ensemble, task_type=task_type)
                assert chosen.init in inits_for(task_type), (method, ensemble, task_type)
                assert replace(chosen, init=classification.init) == classification
    assert [defaults_for(m, task_type=GENERATION).init for m in METHODS] == ["vocab"] * 3
    assert TrainConfig(task_type=GENERATION).effective_init == "vocab"
    assert TrainConfig(task_type=GENERATION, ensemble_size=3).effective_init == "vocab"
    assert TrainConfig(task_type=GENERATION, init="random").effective_init == "random"  # a choice stays
    assert TrainConfig().effective_init == "labels"
    with pytest.raises(EngineError, match="task type"):
        TrainConfig(task_type="regression")
    with pytest.raises(ValueError, match="task type"):
        defaults_for("prompt", task_type="regression")


def test_a_generation_task_trains_with_every_default(tiny_models):
    """The engine's own path (CLI and worker): no init named, a generation task, and it trains from vocab."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    rows = [Example({"text": str(n)}, words[n]) for n in range(10)]
    spec = TaskSpec(GENERATION, "Number: {text}\nWords:", [], {})
    config = TrainConfig(prompt_length=4, steps=2, batch_size=4, eval_every=2, precision="fp32")
    assert config.task_type == CLASSIFICATION  # as the CLI builds it before reading the data
    artifact = train_task(tiny_models["gpt2"], spec, rows[:8], rows[8:], config)
    assert artifact.train_config["init"] == "vocab" and artifact.train_config["task_type"] == GENERATION
    assert artifact.metrics["steps_run"] == 2 and "exact_match" in artifact.metrics["dev"]
