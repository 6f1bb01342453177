"""The `softserve-engine` command: every subcommand end to end on a tiny model, and clean failures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

GOOD = ["good", "great", "lovely", "fine", "superb"]
BAD = ["bad", "awful", "poor", "dull", "weak"]


def _write_csv(path: Path, n: int, offset: int = 0) -> Path:
    lines = ["text,label"]
    for i in range(offset, offset + n):
        positive = i % 2 == 0
        lines.append(
            f"the film was {(GOOD if positive else BAD)[i % 5]},{'positive' if positive else 'negative'}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("softserve-engine")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workers.engine.cli"]
    # PYTHONPATH: the checkout under test, not wherever the shared virtualenv's editable install points.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dirs):
    folder = tmp_path_factory.mktemp("cli")
    train, dev = _write_csv(folder / "train.csv", 40), _write_csv(folder / "dev.csv", 10, offset=1)
    out = folder / "prompt.safetensors"
    result = run_cli(
        "train",
        "--train",
        str(train),
        "--dev",
        str(dev),
        "--out",
        str(out),
        "--base-model",
        str(tiny_model_dirs["gpt2"]),
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--prompt-length",
        "4",
        "--train-batch-size",
        "8",
        "--json",
    )
    return {
        "summary": last_json(result),
        "stderr": result.stderr,
        "out": out,
        "dev": dev,
        "train": train,
        "folder": folder,
    }


def test_train_writes_artifact_and_reports(trained):
    summary = trained["summary"]
    assert trained["out"].is_file()
    assert summary["labels"] == ["negative", "positive"] and summary["steps_run"] == 6
    assert set(summary["dev"]) == {"accuracy", "macro_f1", "n", "per_label", "confusion"}
    assert summary["dev"]["n"] == 10 and sum(map(sum, summary["dev"]["confusion"]["matrix"])) == 10
    assert "step" in trained["stderr"]  # the tqdm bar
    assert 1 <= summary["best_step"] <= 6  # early stopping's pick, reported


def test_train_without_optimizer_flags_trains_with_the_methods_defaults(trained):
    """The `trained` run names no --optimizer, --lr, --init or --max-minutes."""
    from common.defaults import DEFAULTS
    from workers.engine.artifacts.artifact import load_artifact

    config = load_artifact(str(trained["out"])).train_config
    prompt = DEFAULTS["prompt"]
    assert (config["optimizer"], config["learning_rate"], config["init"]) == (
        prompt.optimizer,
        prompt.learning_rate,
        prompt.init,
    )
    assert config["max_minutes"] == prompt.max_minutes


def test_train_without_dev_uses_a_split(tmp_path, tiny_model_dirs):
    train = _write_csv(tmp_path / "t.jsonl.csv", 30)
    out = tmp_path / "p.safetensors"
    summary = last_json(
        run_cli(
            "train",
            "--train",
            str(train),
            "--out",
            str(out),
            "--base-model",
            str(tiny_model_dirs["llama"]),
            "--steps",
            "2",
            "--prompt-length",
            "3",
            "--json",
        )
    )
    assert summary["dev"]["n"] == 3


def test_eval_predict_inspect(trained, tiny_model_dirs):
    model = ["--base-model", str(tiny_model_dirs["gpt2"])]
    metrics = last_json(
        run_cli("eval", "--prompt", str(trained["out"]), "--data", str(trained["dev"]), *model, "--json")
    )
    assert metrics["n"] == 10 and 0 <= metrics["accuracy"] <= 1
    assert metrics == trained["summary"]["dev"]
    outputs = last_json(
        run_cli(
            "predict",
            "--prompt",
            str(trained["out"]),
            "--text",
            "the film was great",
            "--text",
            "the film was awful",
            *model,
            "--json",
        )
    )["outputs"]
    assert len(outputs) == 2 and {o["label"] for o in outputs} <= {"negative", "positive"}
    assert abs(sum(outputs[0]["scores"].values()) - 1) < 1e-5
    report = last_json(run_cli("inspect", "--prompt", str(trained["out"]), "--top", "3", *model, "--json"))
    assert len(report["vectors"]) == 4 and len(report["vectors"][0]["nearest"]) == 3
    assert report["norms"]["min"] <= report["norms"]["mean"] <= report["norms"]["max"]


def test_baseline_zero_and_few_shot(trained, tiny_model_dirs):
    model = ["--base-model", str(tiny_model_dirs["t5"])]
    zero = last_json(run_cli("baseline", "--data", str(trained["dev"]), *model, "--json"))
    few = last_json(
        run_cli(
            "baseline",
            "--data",
            str(trained["dev"]),
            "--train",
            str(trained["train"]),
            "--shots",
            "2",
            *model,
            "--json",
        )
    )
    assert zero["shots"] == 0 and few["shots"] == 2 and zero["n"] == few["n"] == 10


def _fails(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("softserve-engine: error:") and fragment in message, message


def test_bad_input_exits_cleanly(trained, tiny_model_dirs, tmp_path):
    gpt2, llama = str(tiny_model_dirs["gpt2"]), str(tiny_model_dirs["llama"])
    out = str(tmp_path / "x.safetensors")
    _fails(
        run_cli("train", "--train", str(tmp_path / "nope.csv"), "--out", out, "--base-model", gpt2),
        "does not exist",
    )
    (tmp_path / "cols.csv").write_text("sentence,label\na,x\nb,y\n")
    _fails(
        run_cli("train", "--train", str(tmp_path / "cols.csv"), "--out", out, "--base-model", gpt2),
        "No text column",
    )
    (tmp_path / "empty.csv").write_text("text,label\n")
    _fails(
        run_cli("train", "--train", str(tmp_path / "empty.csv"), "--out", out, "--base-model", gpt2),
        "has no rows",
    )
    (tmp_path / "dev_bad.csv").write_text("text,label\nthe film was good,neutral\n")
    _fails(
        run_cli(
            "train",
            "--train",
            str(trained["train"]),
            "--dev",
            str(tmp_path / "dev_bad.csv"),
            "--out",
            out,
            "--base-model",
            gpt2,
        ),
        "not in the label set",
    )
    _fails(
        run_cli(
            "train",
            "--train",
            str(trained["train"]),
            "--out",
            out,
            "--base-model",
            gpt2,
            "--prompt-length",
            "500",
        ),
        "between 1 and 150",
    )
    _fails(
        run_cli(
            "eval", "--prompt", str(trained["out"]), "--data", str(trained["dev"]), "--base-model", llama
        ),
        "trained for the base model",
    )
    _fails(run_cli("predict", "--prompt", str(trained["out"]), "--base-model", gpt2), "at least one input")
    assert not Path(out).exists()


def test_template_escapes_typed_in_a_shell_are_the_characters_they_name():
    from workers.engine.cli import _parser, template_argument

    # What a shell passes for "Review: {text}\nSentiment:" is a backslash and an n.
    typed = "Review: {text}" + "\\" + "nSentiment:" + "\\" + "t" + "\\" + "\\" + "x"
    assert template_argument(typed) == "Review: {text}\nSentiment:\t\\x"
    args = _parser().parse_args(
        ["train", "--train", "t.csv", "--out", "o.safetensors", "--template", "Q: {text}\\nA:"]
    )
    assert args.template == "Q: {text}\nA:"
    assert template_argument("no escapes {text}") == "no escapes {text}"
