"""The initialisation strategies of the paper, plus text."""

import pytest
import torch

from workers.engine.errors import EngineError
from workers.engine.prompt_tuning import common_token_ids, init_prompt


def test_random_init_is_uniform_half(tiny):
    prompt = init_prompt(tiny, 20, "random", seed=3)
    assert prompt.shape == (20, tiny.embed_dim)
    assert prompt.abs().max() <= 0.5 and prompt.std() > 0.1


def test_vocab_init_rows_are_embeddings_of_common_tokens(tiny):
    prompt = init_prompt(tiny, 6, "vocab", seed=1)
    table = tiny.embed(common_token_ids(tiny))
    for row in prompt:
        assert torch.isclose(table, row, atol=1e-6).all(dim=1).any()
    assert not torch.equal(prompt, init_prompt(tiny, 6, "vocab", seed=2))


def test_labels_init_starts_with_label_embeddings(tiny):
    prompt = init_prompt(tiny, 5, "labels", label_words=["negative", "positive"], seed=0)
    for position, word in enumerate(["negative", "positive"]):
        ids = [i for i in tiny.encode_target(word) if i not in tiny.tokenizer.all_special_ids]
        assert torch.allclose(prompt[position], tiny.embed(torch.tensor(ids)).mean(0), atol=1e-6)


def test_text_init_uses_text_tokens(tiny_models):
    fm = tiny_models["gpt2"]
    prompt = init_prompt(fm, 8, "text", text="classify the review", seed=0)
    ids = fm.encode("classify the review", special_tokens=False)[:8]
    assert torch.allclose(prompt[: len(ids)], fm.embed(torch.tensor(ids)), atol=1e-6)


@pytest.mark.parametrize("length", [0, 151])
def test_prompt_length_out_of_range(tiny_models, length):
    with pytest.raises(EngineError, match="between 1 and 150"):
        init_prompt(tiny_models["gpt2"], length, "random")


def test_labels_init_needs_labels(tiny_models):
    with pytest.raises(EngineError, match="label"):
        init_prompt(tiny_models["gpt2"], 4, "labels")
