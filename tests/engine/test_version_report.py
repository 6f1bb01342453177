"""What a version keeps beyond its headline metric: per-label figures and a bounded confusion matrix,
the nearest-vocabulary-token view, and the PEFT export as one zip (issue 12)."""

import io
import json
import zipfile

import pytest
import torch

from common.errors import ArtifactError
from common.formats import nearest_tokens_unavailable, peft_unavailable
from common.task import TaskSpec
from workers.engine.artifacts.artifact import PromptArtifact
from workers.engine.artifacts.inspection import version_inspection
from workers.engine.artifacts.interop import PEFT_CONFIG, PEFT_WEIGHTS, export_peft_zip, import_peft
from workers.engine.inference.evaluation import CONFUSION_MAX_LABELS, OTHER, confusion, macro_f1, per_label

SPEC = TaskSpec("classification", "{text}\nAnswer:", ["negative", "positive"])


def test_per_label_figures_and_confusion_matrix():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    report = per_label(gold, pred, ["a", "b", "c"])
    assert report["a"] == {"precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3}
    assert report["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["c"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    # macro-F1 is the mean of the same per-label F1s
    assert macro_f1(gold, pred, ["a", "b", "c"]) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    matrix = confusion(gold, pred, ["a", "b", "c"])
    assert matrix == {"labels": ["a", "b", "c"], "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]], "folded": 0}


def test_a_label_never_seen_scores_zero_not_a_division_error():
    report = per_label(["a", "a"], ["a", "a"], ["a", "b"])
    assert report["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_the_confusion_matrix_is_bounded_for_many_labels():
    labels = [f"l{i:04d}" for i in range(1000)]  # LIMITS.max_labels
    gold = [labels[i % 50] for i in range(2000)] + labels[50:]
    pred = [labels[(i + 1) % 1000] for i in range(len(gold))]
    matrix = confusion(gold, pred, labels)
    size = CONFUSION_MAX_LABELS + 1
    assert matrix["labels"][-1] == OTHER and len(matrix["labels"]) == size
    assert len(matrix["matrix"]) == size and all(len(row) == size for row in matrix["matrix"])
    assert matrix["folded"] == 1000 - CONFUSION_MAX_LABELS
    assert sum(map(sum, matrix["matrix"])) == len(gold)  # every row is counted somewhere
    assert matrix["labels"][:3] == ["l0000", "l0001", "l0002"]  # the labels with most gold rows
    assert len(per_label(gold, pred, labels)) == 1000  # per-label figures keep every label


def test_a_gold_label_outside_the_set_is_counted_as_other():
    matrix = confusion(["a", "zz"], ["a", "a"], ["a", "b"])
    assert matrix["labels"] == ["a", "b", OTHER] and matrix["matrix"][2] == [1, 0, 0]


def _prompt(fm, members: int = 1, length: int = 4) -> PromptArtifact:
    torch.manual_seed(0)
    tensors = (
        {"prompt": torch.randn(length, fm.embed_dim)}
        if members == 1
        else {"members": torch.randn(members, length, fm.embed_dim)}
    )
    return PromptArtifact(
        tensors=tensors, method="prompt", base_model=fm.model_id, fingerprint=fm.fingerprint, spec=SPEC
    )


def _prefix(fm) -> PromptArtifact:
    layers, kv_heads, head_dim = fm.kv_geometry()
    return PromptArtifact(
        tensors={"prefix": torch.zeros(layers, 2, kv_heads, 3, head_dim)},
        method="prefix",
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=SPEC,
    )


def test_nearest_tokens_view_of_a_version(tiny_models):
    fm = tiny_models["gpt2"]
    artifact = _prompt(fm)
    # A vector equal to a token's embedding finds that token first, with cosine 1.
    artifact.tensors["prompt"][2] = fm.model.get_input_embeddings().weight[7].detach()
    view = version_inspection(fm, artifact)
    assert view["applies"] and view["members"] == 1 and view["top_k"] == 5
    assert [row["position"] for row in view["positions"]] == [0, 1, 2, 3]
    assert all(len(row["nearest"]) == 5 for row in view["positions"])
    first = view["positions"][2]["nearest"][0]
    assert first["id"] == 7 and first["cosine"] == pytest.approx(1.0, abs=1e-4)
    assert first["token"] == fm.tokenizer.convert_ids_to_tokens(7)
    assert set(view["norms"]) == {"min", "mean", "max", "vocab_mean"}
    json.dumps(view)  # stored as JSON in the version's row
    ensemble = version_inspection(fm, _prompt(fm, members=3))
    assert ensemble["member"] == 1 and ensemble["members"] == 3 and len(ensemble["positions"]) == 4


def test_nearest_tokens_do_not_apply_to_prefix_tuning(tiny_models):
    view = version_inspection(tiny_models["gpt2"], _prefix(tiny_models["gpt2"]))
    assert view == {"applies": False, "reason": nearest_tokens_unavailable("prefix")}
    assert "prefix tuning" in view["reason"]
    assert nearest_tokens_unavailable("prompt") is None and nearest_tokens_unavailable("ptuning") is None


def test_peft_export_as_one_zip_round_trips(tiny_models, tmp_path):
    fm = tiny_models["gpt2"]
    artifact = _prompt(fm)
    data = export_peft_zip(artifact)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted([PEFT_CONFIG, PEFT_WEIGHTS])
        config = json.loads(archive.read(PEFT_CONFIG))
        archive.extractall(tmp_path)
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 4
    back = import_peft(tmp_path, fm, SPEC)
    assert torch.equal(back.prompt, artifact.prompt)


def test_peft_export_says_why_not_for_prefixes_and_ensembles(tiny_models):
    fm = tiny_models["gpt2"]
    with pytest.raises(ArtifactError, match="Prefix-tuning versions have no PEFT download"):
        export_peft_zip(_prefix(fm))
    with pytest.raises(ArtifactError, match="PEFT has no ensembles"):
        export_peft_zip(_prompt(fm, members=2))
    assert peft_unavailable("prompt", 1) is None and peft_unavailable("ptuning", 1) is None
    assert "PEFT has no ensembles" in peft_unavailable("prompt", 3)
