"""PEFT export/import round trips, the T5 LM-adaptation warning, and domain transfer."""

import shutil
import warnings

import pytest
import torch

from common.errors import ArtifactError, DataError
from common.task import TaskSpec
from tests.engine.test_cli import _fails, last_json, run_cli
from workers.engine.artifacts.artifact import PromptArtifact, save_artifact
from workers.engine.artifacts.interop import export_peft, import_peft
from workers.engine.base_model import T5NotLMAdaptedWarning, load_base_model
from workers.engine.inference.predict import LoadedPrompt, predict_mixed
from workers.engine.training.data import remap_rows, to_examples

SPEC = TaskSpec("classification", "{text}\nAnswer:", ["negative", "positive"])
TEXT = "the film was great"


def _artifact(fm, method="prompt") -> PromptArtifact:
    torch.manual_seed(0)
    return PromptArtifact(
        tensors={"prompt": torch.randn(5, fm.embed_dim)},
        method=method,
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=SPEC,
    )


def _peft_label_logprobs(peft_model, fm, text: str, class_targets: list[list[int]]) -> list[float]:
    """PEFT's own forward: summed log-probability of each label's tokens after the input."""
    scores = []
    for target in class_targets:
        ids = torch.tensor([[*fm.encode(SPEC.render({"text": text})), *target]])
        with torch.no_grad():
            logprobs = torch.log_softmax(
                peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0], -1
            )
        positions = range(logprobs.shape[0] - len(target) - 1, logprobs.shape[0] - 1)
        scores.append(sum(float(logprobs[p, t]) for p, t in zip(positions, target, strict=True)))
    return scores


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_export_loads_in_peft_with_identical_predictions(tiny_models, kind, tmp_path):
    from peft import PeftModel

    fm = tiny_models[kind]
    artifact = _artifact(fm)
    folder = export_peft(artifact, tmp_path / "adapter")
    peft_model = PeftModel.from_pretrained(fm.model, str(folder))
    prompt = LoadedPrompt.build(fm, artifact.prompt, SPEC)
    reference = _peft_label_logprobs(peft_model, fm, TEXT, prompt.encoder.class_targets)
    ours = predict_mixed(fm, [(prompt, {"text": TEXT})])[0]["logprobs"]
    assert [ours[label] for label in SPEC.labels] == pytest.approx(reference, abs=1e-4)


def test_import_from_peft_trained_adapter(tiny_models, tmp_path):
    from peft import PromptTuningConfig, TaskType, get_peft_model

    fm = tiny_models["gpt2"]
    peft_model = get_peft_model(
        fm.model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=6)
    )
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_()
    peft_model.save_pretrained(str(tmp_path / "peft"))
    artifact = import_peft(tmp_path / "peft", fm, SPEC)
    assert artifact.prompt_length == 6 and artifact.method == "prompt"
    loaded = LoadedPrompt.build(fm, artifact.prompt, SPEC)
    reference = _peft_label_logprobs(peft_model, fm, TEXT, loaded.encoder.class_targets)
    ours = predict_mixed(fm, [(loaded, {"text": TEXT})])[0]["logprobs"]
    assert [ours[label] for label in SPEC.labels] == pytest.approx(reference, abs=1e-4)
    # And back out again: the same numbers.
    again = import_peft(export_peft(artifact, tmp_path / "again"), fm, SPEC)
    assert torch.equal(again.prompt, artifact.prompt)


def test_export_refuses_prefix_and_ensembles(tiny_models, tmp_path):
    fm = tiny_models["gpt2"]
    layers, kv_heads, head_dim = fm.kv_geometry()
    prefix = PromptArtifact(
        tensors={"prefix": torch.zeros(layers, 2, kv_heads, 3, head_dim)},
        method="prefix",
        base_model="x",
        fingerprint=fm.fingerprint,
        spec=SPEC,
    )
    with pytest.raises(ArtifactError, match="Prefix-tuning versions have no PEFT download"):
        export_peft(prefix, tmp_path / "a")
    ensemble = PromptArtifact(
        tensors={"members": torch.zeros(2, 3, fm.embed_dim)},
        method="prompt",
        base_model="x",
        fingerprint=fm.fingerprint,
        spec=SPEC,
    )
    with pytest.raises(ArtifactError, match="ensembles"):
        export_peft(ensemble, tmp_path / "b")
    with pytest.raises(ArtifactError, match="not a PEFT adapter"):
        import_peft(tmp_path, fm, SPEC)


def test_t5_warns_unless_lm_adapted(tiny_model_dirs, tmp_path):
    with pytest.warns(T5NotLMAdaptedWarning, match="LM-adapted"):
        load_base_model(str(tiny_model_dirs["t5"]))
    adapted = tmp_path / "t5-small-lm-adapt"
    shutil.copytree(tiny_model_dirs["t5"], adapted)
    with warnings.catch_warnings():
        warnings.simplefilter("error", T5NotLMAdaptedWarning)
        load_base_model(str(adapted))
        load_base_model(str(tiny_model_dirs["gpt2"]))


def test_remap_rows_for_domain_transfer():
    rows = [
        {"question1": "a?", "question2": "b?", "is_duplicate": "duplicate"},
        {"question1": "c?", "question2": "d?", "is_duplicate": "not_duplicate"},
    ]
    mapped = remap_rows(
        rows,
        {"text_a": "question1", "text_b": "question2"},
        {"duplicate": "equivalent", "not_duplicate": "not_equivalent"},
        "is_duplicate",
    )
    examples = to_examples(mapped, "{text_a} / {text_b}", "is_duplicate")
    assert [e.target for e in examples] == ["equivalent", "not_equivalent"]
    assert examples[0].fields == {"text_a": "a?", "text_b": "b?"}
    with pytest.raises(DataError, match="no column"):
        remap_rows(rows, {"text_a": "sentence1"}, {}, "is_duplicate")


def test_cli_transfer_export_import(tiny_model_dirs, tmp_path):
    """A pair prompt scored on a dataset with other column and label names, then out to PEFT and back."""
    gpt2 = str(tiny_model_dirs["gpt2"])
    fm = load_base_model(gpt2)
    spec = TaskSpec("classification", "{text_a} / {text_b}", ["equivalent", "not_equivalent"])
    prompt = tmp_path / "pair.safetensors"
    artifact = PromptArtifact(
        tensors={"prompt": torch.randn(4, fm.embed_dim)},
        method="prompt",
        base_model=gpt2,
        fingerprint=fm.fingerprint,
        spec=spec,
    )
    save_artifact(artifact, prompt)
    other = tmp_path / "qqp.tsv"
    other.write_text("q1\tq2\tdup\nwho is he?\twho is that man?\t1\nhow old?\twhere now?\t0\n")
    data = [
        "--data",
        str(other),
        "--label-column",
        "dup",
        "--json",
        "--map-column",
        "text_a=q1",
        "--map-column",
        "text_b=q2",
    ]
    _fails(run_cli("eval", "--prompt", str(prompt), *data), "not in the label set")
    labels = ["--map-label", "1=equivalent", "--map-label", "0=not_equivalent"]
    metrics = last_json(run_cli("eval", "--prompt", str(prompt), *data, *labels))
    assert metrics["n"] == 2
    adapter = tmp_path / "adapter"
    last_json(run_cli("export-peft", "--prompt", str(prompt), "--out", str(adapter), "--json"))
    back = tmp_path / "back.safetensors"
    last_json(
        run_cli(
            "import-peft",
            "--peft",
            str(adapter),
            "--out",
            str(back),
            "--base-model",
            gpt2,
            "--template",
            "{text_a} / {text_b}",
            "--labels",
            "equivalent,not_equivalent",
            "--json",
        )
    )
    assert last_json(run_cli("eval", "--prompt", str(back), *data, *labels)) == metrics
