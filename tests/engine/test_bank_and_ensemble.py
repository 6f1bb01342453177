"""Prompt banks (N prompts trained in the same batches), ensembles, and P-tuning."""

import pytest
import torch

from common.task import Example, TaskSpec
from tests.engine.test_training import SPEC, _data
from workers.engine.artifacts.artifact import load_artifact, save_artifact
from workers.engine.inference.predict import LoadedPrompt, predict_mixed, vote
from workers.engine.methods.p_tuning import PromptEncoder, PTuningConfig
from workers.engine.methods.prompt_tuning import SoftPrompt, init_prompt
from workers.engine.training.bank import Member
from workers.engine.training.config import TrainConfig
from workers.engine.training.pipeline import train_task
from workers.engine.training.trainer import train_bank

TOPIC = TaskSpec("classification", "Topic: {text}\nAnswer:", ["sport", "money", "world"])


def _topic_data(n: int, seed: int) -> list[Example]:
    words = {"sport": "goal", "money": "bank", "world": "war"}
    gen = torch.Generator().manual_seed(seed)
    labels = list(words)
    return [
        Example({"text": f"news about the {words[lab]}"}, lab)
        for lab in (labels[int(torch.randint(3, (1,), generator=gen))] for _ in range(n))
    ]


def _config(**overrides) -> TrainConfig:
    return TrainConfig(
        **{
            "prompt_length": 4,
            "batch_size": 4,
            "steps": 4,
            "eval_every": 2,
            "dev_eval_limit": 8,
            "patience": 100,
            **overrides,
        }
    )


def test_bank_members_match_training_each_alone(tiny):
    """Each member sees its own data order and keeps its own optimiser state: same result as alone."""
    config = _config()
    tasks = [(SPEC, _data(24, 0), _data(8, 1), 0), (TOPIC, _topic_data(24, 2), _topic_data(8, 3), 5)]

    def member(spec, train, dev, seed):
        return Member(spec, train, dev, SoftPrompt(init_prompt(tiny, 4, "vocab", seed=seed)), seed=seed)

    together = train_bank(tiny, [member(*task) for task in tasks], config)
    for task, banked in zip(tasks, together, strict=True):
        alone = train_bank(tiny, [member(*task)], config)[0]
        assert banked.best_step == alone.best_step
        assert torch.allclose(banked.prompt, alone.prompt, atol=1e-4), (
            (banked.prompt - alone.prompt).abs().max()
        )
        assert [h["loss"] for h in banked.history] == pytest.approx(
            [h["loss"] for h in alone.history], abs=1e-4
        )


def test_member_early_stops_on_its_own(tiny_models):
    fm = tiny_models["gpt2"]
    config = _config(steps=12, eval_every=1, patience=2, learning_rate=1e-12, optimizer="adamw")
    members = [
        Member(SPEC, _data(24, 0), _data(8, 1), SoftPrompt(init_prompt(fm, 4, "random", seed=k)), seed=k)
        for k in range(2)
    ]
    results = train_bank(fm, members, config)
    assert all(r.stop_reason == "early stopping" and r.steps_run < 12 for r in results)


def test_ensemble_artifact_votes_and_reports_table3(tiny, tmp_path):
    config = _config(ensemble_size=3, steps=3)
    artifact = train_task(tiny, SPEC, _data(24, 0), _data(10, 1), config)
    assert artifact.ensemble_size == 3 and artifact.tensors["members"].shape == (3, 4, tiny.embed_dim)
    dev = artifact.metrics["dev"]
    assert len(dev["members"]) == 3 and dev["member_best_accuracy"] == max(
        m["accuracy"] for m in dev["members"]
    )
    assert dev["member_avg_accuracy"] == pytest.approx(
        sum(m["accuracy"] for m in dev["members"]) / 3, abs=1e-4
    )
    loaded = LoadedPrompt.from_artifact(
        tiny, load_artifact(save_artifact(artifact, tmp_path / "e.safetensors"))
    )
    row = {"text": "the film was great"}
    out = predict_mixed(tiny, [(loaded, row)])[0]
    singles = [predict_mixed(tiny, [(loaded.member(k), row)])[0]["label"] for k in range(3)]
    assert out["members"] == singles and sum(out["votes"].values()) == 3
    assert out["votes"][out["label"]] == max(out["votes"].values())


def test_vote_breaks_ties_by_mean_logprob():
    labels = ["a", "b", "c"]
    # Two members pick a, two pick b; b has the higher mean log-probability.
    scores = torch.tensor(
        [[-0.1, -0.2, -5.0], [-0.3, -0.2, -5.0], [-0.9, -0.1, -5.0], [-0.2, -0.5, -5.0]]
    ).log_softmax(1)
    picked = vote(labels, scores)
    assert picked["votes"] == {"a": 2, "b": 2, "c": 0} and picked["label"] == "b"
    assert vote(labels, scores[:1])["label"] == "a"


@pytest.mark.parametrize("encoder", ["mlp", "lstm"])
def test_ptuning_starts_at_its_init_trains_and_folds(tiny, encoder, tmp_path):
    initial = init_prompt(tiny, 4, "vocab", seed=0)
    module = PromptEncoder(initial, PTuningConfig(encoder=encoder, hidden_size=16))
    assert torch.allclose(module(), initial)  # residual encoder with a zero last layer
    config = _config(method="ptuning", ptuning_encoder=encoder, steps=8, learning_rate=1e-2)
    artifact = train_task(tiny, SPEC, _data(24, 0), _data(8, 1), config)
    assert artifact.method == "ptuning" and artifact.prompt.shape == (4, tiny.embed_dim)
    assert set(artifact.tensors) == {"prompt"}  # only the folded prompt, no encoder weights
    loaded = load_artifact(save_artifact(artifact, tmp_path / "p.safetensors"))
    assert loaded.method == "ptuning" and torch.equal(loaded.prompt, artifact.prompt)


def test_ptuning_lowers_the_loss(tiny):
    fm = tiny
    config = _config(method="ptuning", steps=30, eval_every=30, batch_size=8, learning_rate=1e-2)
    member = Member(SPEC, _data(64, 0), _data(8, 1), PromptEncoder(init_prompt(fm, 4, "random")), seed=0)
    losses = [h["loss"] for h in train_bank(fm, [member], config)[0].history]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
