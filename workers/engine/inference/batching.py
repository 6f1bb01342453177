"""Assembling one batch whose rows each carry their own soft prompt (any length) before their tokens.

Decoder-only rows are left-padded so every row ends at the last column: [pad…][prompt_i][tokens_i].
The attention mask covers prompt and tokens, and position ids count from the first real vector, so a
row's result does not depend on how much padding its batch-mates force on it. Encoder-decoder rows are
right-padded ([prompt_i][tokens_i][pad…]); the prompt goes before the encoder input only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import Cache, DynamicCache, EncoderDecoderCache

from workers.engine.base_model import FrozenModel


@dataclass
class PromptSet:
    """N prompts stacked so that rows can index them.

    A prompt is either input vectors (P, E) -- prompt tuning, P-tuning, text prompts -- or a prefix
    (layers, slots, kv_heads, P, head_dim) of keys and values for every layer -- prefix tuning; slots
    are (key, value) for a decoder-only model and (self key, self value, cross key, cross value) for
    an encoder-decoder's decoder. Both
    kinds live in one set so a batch can mix methods: a vector prompt has prefix length 0 and a
    prefix has vector length 0.
    """

    vectors: torch.Tensor  # (N, Pv, E), each left-aligned, `lengths` real
    lengths: torch.Tensor  # (N,)
    prefix: torch.Tensor | None = None  # (N, layers, slots, kv_heads, Pp, head_dim), each right-aligned
    prefix_lengths: torch.Tensor | None = None  # (N,)
    # Positions a prompt occupies before its row's first vector: 0, except for a prompt served as its own
    # cached key/value states (serving's soft-prompt KV cache), whose tokens start after its P positions.
    offsets: torch.Tensor | None = None  # (N,)

    @classmethod
    def from_list(
        cls,
        prompts: Sequence[torch.Tensor],
        embed_dim: int | None = None,
        offsets: Sequence[int] | None = None,
    ) -> PromptSet:
        if not prompts:
            raise ValueError("a PromptSet needs at least one prompt")
        vector_prompts = [p for p in prompts if p.dim() == 2]
        prefixes = [p for p in prompts if p.dim() == 5]
        if len(vector_prompts) + len(prefixes) != len(prompts):
            raise ValueError("a prompt is (P, E) vectors or a (layers, slots, kv_heads, P, head_dim) prefix")
        dim = embed_dim or (vector_prompts[0].shape[-1] if vector_prompts else None)
        if dim is None:
            raise ValueError("embed_dim is needed when every prompt is a prefix")
        longest = max([1, *(p.shape[0] for p in vector_prompts)])
        vectors = prompts[0].new_zeros((len(prompts), longest, dim))  # (N, Pv, E)
        lengths = torch.zeros(len(prompts), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            if prompt.dim() == 2:
                vectors[i, : prompt.shape[0]] = prompt
                lengths[i] = prompt.shape[0]
        prefix = prefix_lengths = None
        if prefixes:
            layers, slots, kv_heads, _, head_dim = prefixes[0].shape
            widest = max(p.shape[3] for p in prefixes)
            prefix = prefixes[0].new_zeros((len(prompts), layers, slots, kv_heads, widest, head_dim))
            prefix_lengths = torch.zeros(len(prompts), dtype=torch.long)
            for i, prompt in enumerate(prompts):
                if prompt.dim() == 5:
                    prefix[i, :, :, :, widest - prompt.shape[3] :] = prompt
                    prefix_lengths[i] = prompt.shape[3]
        shifts = None
        if offsets is not None and any(offsets):
            if len(offsets) != len(prompts):
                raise ValueError("one offset per prompt")
            shifts = torch.tensor(list(offsets), dtype=torch.long)
        return cls(
            vectors=vectors, lengths=lengths, prefix=prefix, prefix_lengths=prefix_lengths, offsets=shifts
        )

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


@dataclass
class AssembledBatch:
    inputs_embeds: torch.Tensor  # (B, L, E)
    attention_mask: torch.Tensor  # (B, Pp + L): prefix region first when there is one
    position_ids: torch.Tensor  # (B, L)
    past_key_values: Cache | None = None  # the rows' prefixes, (B, kv_heads, Pp, head_dim) per layer

    def decoder_inputs(self) -> dict[str, Any]:
        """Keyword arguments for a decoder's forward pass."""
        return {
            "inputs_embeds": self.inputs_embeds,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
            "past_key_values": self.past_key_values,
            "use_cache": self.past_key_values is not None,
        }


def prefix_cache(
    fm: FrozenModel, prompts: PromptSet, row_prompt: torch.Tensor
) -> tuple[Cache | None, torch.Tensor | None]:
    """Each row's prefix in a fresh cache, right-aligned in the prefix region, and that region's mask.

    Decoder-only: a DynamicCache with (key, value) per layer. Encoder-decoder: an EncoderDecoderCache
    whose self-attention part holds the decoder prefixes and cross-attention part the cross prefixes;
    the model appends the decoder's (and the encoder's) own keys after them. A new cache object per
    forward pass, since the model writes into it.
    """
    if prompts.prefix is None:
        return None, None
    rows = prompts.prefix[row_prompt.to(prompts.prefix.device)].to(device=fm.device, dtype=fm.dtype)
    width = rows.shape[4]  # rows: (B, layers, slots, kv_heads, Pp, head_dim)
    # from_list sets prefix_lengths together with prefix.
    lengths = cast(torch.Tensor, prompts.prefix_lengths).to(fm.device)[row_prompt.to(fm.device)]  # (B,)
    mask = (torch.arange(width, device=fm.device).unsqueeze(0) >= (width - lengths).unsqueeze(1)).long()
    layers = range(rows.shape[1])
    if not fm.is_encoder_decoder:
        data = [(rows[:, layer, 0], rows[:, layer, 1]) for layer in layers]
        return DynamicCache(ddp_cache_data=data, config=fm.model.config), mask  # (B, Pp) mask
    cache = EncoderDecoderCache(
        DynamicCache(ddp_cache_data=[(rows[:, layer, 0], rows[:, layer, 1]) for layer in layers]),
        DynamicCache(ddp_cache_data=[(rows[:, layer, 2], rows[:, layer, 3]) for layer in layers]),
    )
    # A filled cross-attention cache counts as complete; ours still needs the encoder's keys appended.
    cache.is_updated = dict.fromkeys(layers, False)
    return cache, mask


def assemble(
    fm: FrozenModel,
    prompts: PromptSet,
    row_prompt: torch.Tensor,
    seqs: Sequence[Sequence[int]],
    left_pad: bool,
) -> AssembledBatch:
    """Embeddings for rows `[prompt_{row_prompt[i]}][seqs[i]]`, built with one gather (no loop over rows)."""
    device = fm.device
    n_prompts, p_max, dim = prompts.vectors.shape
    batch = len(seqs)
    tok_len = torch.tensor([len(s) for s in seqs], dtype=torch.long, device=device)  # (B,)
    t_max = int(tok_len.max())
    tokens = torch.full((batch, t_max), fm.pad_id, dtype=torch.long)
    for i, seq in enumerate(seqs):  # tokens right-aligned in their own grid
        if len(seq):
            tokens[i, t_max - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
    tokens = tokens.to(device)
    row_prompt = row_prompt.to(device)
    p_len = prompts.lengths.to(device)[row_prompt]  # (B,)
    total = p_len + tok_len  # (B,)
    width = int(total.max())
    cols = torch.arange(width, device=device).unsqueeze(0)  # (1, L)
    start = (width - total).unsqueeze(1) if left_pad else torch.zeros_like(total).unsqueeze(1)
    rel = cols - start  # (B, L): index within the row's real vectors
    is_prompt = (rel >= 0) & (rel < p_len.unsqueeze(1))
    is_token = (rel >= p_len.unsqueeze(1)) & (rel < total.unsqueeze(1))
    prompt_index = row_prompt.unsqueeze(1) * p_max + rel.clamp(0, p_max - 1)
    token_offset = n_prompts * p_max
    token_index = (
        token_offset
        + torch.arange(batch, device=device).unsqueeze(1) * t_max
        + (t_max - tok_len).unsqueeze(1)
        + (rel - p_len.unsqueeze(1)).clamp(min=0)
    )
    zero_index = token_offset + batch * t_max
    index = torch.where(is_prompt, prompt_index, torch.where(is_token, token_index, zero_index))  # (B, L)
    dtype = fm.dtype
    source = torch.cat(
        [
            prompts.vectors.to(device=device, dtype=dtype).reshape(n_prompts * p_max, dim),
            fm.embed(tokens).reshape(batch * t_max, dim),
            torch.zeros(1, dim, device=device, dtype=dtype),
        ]
    )  # (N*Pmax + B*T + 1, E)
    mask = (is_prompt | is_token).long()
    cache = None
    if prompts.prefix is not None and left_pad:  # encoder-decoder prefixes belong to the decoder
        cache, prefix_mask = prefix_cache(fm, prompts, row_prompt)
        # prefix_cache returns a mask whenever the prompts have a prefix.
        mask = torch.cat([cast(torch.Tensor, prefix_mask), mask], dim=1)
    positions = rel.clamp(min=0)
    if prompts.offsets is not None:
        positions = positions + prompts.offsets.to(device)[row_prompt].unsqueeze(1)
    return AssembledBatch(
        inputs_embeds=source[index], attention_mask=mask, position_ids=positions, past_key_values=cache
    )


def length_buckets(
    lengths: Sequence[int], batch_size: int, seed: int, pool_batches: int = 50
) -> Iterator[list[int]]:
    """Batches of indices with similar lengths, in a seeded random order: little padding, no bias.

    The data is shuffled, cut into pools of `pool_batches` batches, each pool sorted by length and cut
    into batches; the batches are then shuffled. Endless: one epoch after another with a new order.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    while True:
        rng.shuffle(order)
        batches: list[list[int]] = []
        pool = batch_size * pool_batches
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        rng.shuffle(batches)
        yield from batches
