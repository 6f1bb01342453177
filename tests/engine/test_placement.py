"""The prompt sits right before the real tokens, masks and positions cover it, padding changes nothing."""

import torch

from workers.engine.inference.batching import PromptSet, assemble

INPUT_SHORT = [5, 17, 42]
INPUT_LONG = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 30, 31]
DECODER_IN = torch.tensor([[0, 40, 41, 42]])


def _prompts(fm, lengths=(4, 7)) -> PromptSet:
    gen = torch.Generator().manual_seed(1)
    return PromptSet.from_list([torch.randn(n, fm.embed_dim, generator=gen) for n in lengths])


def _logits(fm, prompts, rows, seqs):
    left = not fm.is_encoder_decoder
    batch = assemble(fm, prompts, torch.tensor(rows), seqs, left_pad=left)
    kwargs = {"inputs_embeds": batch.inputs_embeds, "attention_mask": batch.attention_mask}
    with torch.no_grad():
        if fm.is_encoder_decoder:
            return fm.model(**kwargs, decoder_input_ids=DECODER_IN.expand(len(seqs), -1)).logits
        return fm.model(**kwargs, position_ids=batch.position_ids).logits


def test_padded_and_unpadded_rows_give_the_same_logits(tiny):
    prompts = _prompts(tiny)
    alone = _logits(tiny, prompts, [0], [INPUT_SHORT])[0]
    padded = _logits(tiny, prompts, [0, 1], [INPUT_SHORT, INPUT_LONG])[0]
    if tiny.is_encoder_decoder:
        assert torch.allclose(alone, padded, atol=1e-4)
        diff = (alone - padded).abs().max()
    else:
        # Left padding: the row's real positions are the last ones of the padded batch.
        diff = (alone - padded[-alone.shape[0] :]).abs().max()
    assert padded.shape[0] > alone.shape[0] or tiny.is_encoder_decoder
    assert float(diff) <= 1e-4


def test_prompt_is_placed_immediately_before_the_tokens(tiny):
    prompts = _prompts(tiny)
    batch = assemble(tiny, prompts, torch.tensor([0, 1]), [INPUT_SHORT, INPUT_LONG], left_pad=True)
    width = 7 + len(INPUT_LONG)
    assert batch.inputs_embeds.shape[:2] == (2, width)
    pad = width - 4 - len(INPUT_SHORT)
    row = batch.inputs_embeds[0]
    assert torch.equal(batch.attention_mask[0], torch.tensor([0] * pad + [1] * (width - pad)))
    assert torch.allclose(row[pad : pad + 4], prompts.vectors[0, :4])
    tokens = tiny.embed(torch.tensor(INPUT_SHORT))
    assert torch.allclose(row[pad + 4 :], tokens)
    assert batch.position_ids[0, pad:].tolist() == list(range(width - pad))
    assert batch.position_ids[1].tolist() == list(range(width))


def test_right_padding_for_encoder_decoder_puts_pads_last(tiny_models):
    fm = tiny_models["t5"]
    prompts = _prompts(fm)
    batch = assemble(fm, prompts, torch.tensor([0, 1]), [INPUT_SHORT, INPUT_LONG], left_pad=False)
    real = 4 + len(INPUT_SHORT)
    assert batch.attention_mask[0, :real].all() and not batch.attention_mask[0, real:].any()
    assert torch.allclose(batch.inputs_embeds[0, :4], prompts.vectors[0, :4])
    assert torch.count_nonzero(batch.inputs_embeds[0, real:]) == 0


def test_gradient_reaches_only_the_prompt(tiny):
    from workers.engine.inference.scoring import target_nll

    prompt = torch.nn.Parameter(torch.randn(5, tiny.embed_dim))
    loss = target_nll(
        tiny,
        PromptSet.from_list([prompt]),
        torch.zeros(2, dtype=torch.long),
        [INPUT_SHORT, INPUT_LONG],
        [[20, 21], [22]],
    ).mean()
    loss.backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny.model.parameters())
