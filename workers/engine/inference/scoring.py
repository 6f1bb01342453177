"""Forward passes over mixed-prompt batches: target log-probabilities, rank classification, greedy decoding.

Logits are computed only where a target token is predicted: the LM head over a 50k vocabulary at every
position would cost more than the loss needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from transformers import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from workers.engine.base_model import FrozenModel
from workers.engine.inference.batching import PromptSet, assemble, prefix_cache


def _right_aligned(seqs: Sequence[Sequence[int]], width: int, fill: int) -> torch.Tensor:
    grid = torch.full((len(seqs), width), fill, dtype=torch.long)
    for i, seq in enumerate(seqs):
        if len(seq):
            grid[i, width - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
    return grid


def _left_aligned(seqs: Sequence[Sequence[int]], width: int, fill: int) -> torch.Tensor:
    grid = torch.full((len(seqs), width), fill, dtype=torch.long)
    for i, seq in enumerate(seqs):
        grid[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return grid


def _encode(
    fm: FrozenModel, prompts: PromptSet, row_prompt: torch.Tensor, inputs: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    batch = assemble(fm, prompts, row_prompt, inputs, left_pad=False)
    encoded = fm.model.get_encoder()(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask)
    return encoded.last_hidden_state, batch.attention_mask  # (B, L, E), (B, L)


def _decoder_masks(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    encoder_mask: torch.Tensor,
    decoder_mask: torch.Tensor,
) -> tuple[Cache | None, torch.Tensor, torch.Tensor]:
    """The prefix cache and the cross- and self-attention masks that cover it.

    The encoder already ran, so the `attention_mask` handed to the model governs cross-attention
    only, over [cross prefix; encoder states]; the decoder's own mask spans [self prefix; tokens].
    """
    cache, prefix_mask = prefix_cache(fm, prompts, row_prompt)
    if cache is None:
        return None, encoder_mask, decoder_mask
    # prefix_cache returns a mask whenever it returns a cache.
    prefix_mask = cast(torch.Tensor, prefix_mask)
    return cache, torch.cat([prefix_mask, encoder_mask], 1), torch.cat([prefix_mask, decoder_mask], 1)


def _seq2seq_target_logprobs(
    fm: FrozenModel,
    encoder_hidden: torch.Tensor,
    encoder_mask: torch.Tensor,
    targets: Sequence[Sequence[int]],
    prompts: PromptSet,
    row_prompt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(t) for t in targets)
    start = fm.model.config.decoder_start_token_id
    decoder_in = _left_aligned([[start, *t[:-1]] for t in targets], width, fm.pad_id).to(fm.device)
    labels = _left_aligned(targets, width, fm.pad_id).to(fm.device)  # (B, T)
    mask = _left_aligned([[1] * len(t) for t in targets], width, 0).to(fm.device)
    cache, cross_mask, self_mask = _decoder_masks(fm, prompts, row_prompt, encoder_mask, mask)
    logits = fm.model(
        encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
        attention_mask=cross_mask,
        decoder_input_ids=decoder_in,
        decoder_attention_mask=self_mask,
        past_key_values=cache,
        use_cache=cache is not None,
    ).logits  # (B, T, V)
    logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return logprobs * mask, mask


def target_logprobs(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target token given prompt and input: (B, T) values, zero off the
    targets, and the (B, T) target mask."""
    if any(len(t) == 0 for t in targets):
        raise ValueError("every target needs at least one token")
    if fm.is_encoder_decoder:
        hidden, mask = _encode(fm, prompts, row_prompt, inputs)
        return _seq2seq_target_logprobs(fm, hidden, mask, targets, prompts, row_prompt)
    seqs = [[*inp, *tgt] for inp, tgt in zip(inputs, targets, strict=True)]
    batch = assemble(fm, prompts, row_prompt, seqs, left_pad=True)
    hidden = fm.decoder_body()(**batch.decoder_inputs()).last_hidden_state  # (B, L, E)
    width = max(len(t) for t in targets)
    length = hidden.shape[1]
    # Rows end together (left padding), so the positions predicting targets are one slice for all rows.
    predicting = hidden[:, length - width - 1 : length - 1]  # (B, T, E)
    logits = fm.lm_head()(predicting)  # (B, T, V)
    labels = _right_aligned(targets, width, fm.pad_id).to(fm.device)
    mask = _right_aligned([[1] * len(t) for t in targets], width, 0).to(fm.device)
    logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return logprobs * mask, mask


def target_nll(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Mean negative log-likelihood per row over its target tokens only: (B,)."""
    logprobs, mask = target_logprobs(fm, prompts, row_prompt, inputs, targets)
    return -logprobs.sum(1) / mask.sum(1)  # already zero off the targets


def class_logprobs(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    row_classes: Sequence[Sequence[Sequence[int]]],
) -> list[torch.Tensor]:
    """Rank classification: per row, the summed log-likelihood of each of its classes' tokens, (C_i,).

    Rows may belong to different tasks (their own label sets). Each input runs through the model once,
    whatever its labels: a decoder-only model keeps the input's key/value states and scores every
    label's continuation from them (only label tokens run again); an encoder-decoder runs its encoder
    once and its decoder over the label tokens.
    """
    counts = [len(classes) for classes in row_classes]
    flat_targets = [t for classes in row_classes for t in classes]
    if any(len(t) == 0 for t in flat_targets):
        raise ValueError("every class needs at least one token")
    if fm.is_encoder_decoder:
        hidden, mask = _encode(fm, prompts, row_prompt, inputs)  # encoder runs once, not once per class
        repeats = torch.tensor(counts, device=fm.device)
        logprobs, _ = _seq2seq_target_logprobs(
            fm,
            hidden.repeat_interleave(repeats, dim=0),
            mask.repeat_interleave(repeats, dim=0),
            flat_targets,
            prompts,
            row_prompt.to(fm.device).repeat_interleave(repeats),
        )
        return list(logprobs.sum(1).split(counts))
    return list(
        _shared_input_class_logprobs(fm, prompts, row_prompt, inputs, flat_targets, counts).split(counts)
    )


def class_logprobs_expanded(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    row_classes: Sequence[Sequence[Sequence[int]]],
) -> list[torch.Tensor]:
    """`class_logprobs` the long way: every input repeated once per label, each row input + label.

    The reference the one-pass path is tested and benchmarked against (tests/engine/test_scoring.py,
    benchmarks/scoring.py); nothing serves or evaluates with it.
    """
    counts = [len(classes) for classes in row_classes]
    expanded_inputs = [inp for inp, n in zip(inputs, counts, strict=True) for _ in range(n)]
    repeats = torch.tensor(counts)
    logprobs, _ = target_logprobs(
        fm,
        prompts,
        row_prompt.cpu().repeat_interleave(repeats),
        expanded_inputs,
        [t for classes in row_classes for t in classes],
    )
    return list(logprobs.sum(1).split(counts))


def _shared_input_class_logprobs(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    flat_targets: Sequence[Sequence[int]],
    counts: Sequence[int],
) -> torch.Tensor:
    """Decoder-only rank classification from one pass over the inputs: (N,) scores, one per
    (input, label) pair in row order (`counts` labels per input).

    The input pass gives every label's first token (one next-token distribution per row). Labels of
    more tokens continue from the input's cached key/value states, expanded to one cache row per
    (input, label) pair: those rows run the label's tokens but its last, each predicting the next.
    """
    many_tokens = any(len(t) > 1 for t in flat_targets)
    batch = assemble(fm, prompts, row_prompt, inputs, left_pad=True)
    # The cache is kept when labels continue from it (a prefix prompt's cache is used either way).
    use_cache = many_tokens or batch.past_key_values is not None
    out = fm.decoder_body()(**{**batch.decoder_inputs(), "use_cache": use_cache})
    first = F.log_softmax(fm.lm_head()(out.last_hidden_state[:, -1]).float(), dim=-1)  # (B, V)
    flat_row = torch.tensor([i for i, n in enumerate(counts) for _ in range(n)], device=fm.device)  # (N,)
    flat_first = torch.tensor([t[0] for t in flat_targets], device=fm.device)
    scores = first[flat_row, flat_first]  # (N,): every (input, label) pair's first token
    if not many_tokens:
        return scores
    # Pairs whose label has tokens after its first: their index among the N pairs, their input row.
    longer = [n for n, t in enumerate(flat_targets) if len(t) > 1]
    rows = flat_row[longer]  # (R,)
    fed = [flat_targets[n][:-1] for n in longer]  # the label's tokens that predict its next ones
    wanted = [flat_targets[n][1:] for n in longer]
    width = max(len(t) for t in fed)
    tokens = _left_aligned(fed, width, fm.pad_id).to(fm.device)  # (R, W): padding after, never before
    fed_mask = _left_aligned([[1] * len(t) for t in fed], width, 0).to(fm.device)  # (R, W)
    cache = out.past_key_values
    cache.reorder_cache(rows)  # one cache row per pair, copied from its input's
    positions = batch.position_ids[rows, -1:] + 1 + torch.arange(width, device=fm.device)  # (R, W)
    hidden = fm.decoder_body()(
        inputs_embeds=fm.embed(tokens),
        attention_mask=torch.cat([batch.attention_mask[rows], fed_mask], dim=1),
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    ).last_hidden_state  # (R, W, E)
    # The LM head only where a label token is predicted (labels of different lengths pad the rest).
    real = fed_mask.bool()  # (R, W)
    labels = _left_aligned(wanted, width, fm.pad_id).to(fm.device)[real]  # (M,)
    logits = fm.lm_head()(hidden[real])  # (M, V)
    logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (M,)
    pair = torch.tensor(longer, device=fm.device).unsqueeze(1).expand(-1, width)[real]  # (M,)
    return scores.index_add(0, pair, logprobs)


@torch.no_grad()
def greedy_generate(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    max_new_tokens: int | Sequence[int],
) -> list[list[int]]:
    """Greedy decoding for every row at once, each row behind its own prompt; a row stops at
    end-of-sequence or at its own token limit (`max_new_tokens`: one for all rows, or one per row)."""
    limits = token_limits(max_new_tokens, len(inputs))
    if fm.is_encoder_decoder:
        return _seq2seq_greedy(fm, prompts, row_prompt, inputs, limits)
    batch = assemble(fm, prompts, row_prompt, inputs, left_pad=True)
    body, head = fm.decoder_body(), fm.lm_head()
    out = body(**{**batch.decoder_inputs(), "use_cache": True})
    mask, position = batch.attention_mask, batch.position_ids[:, -1:]
    generated: list[list[int]] = [[] for _ in inputs]
    done = torch.zeros(len(inputs), dtype=torch.bool, device=fm.device)
    for _ in range(max(limits)):
        next_ids = head(out.last_hidden_state[:, -1]).argmax(-1)  # (B,)
        if _take(fm, next_ids, generated, done, limits):
            break
        mask = torch.cat([mask, mask.new_ones(len(inputs), 1)], dim=1)
        position = position + 1
        out = body(
            inputs_embeds=fm.embed(next_ids.unsqueeze(1)),
            attention_mask=mask,
            position_ids=position,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
    return [_until_eos(fm, ids) for ids in generated]


def _seq2seq_greedy(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    inputs: Sequence[Sequence[int]],
    limits: list[int],
) -> list[list[int]]:
    """Greedy decoding for an encoder-decoder: the encoder once, then one cached decoder step per token."""
    hidden, encoder_mask = _encode(fm, prompts, row_prompt, inputs)
    rows = len(inputs)
    cache, cross_mask, self_mask = _decoder_masks(
        fm, prompts, row_prompt, encoder_mask, encoder_mask.new_zeros(rows, 0)
    )
    cache = cache or EncoderDecoderCache(DynamicCache(), DynamicCache())
    encoder_outputs = BaseModelOutput(last_hidden_state=hidden)
    next_ids = torch.full((rows,), fm.model.config.decoder_start_token_id, dtype=torch.long, device=fm.device)
    generated: list[list[int]] = [[] for _ in inputs]
    done = torch.zeros(rows, dtype=torch.bool, device=fm.device)
    for _ in range(max(limits)):
        self_mask = torch.cat([self_mask, self_mask.new_ones(rows, 1)], dim=1)
        out = fm.model(
            encoder_outputs=encoder_outputs,
            attention_mask=cross_mask,
            decoder_input_ids=next_ids.unsqueeze(1),
            decoder_attention_mask=self_mask,
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        next_ids = out.logits[:, -1].argmax(-1)  # (B,)
        if _take(fm, next_ids, generated, done, limits):
            break
    return [_until_eos(fm, ids) for ids in generated]


def token_limits(max_new_tokens: int | Sequence[int], rows: int) -> list[int]:
    """One generation limit per row, from a shared limit or a per-row list; ValueError if they do not fit."""
    limits = [max_new_tokens] * rows if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(limits) != rows or min(limits, default=1) < 1:
        raise ValueError(f"Need one token limit ≥ 1 per row: {rows} rows, limits {limits}.")
    return limits


def _take(
    fm: FrozenModel, next_ids: torch.Tensor, generated: list[list[int]], done: torch.Tensor, limits: list[int]
) -> bool:
    """Append each unfinished row's next token, mark rows that ended or hit their limit (in place);
    True when all have."""
    for i, token in enumerate(next_ids.tolist()):
        if not done[i]:
            generated[i].append(token)
            done[i] = len(generated[i]) >= limits[i]
    if fm.eos_id is not None:
        done |= next_ids == fm.eos_id
    return bool(done.all())


def _until_eos(fm: FrozenModel, ids: list[int]) -> list[int]:
    special = {fm.eos_id, fm.pad_id}
    for i, token in enumerate(ids):
        if token in special:
            return ids[:i]
    return ids
