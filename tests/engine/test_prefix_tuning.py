"""Prefix tuning: per-layer key/value prefixes through the installed transformers' cache classes."""

import pytest
import torch
from transformers import DynamicCache

from tests.engine.test_training import SPEC, _data
from workers.engine.artifacts.artifact import load_artifact, save_artifact
from workers.engine.inference.batching import PromptSet
from workers.engine.inference.predict import LoadedPrompt, predict_mixed
from workers.engine.inference.scoring import greedy_generate, target_logprobs
from workers.engine.methods.prefix_tuning import PrefixConfig, PrefixEncoder, prompt_states
from workers.engine.methods.prompt_tuning import init_prompt
from workers.engine.training.config import TrainConfig
from workers.engine.training.pipeline import train_task

DECODERS = ["gpt2", "llama"]
ALL = [*DECODERS, "t5"]


def _prefix(fm, length: int, seed: int) -> torch.Tensor:
    layers, kv_heads, head_dim = fm.kv_geometry()
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(layers, fm.prefix_slots, kv_heads, length, head_dim, generator=gen)


@pytest.mark.parametrize("kind", DECODERS)
def test_batched_prefix_matches_the_library_cache_path(tiny_models, kind):
    """Our assembly (right-aligned prefixes, masks, positions) against transformers' own cache use."""
    fm = tiny_models[kind]
    tokens, target = [5, 17, 42, 9], [30, 31]
    prefix = _prefix(fm, 3, 0)
    cache = DynamicCache(
        ddp_cache_data=[(prefix[i, 0][None], prefix[i, 1][None]) for i in range(prefix.shape[0])],
        config=fm.model.config,
    )
    ids = torch.tensor([[*tokens, *target]])
    with torch.no_grad():
        reference = fm.model(
            input_ids=ids,
            past_key_values=cache,
            attention_mask=torch.ones(1, 3 + ids.shape[1]),
            position_ids=torch.arange(ids.shape[1])[None],
            use_cache=True,
        ).logits
    ref_lp = torch.log_softmax(reference[0, len(tokens) - 1 : -1], -1)[torch.arange(2), torch.tensor(target)]
    # The same row in a batch with a longer prefix, a vector prompt and a longer input around it.
    prompts = PromptSet.from_list([prefix, _prefix(fm, 6, 1), torch.randn(4, fm.embed_dim)], fm.embed_dim)
    with torch.no_grad():
        ours, _ = target_logprobs(
            fm, prompts, torch.tensor([0, 1, 2]), [tokens, [7] * 9, [8, 9]], [target, [11], [12, 13, 14]]
        )
    row = ours[0, -len(target) :]  # targets are right-aligned in a grid as wide as the longest
    assert torch.allclose(row, ref_lp, atol=1e-4), (row, ref_lp)


@pytest.mark.parametrize("kind", ALL)
def test_mixed_methods_batch_equals_row_by_row(tiny_models, kind):
    fm = tiny_models[kind]
    prefix_prompt = LoadedPrompt.build(fm, _prefix(fm, 5, 2), SPEC)
    vector_prompt = LoadedPrompt.build(fm, torch.randn(7, fm.embed_dim), SPEC)
    ensemble = LoadedPrompt.build(fm, [_prefix(fm, 2, 3), _prefix(fm, 2, 4), _prefix(fm, 2, 5)], SPEC)
    items = [
        (prefix_prompt, {"text": "a fine film"}),
        (vector_prompt, {"text": "dull , dull , dull and long"}),
        (ensemble, {"text": "lovely"}),
        (prefix_prompt, {"text": "it was awful beyond words , truly"}),
    ]
    together = predict_mixed(fm, items)
    for item, out in zip(items, together, strict=True):
        alone = predict_mixed(fm, [item])[0]
        assert alone["label"] == out["label"]
        for label in SPEC.labels:
            assert abs(alone["logprobs"][label] - out["logprobs"][label]) <= 1e-4


@pytest.mark.parametrize("kind", ALL)
def test_greedy_decoding_with_a_prefix_matches_recomputation(tiny_models, kind):
    """Each decoding step reuses the cache; recomputing from scratch must give the same tokens."""
    fm = tiny_models[kind]
    prompts = PromptSet.from_list([_prefix(fm, 4, 6)], fm.embed_dim)
    row = torch.tensor([0])
    generated = greedy_generate(fm, prompts, row, [[5, 6, 7]], max_new_tokens=5)[0]
    sequence = [5, 6, 7]
    for token in generated:
        with torch.no_grad():
            # Score every vocabulary id as the next token via the non-cached path.
            candidates = [[t] for t in range(fm.model.config.vocab_size)]
            logprobs, _ = target_logprobs(
                fm, prompts, row.repeat(len(candidates)), [sequence] * len(candidates), candidates
            )
        assert int(logprobs[:, 0].argmax()) == token
        sequence.append(token)


@pytest.mark.parametrize("kind", ALL)
def test_prefix_changes_the_output_and_folds_away(tiny_models, kind, tmp_path):
    fm = tiny_models[kind]
    module = PrefixEncoder(fm, init_prompt(fm, 3, "vocab"), PrefixConfig(hidden_size=16))
    layers, kv_heads, head_dim = fm.kv_geometry()
    assert module().shape == (layers, fm.prefix_slots, kv_heads, 3, head_dim)
    config = TrainConfig(
        method="prefix", prompt_length=3, batch_size=8, steps=20, eval_every=10, dev_eval_limit=8
    )
    artifact = train_task(fm, SPEC, _data(48, 0), _data(8, 1), config)
    assert set(artifact.tensors) == {"prefix"} and artifact.is_prefix and artifact.prompt_length == 3
    loaded = load_artifact(save_artifact(artifact, tmp_path / "prefix.safetensors"))
    row = {"text": "the film was great"}
    with_prefix = predict_mixed(fm, [(LoadedPrompt.from_artifact(fm, loaded), row)])[0]
    without = predict_mixed(fm, [(LoadedPrompt.build(fm, torch.zeros(0, fm.embed_dim), SPEC), row)])[0]
    assert with_prefix["logprobs"] != without["logprobs"]


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("reparameterize", [True, False])
def test_prefix_training_lowers_the_loss(tiny_models, kind, reparameterize):
    fm = tiny_models[kind]
    config = TrainConfig(
        method="prefix",
        prompt_length=4,
        batch_size=8,
        steps=30,
        eval_every=30,
        dev_eval_limit=8,
        learning_rate=1e-2,
        prefix_reparameterize=reparameterize,
    )
    losses = [h["loss"] for h in train_task_history(fm, config)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def train_task_history(fm, config):
    from workers.engine.training.bank import Member
    from workers.engine.training.trainer import build_module, train_bank

    member = Member(SPEC, _data(64, 0), _data(8, 1), build_module(fm, config, init_prompt(fm, 4, "random")))
    return train_bank(fm, [member], config)[0].history


def test_t5_prefix_matches_the_library_cache_path(tiny_models):
    """Decoder self- and cross-attention prefixes against transformers' EncoderDecoderCache, used directly."""
    from transformers import EncoderDecoderCache
    from transformers.modeling_outputs import BaseModelOutput

    fm = tiny_models["t5"]
    tokens, target = [5, 17, 42, 1], [30, 31, 1]
    prefix = _prefix(fm, 3, 0)
    layers = range(prefix.shape[0])
    cache = EncoderDecoderCache(
        DynamicCache(ddp_cache_data=[(prefix[i, 0][None], prefix[i, 1][None]) for i in layers]),
        DynamicCache(ddp_cache_data=[(prefix[i, 2][None], prefix[i, 3][None]) for i in layers]),
    )
    cache.is_updated = dict.fromkeys(layers, False)
    ids = torch.tensor([tokens])
    with torch.no_grad():
        encoded = fm.model.get_encoder()(input_ids=ids).last_hidden_state
        logits = fm.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
            attention_mask=torch.ones(1, 3 + len(tokens)),
            decoder_input_ids=torch.tensor([[0, 30, 31]]),
            decoder_attention_mask=torch.ones(1, 6),
            past_key_values=cache,
            use_cache=True,
        ).logits
    reference = torch.log_softmax(logits[0], -1)[torch.arange(3), torch.tensor(target)]
    prompts = PromptSet.from_list([prefix, _prefix(fm, 5, 1), torch.randn(2, fm.embed_dim)], fm.embed_dim)
    with torch.no_grad():
        ours, _ = target_logprobs(
            fm,
            prompts,
            torch.tensor([0, 1, 2]),
            [tokens, [7] * 9, [8, 1]],
            [target, [11, 1], [12, 13, 14, 15, 1]],
        )
    assert torch.allclose(ours[0, :3], reference, atol=1e-4), (ours[0], reference)


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("reparameterize", [True, False])
def test_decoder_prefix_starts_at_the_init_words_states(tiny_models, kind, reparameterize):
    fm = tiny_models[kind]
    initial = init_prompt(fm, 3, "vocab")
    module = PrefixEncoder(fm, initial, PrefixConfig(hidden_size=16, reparameterize=reparameterize))
    states = prompt_states(fm, initial)  # what the frozen model computes for these vectors as a prompt
    assert torch.allclose(module(), states, atol=1e-6)
    assert states.abs().sum() > 0
