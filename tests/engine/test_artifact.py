"""The artifact: safetensors with metadata, round trip, fingerprint check, refusals."""

import json

import pytest
import torch
from safetensors.torch import save_file

from common.errors import ArtifactError
from common.task import TaskSpec
from workers.engine.artifacts.artifact import PromptArtifact, load_artifact, save_artifact
from workers.engine.inference.predict import LoadedPrompt, predict_mixed

SPEC = TaskSpec(
    "classification",
    "{text_a} / {text_b}",
    ["entailment", "not_entailment"],
    verbalizer={"not_entailment": "no"},
)


def _artifact(fm) -> PromptArtifact:
    return PromptArtifact(
        tensors={"prompt": torch.randn(7, fm.embed_dim)},
        method="prompt",
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=SPEC,
        train_config={"steps": 3},
        metrics={"dev": {"accuracy": 0.5}},
    )


def test_round_trip_keeps_tensors_metadata_and_predictions(tiny, tmp_path):
    original = _artifact(tiny)
    path = save_artifact(original, tmp_path / "p.safetensors")
    assert path.read_bytes()[:8] != b"\x80\x04\x95"[:8]  # not a pickle
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    meta = header["__metadata__"]
    for key in (
        "format_version",
        "method",
        "base_model",
        "fingerprint",
        "prompt_length",
        "embed_dim",
        "task_type",
        "task",
        "train_config",
        "metrics",
    ):
        assert key in meta
    loaded = load_artifact(path)
    assert torch.equal(loaded.prompt, original.prompt)
    assert loaded.spec.to_dict() == SPEC.to_dict() and loaded.metrics == original.metrics
    row = {"text_a": "a man sleeps", "text_b": "someone rests"}
    before = predict_mixed(tiny, [(LoadedPrompt.build(tiny, original.prompt, SPEC), row)])
    after = predict_mixed(tiny, [(LoadedPrompt.from_artifact(tiny, loaded), row)])
    assert before == after


def test_fingerprint_mismatch_is_refused(tiny_models, tmp_path):
    path = save_artifact(_artifact(tiny_models["gpt2"]), tmp_path / "p.safetensors")
    with pytest.raises(ArtifactError, match="trained for the base model"):
        LoadedPrompt.from_artifact(tiny_models["llama"], load_artifact(path))


def test_fingerprints_differ_between_models_and_are_stable(tiny_models, tiny_model_dirs):
    from workers.engine.base_model import load_base_model

    prints = {kind: fm.fingerprint for kind, fm in tiny_models.items()}
    assert len(set(prints.values())) == 3
    assert load_base_model(str(tiny_model_dirs["t5"])).fingerprint == prints["t5"]


def test_foreign_and_future_files_are_refused(tmp_path, tiny_models):
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(2)}, plain)
    with pytest.raises(ArtifactError, match="not a Softserve prompt"):
        load_artifact(plain)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file")
    with pytest.raises(ArtifactError):
        load_artifact(garbage)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "missing.safetensors")
    art = _artifact(tiny_models["gpt2"])
    future = tmp_path / "future.safetensors"
    save_file({"prompt": art.prompt}, future, metadata={**art.metadata(), "format_version": "99"})
    with pytest.raises(ArtifactError, match="format 99"):
        load_artifact(future)


def test_all_models_are_frozen_in_eval_mode(tiny):
    assert not tiny.model.training
    assert not any(p.requires_grad for p in tiny.model.parameters())


def test_artifact_bytes_round_trip_and_refuse_garbage(tiny_models):
    from workers.engine.artifacts.artifact import artifact_bytes, artifact_from_bytes

    fm = tiny_models["gpt2"]
    spec = TaskSpec(task_type="classification", template="{text}", labels=["a", "b"])
    original = PromptArtifact(
        tensors={"prompt": torch.randn(4, fm.embed_dim)},
        method="prompt",
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=spec,
        metrics={"accuracy": 0.5},
    )
    loaded = artifact_from_bytes(artifact_bytes(original), "s3://x")
    assert torch.equal(loaded.prompt, original.prompt)
    assert loaded.spec == spec and loaded.metrics == {"accuracy": 0.5}
    loaded.check_fits(fm)
    with pytest.raises(ArtifactError, match="s3://x is not a prompt artifact"):
        artifact_from_bytes(b"\x00" * 20, "s3://x")
