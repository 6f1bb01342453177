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

import torch

from workers.engine.base_model import FrozenModel


@dataclass
class PromptSet:
    """N prompts padded to a common length, so rows can index them: vectors (N, Pmax, E), lengths (N,)."""

    vectors: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def from_list(cls, prompts: Sequence[torch.Tensor], embed_dim: int | None = None) -> PromptSet:
        if not prompts:
            raise ValueError("a PromptSet needs at least one prompt")
        dim = embed_dim or prompts[0].shape[-1]
        longest = max(1, max(p.shape[0] for p in prompts))
        ref = prompts[0]
        vectors = ref.new_zeros((len(prompts), longest, dim))  # (N, Pmax, E)
        for i, prompt in enumerate(prompts):
            vectors[i, : prompt.shape[0]] = prompt
        lengths = torch.tensor([p.shape[0] for p in prompts], dtype=torch.long)
        return cls(vectors=vectors, lengths=lengths)

    @classmethod
    def single(cls, prompt: torch.Tensor) -> PromptSet:
        """One prompt (P, E) as a set of one, keeping the autograd graph to the parameter."""
        if prompt.shape[0] == 0:
            return cls.from_list([prompt])
        return cls(vectors=prompt.unsqueeze(0), lengths=torch.tensor([prompt.shape[0]]))

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


@dataclass
class AssembledBatch:
    inputs_embeds: torch.Tensor  # (B, L, E)
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)


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
    mask = is_prompt | is_token
    return AssembledBatch(
        inputs_embeds=source[index],
        attention_mask=mask.long(),
        position_ids=rel.clamp(min=0),
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
