"""The initialisation strategies of the paper, plus text."""

import pytest
import torch

from common.errors import EngineError
from workers.engine.methods.prompt_tuning import control_token_ids, init_prompt, pool_ids, vocab_pool


def test_random_init_is_uniform_half(tiny):
    prompt = init_prompt(tiny, 20, "random", seed=3)
    assert prompt.shape == (20, tiny.embed_dim)
    assert prompt.abs().max() <= 0.5 and prompt.std() > 0.1


def test_vocab_init_rows_are_embeddings_from_the_pool(tiny):
    prompt = init_prompt(tiny, 6, "vocab", seed=1)
    table = tiny.embed(vocab_pool(tiny))
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


def test_the_vocab_pool_leaves_out_added_control_tokens(tiny_model_dirs):
    """SmolLM2 marks only <|endoftext|>, <|im_start|>, <|im_end|> special; <repo_name>, <file_sep> … were
    added as control tokens without being "special", and sampled-vocabulary init drew from them."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs["gpt2"])
    tokenizer.add_tokens([AddedToken("<file_sep>", special=True), AddedToken("<|tool_call|>")])
    tokenizer.add_tokens(["<repo_name>", "ordinaryword"])
    ids = {text: tokenizer.convert_tokens_to_ids(text) for text in ("<file_sep>", "<|tool_call|>")}
    ids["<repo_name>"] = tokenizer.convert_tokens_to_ids("<repo_name>")
    word = tokenizer.convert_tokens_to_ids("ordinaryword")
    assert not set(ids.values()) & set(tokenizer.all_special_ids)  # what the old pool excluded
    pool = pool_ids(tokenizer, len(tokenizer))
    assert not set(ids.values()) & set(pool), ids
    assert not set(tokenizer.all_special_ids) & set(pool)
    assert word in pool  # an added word that is not markup stays
    assert set(ids.values()) <= control_token_ids(tokenizer)


@pytest.mark.real_model
def test_smollm2_vocab_pool_is_the_whole_vocabulary_but_its_control_tokens():
    """The pool was the 5,000 lowest ids, frequent sub-word pieces; sampling the whole vocabulary
    scored 84.8 ± 0.4% against 79.2 ± 2.0% (benchmarks/README.md, "The vocab-init gap")."""
    from workers.engine.base_model import load_base_model

    fm = load_base_model()
    tokenizer = fm.tokenizer
    assert sorted(tokenizer.all_special_ids) == [0, 1, 2]
    assert control_token_ids(tokenizer) >= set(range(17))  # <|endoftext|> … <empty_output>
    pool = vocab_pool(fm).tolist()
    assert pool[0] == 17 and pool[-1] == fm.model.get_input_embeddings().num_embeddings - 1
    assert len(pool) == fm.model.get_input_embeddings().num_embeddings - len(control_token_ids(tokenizer))
    tokens = tokenizer.convert_ids_to_tokens(pool)
    assert not [t for t in tokens if len(t) > 2 and t.startswith("<|") and t.endswith("|>")]
    drawn = init_prompt(fm, 20, "vocab", seed=0)
    assert (fm.embed(torch.tensor(pool[5000:])) == drawn[:, None]).all(-1).any()  # beyond the old pool
