"""Each method's defaults: what a config, a job spec and the CLI with no settings resolve to and train
with, importable without torch, the same in every place that shows them (CLI help, README) and within the
platform's time-budget policy."""

import re
import subprocess
import sys
from dataclasses import replace

import pytest

from common.contracts import INITS, METHODS, JobKind, JobPolicy, TaskType, inits_for
from common.defaults import (
    CLASSIFICATION,
    DEFAULTS,
    ENSEMBLE,
    GENERATION,
    GENERATION_INIT,
    LABELS_INIT,
    defaults_for,
    defaults_table,
)
from common.errors import EngineError
from common.task import Example, TaskSpec
from tests.conftest import ROOT
from workers.engine.cli import _parser
from workers.engine.training.config import TrainConfig
from workers.engine.training.pipeline import train_task

# The decision of issue 15 (benchmarks/README.md): optimizer, learning rate, init, budget in minutes.
MEASURED = {
    "prompt": ("adamw", 3e-2, "labels", 30),
    "prefix": ("adamw", 5e-4, "vocab", 15),
    "ptuning": ("adamw", 3e-3, "labels", 20),
    "ensemble": ("adamw", 3e-2, "labels", 120),
}


def test_the_defaults_are_the_decided_settings_and_the_ensemble_trains_as_prompt_tuning():
    assert set(DEFAULTS) == {*METHODS, ENSEMBLE}
    for method, (optimizer, rate, init, minutes) in MEASURED.items():
        d = DEFAULTS[method]
        assert (d.optimizer, d.learning_rate, d.init, d.max_minutes) == (optimizer, rate, init, minutes)
        assert (d.prompt_length, d.steps) == (20, 1000)
        assert d.reason and "\n" not in d.reason  # one line in the help, the schema and the tables
    ensemble, prompt = DEFAULTS[ENSEMBLE], DEFAULTS["prompt"]  # its members train as prompt tuning does
    assert (ensemble.optimizer, ensemble.learning_rate, ensemble.init) == (
        prompt.optimizer,
        prompt.learning_rate,
        prompt.init,
    )


def _resolved(config: TrainConfig) -> tuple:
    return (config.effective_optimizer, config.effective_learning_rate, config.effective_init)


def _declared(d) -> tuple:
    return (d.optimizer, d.learning_rate, d.init)


@pytest.mark.parametrize("method", METHODS)
def test_a_config_with_no_settings_trains_each_method_with_its_defaults(method, tiny_models):
    """Alone and as a 2-member ensemble: the config is valid, the optimiser the trainer builds is the
    declared one at the declared rate, and the artifact records the declared settings."""
    import torch
    from transformers.optimization import Adafactor

    from common.task import Example, TaskSpec
    from workers.engine.training.pipeline import train_task
    from workers.engine.training.trainer import build_module, make_optimizer

    fm = tiny_models["gpt2"]
    spec = TaskSpec("classification", "Review: {text}\nSentiment:", ["negative", "positive"])
    words = ["good fun", "bad film", "great acting", "awful plot"]
    rows = [Example({"text": words[i % 4]}, ["positive", "negative"][i % 2]) for i in range(12)]
    for members in (1, 2):
        # Only the run's length is set: two steps instead of the default 1,000.
        config = TrainConfig(method=method, ensemble_size=members, steps=2, eval_every=2, batch_size=4)
        declared = defaults_for(method, ensemble=members > 1)
        assert _resolved(config) == _declared(declared)
        assert (config.prompt_length, config.precision) == (declared.prompt_length, "auto")
        module = build_module(fm, config, torch.zeros(config.prompt_length, fm.embed_dim))
        optimizer = make_optimizer(list(module.parameters()), config)
        kind = {"adamw": torch.optim.AdamW, "adafactor": Adafactor}[declared.optimizer]
        assert isinstance(optimizer, kind) and optimizer.param_groups[0]["lr"] == declared.learning_rate
        artifact = train_task(fm, spec, rows[:8], rows[8:], config)
        recorded = artifact.train_config
        assert (recorded["optimizer"], recorded["learning_rate"], recorded["init"]) == _declared(declared)
        assert recorded["prompt_length"] == declared.prompt_length == 20
        assert len(artifact.members) == members and artifact.metrics["steps_run"] == 2


def test_the_worker_turns_a_job_spec_without_settings_into_the_declared_defaults():
    """A spec that names only its method (one written before the platform recorded the defaults) trains
    with the method's declared settings, budget and step count; an ensemble with 5 members."""
    from workers.config import WorkerConfig
    from workers.runner import _train_config, budget_minutes

    for method in METHODS:
        for kind in (JobKind.TUNE, JobKind.ENSEMBLE):
            spec = {"method": method}
            declared = defaults_for(method, ensemble=kind == JobKind.ENSEMBLE)
            minutes = budget_minutes(spec, kind, WorkerConfig())
            assert minutes == declared.max_minutes
            config = _train_config(spec, kind, minutes)
            assert _resolved(config) == _declared(declared), (method, kind)
            assert (config.prompt_length, config.steps) == (declared.prompt_length, declared.steps)
            assert config.max_minutes == declared.max_minutes
            assert config.ensemble_size == (5 if kind == JobKind.ENSEMBLE else 1)
            # What the job spec names replaces the default, the rest stays the method's.
            chosen = _train_config({**spec, "optimizer": "adafactor", "learning_rate": 0.3}, kind, minutes)
            assert _resolved(chosen) == ("adafactor", 0.3, declared.init)


def test_the_cli_with_no_settings_trains_with_the_declared_defaults(tmp_path, tiny_model_dirs):
    """`softserve-engine train` naming only a method and K: prefix tuning's optimiser, rate and init, the
    ensemble's budget, the default prompt length, in the artifact it writes."""
    from tests.engine.test_cli import _write_csv, last_json, run_cli
    from workers.engine.artifacts.artifact import load_artifact

    train, dev = _write_csv(tmp_path / "train.csv", 12), _write_csv(tmp_path / "dev.csv", 4, offset=1)
    out = tmp_path / "prefix.safetensors"
    model = str(tiny_model_dirs["gpt2"])
    args = ["train", "--train", str(train), "--dev", str(dev), "--out", str(out), "--base-model", model]
    summary = last_json(run_cli(*args, "--method", "prefix", "--ensemble", "2", "--steps", "1", "--json"))
    recorded = load_artifact(str(out)).train_config
    declared = defaults_for("prefix", ensemble=True)
    assert (recorded["optimizer"], recorded["learning_rate"], recorded["init"]) == _declared(declared)
    assert recorded["max_minutes"] == declared.max_minutes == DEFAULTS[ENSEMBLE].max_minutes
    assert (recorded["prompt_length"], recorded["ensemble_size"]) == (declared.prompt_length, 2)
    assert summary["steps_run"] == 1


def test_defaults_import_without_torch():
    """The platform reads them for its schema and form and must never import torch."""
    code = (
        "import sys; import common.defaults, common.contracts; "
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
    assert found.group(1) == defaults_table(), "run: python -c 'from common.defaults import *; ...'"


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
