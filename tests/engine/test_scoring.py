"""Rank classification in one pass per input equals scoring every label as its own row.

`class_logprobs` runs each input once and continues every multi-token label from the input's cached
key/value states; `class_logprobs_expanded` repeats the input once per label (the long way). Both must
give the same log-likelihoods for rows that mix prompts (vector prompts of different lengths, prefixes,
prompts served from cached states), label sets and label lengths.
"""

import pytest
import torch

from benchmarks.common import TASKS
from common.task import TaskSpec
from tests.conftest import shared_dataset
from workers.engine.base_model import load_base_model
from workers.engine.inference.batching import PromptSet
from workers.engine.inference.encoding import TaskEncoder
from workers.engine.inference.predict import LoadedPrompt, predict_mixed
from workers.engine.inference.scoring import class_logprobs, class_logprobs_expanded
from workers.engine.training.data import read_rows

NEWS, ENTAIL, SENTIMENT = (
    TaskSpec("classification", TASKS[name].template, list(TASKS[name].labels))
    for name in ("agnews", "rte", "sst2")
)


def _vector(fm, length, seed):
    return torch.randn(length, fm.embed_dim, generator=torch.Generator().manual_seed(seed)) * 0.3


def _prefix(fm, length, seed):
    layers, kv_heads, head_dim = fm.kv_geometry()
    shape = (layers, fm.prefix_slots, kv_heads, length, head_dim)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.3


def _rows(fm):
    """Inputs of three tasks (one, two and several-token labels), each behind its own kind of prompt."""
    news = read_rows(shared_dataset("agnews", "dev"))[:3]
    pairs = read_rows(shared_dataset("rte", "dev"))[:2]
    reviews = read_rows(shared_dataset("sst2", "dev"))[:2]
    written = [
        {"text": "@united my flight is late again 😡 #fail"},
        {"text": "=== Houston re-signs Vizcaino ==="},
    ]
    encoders = [TaskEncoder(fm, spec) for spec in (NEWS, ENTAIL, SENTIMENT)]
    items = [(0, {"text": r["text"]}) for r in news]
    items += [(1, {"text_a": r["text_a"], "text_b": r["text_b"]}) for r in pairs]
    items += [(2, {"text": r["text"]}) for r in reviews]
    items += [(0, fields) for fields in written]
    inputs = [encoders[task].input_ids(fields) for task, fields in items]
    classes = [encoders[task].class_targets for task, _ in items]
    return items, inputs, classes


def _assert_equal(one_pass, expanded, tolerance):
    assert len(one_pass) == len(expanded)
    for got, want in zip(one_pass, expanded, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=tolerance, rtol=0), (got, want)


@pytest.mark.parametrize("kind", ["vectors", "prefixes", "mixed"])
def test_one_pass_equals_per_label_rows(tiny, kind):
    items, inputs, classes = _rows(tiny)
    members = {
        "vectors": [_vector(tiny, 5, 0), _vector(tiny, 12, 1), _vector(tiny, 1, 2)],
        "prefixes": [_prefix(tiny, 4, 0), _prefix(tiny, 9, 1), _prefix(tiny, 2, 2)],
        "mixed": [_vector(tiny, 7, 0), _prefix(tiny, 3, 1), _vector(tiny, 2, 2)],
    }[kind]
    prompts = PromptSet.from_list(members, tiny.embed_dim)
    row_prompt = torch.tensor([task for task, _ in items])
    assert max(len(t) for c in classes for t in c) > 1, "the rows must include multi-token labels"
    with torch.no_grad():
        one_pass = class_logprobs(tiny, prompts, row_prompt, inputs, classes)
        expanded = class_logprobs_expanded(tiny, prompts, row_prompt, inputs, classes)
    _assert_equal(one_pass, expanded, 1e-4)


def test_one_pass_with_prompts_served_from_cached_states(tiny_models):
    from workers.serving.kv import with_cached_states

    fm = tiny_models["llama"]
    items, _, _ = _rows(fm)
    specs = (NEWS, ENTAIL, SENTIMENT)
    loaded = [LoadedPrompt.build(fm, _vector(fm, 4 + 3 * k, k), spec) for k, spec in enumerate(specs)]
    cached = [with_cached_states(fm, prompt) for prompt in loaded]
    plain = predict_mixed(fm, [(loaded[task], fields) for task, fields in items])
    served = predict_mixed(fm, [(cached[task], fields) for task, fields in items])
    for a, b in zip(plain, served, strict=True):
        assert a["label"] == b["label"]
        for label, value in a["logprobs"].items():
            assert abs(value - b["logprobs"][label]) <= 1e-4


def test_labels_differing_only_after_a_shared_first_token(tiny_models):
    """Labels that share their first tokens (`not_entailment` / `not_equivalent`-style) still differ."""
    fm = tiny_models["gpt2"]
    inputs = [fm.encode("it rains"), fm.encode("the street is wet and the sky is grey")]
    labels = [fm.encode_target("not good"), fm.encode_target("not bad"), fm.encode_target("good")]
    assert labels[0][0] == labels[1][0]
    prompts = PromptSet.from_list([_vector(fm, 3, 0)], fm.embed_dim)
    row_prompt = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        one_pass = class_logprobs(fm, prompts, row_prompt, inputs, [labels, labels])
        expanded = class_logprobs_expanded(fm, prompts, row_prompt, inputs, [labels, labels])
    _assert_equal(one_pass, expanded, 1e-4)
    assert not torch.allclose(one_pass[0][0], one_pass[0][1])


@pytest.mark.real_model
def test_one_pass_equals_per_label_rows_on_the_default_model():
    fm = load_base_model()
    items, inputs, classes = _rows(fm)
    assert any(len(t) >= 3 for t in classes[0]), "sci_tech is several tokens in SmolLM2"
    prompts = PromptSet.from_list([_vector(fm, 20, 0), _vector(fm, 8, 1), _vector(fm, 1, 2)], fm.embed_dim)
    row_prompt = torch.tensor([task for task, _ in items])
    with torch.no_grad():
        one_pass = class_logprobs(fm, prompts, row_prompt, inputs, classes)
        expanded = class_logprobs_expanded(fm, prompts, row_prompt, inputs, classes)
    _assert_equal(one_pass, expanded, 2e-3)
    picks = [int(s.argmax()) for s in one_pass]
    assert picks == [int(s.argmax()) for s in expanded]
