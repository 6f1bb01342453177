"""One forward pass over rows with different prompts (lengths, tasks): each row as if run alone."""

import pytest
import torch

from common.task import TaskSpec
from workers.engine.inference.batching import PromptSet
from workers.engine.inference.predict import LoadedPrompt, _expand, predict_mixed
from workers.engine.inference.scoring import greedy_generate

SENTIMENT = TaskSpec("classification", "{text}\nAnswer:", ["negative", "positive"])
TOPIC = TaskSpec(
    "classification",
    "Topic: {text}\nIt is about",
    ["world", "sports", "business"],
    verbalizer={"business": "money and trade"},
)
PAIR = TaskSpec("classification", "{text_a} / {text_b}", ["yes", "no"])
ECHO = TaskSpec("generation", "Repeat: {text}")


def _prompt(fm, spec, length, seed):
    gen = torch.Generator().manual_seed(seed)
    return LoadedPrompt.build(fm, torch.randn(length, fm.embed_dim, generator=gen), spec)


def _close(a, b):
    if "label" in a:
        assert a["label"] == b["label"]
        for label, value in a["logprobs"].items():
            assert abs(value - b["logprobs"][label]) <= 1e-4, (label, value, b["logprobs"][label])
    else:
        assert a["text"] == b["text"]


def test_mixed_tasks_and_lengths_equal_row_by_row(tiny):
    prompts = [
        _prompt(tiny, SENTIMENT, 3, 0),
        _prompt(tiny, TOPIC, 11, 1),
        _prompt(tiny, PAIR, 1, 2),
        _prompt(tiny, ECHO, 6, 3),
        _prompt(tiny, SENTIMENT, 20, 4),
    ]
    items = [
        (prompts[0], {"text": "a gorgeous , witty film"}),
        (prompts[1], {"text": "the market fell sharply after the report on trade"}),
        (prompts[2], {"text_a": "it rains", "text_b": "the street is wet"}),
        (prompts[3], {"text": "good movie"}),
        (prompts[4], {"text": "dull"}),
        (prompts[0], {"text": "an utterly tedious , overlong and joyless mess of a movie"}),
        (prompts[1], {"text": "team wins"}),
    ]
    batched = predict_mixed(tiny, items, max_new_tokens=5)
    for item, together in zip(items, batched, strict=True):
        _close(predict_mixed(tiny, [item], max_new_tokens=5)[0], together)
    probs = batched[1]["scores"]
    assert set(probs) == {"world", "sports", "business"} and abs(sum(probs.values()) - 1) < 1e-5


def test_greedy_decoding_matches_transformers_generate(tiny_models):
    fm = tiny_models["llama"]
    ids = [5, 17, 42, 99]
    empty = PromptSet.from_list([torch.zeros(0, fm.embed_dim)])
    ours = greedy_generate(fm, empty, torch.tensor([0]), [ids], max_new_tokens=6)[0]
    with torch.no_grad():
        ref = fm.model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, 4, dtype=torch.long),
            max_new_tokens=6,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    expected = ref[0, 4:].tolist()
    cut = next((i for i, t in enumerate(expected) if t in (fm.eos_id, fm.pad_id)), len(expected))
    assert ours == expected[:cut]
    assert len(ours) > 0


def test_t5_greedy_decoding_matches_transformers_generate(tiny_models):
    fm = tiny_models["t5"]
    ids = [5, 17, 42, 99, 1]
    empty = PromptSet.from_list([torch.zeros(0, fm.embed_dim)])
    ours = greedy_generate(fm, empty, torch.tensor([0]), [ids], max_new_tokens=6)[0]
    with torch.no_grad():
        ref = fm.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, num_beams=1)
    expected = ref[0, 1:].tolist()  # drop the decoder start token
    cut = next((i for i, t in enumerate(expected) if t in (fm.eos_id, fm.pad_id)), len(expected))
    assert ours == expected[:cut] and len(ours) > 0


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_each_row_stops_at_its_own_token_limit(tiny_models, kind):
    """Greedy decoding is prefix-consistent: a row cut at 2 tokens is the first 2 of its 6-token answer."""
    fm = tiny_models[kind]
    prompts = [_prompt(fm, ECHO, 3, 0), _prompt(fm, ECHO, 5, 1)]
    items = [
        (prompts[0], {"text": "alpha beta"}),
        (prompts[1], {"text": "gamma"}),
        (prompts[0], {"text": "zeta"}),
    ]
    limits = [2, 6, 1]
    mixed = predict_mixed(fm, items, limits)  # different limits in one decoding loop
    for (prompt, row), limit, out in zip(items, limits, mixed, strict=True):
        vectors, row_prompt, _ = _expand(fm, [(prompt, row)])
        alone = greedy_generate(fm, vectors, row_prompt, [prompt.encoder.input_ids(row)], 6)[0]
        assert out["text"] == fm.decode(alone[:limit]).strip()
        assert out["finish_reason"] == ("length" if len(alone) >= limit else "stop")
