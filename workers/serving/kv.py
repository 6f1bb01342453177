"""The soft-prompt KV cache: a prompt's key/value states computed once, then fed to every request as a prefix.

In a decoder-only model, a prompt's P vectors sit before the input, and causal attention means their
keys and values never depend on what follows. So the serving pool runs each cached prompt through the
model once (positions 0..P-1) and keeps the per-layer states in the prefix layout
(layers, 2, kv_heads, P, head_dim) that prefix tuning already uses; requests then skip the P prompt
positions entirely. The input's positions start at P (the engine's `offsets`), so results equal the
uncached path. Encoder-decoder models cannot do this: their encoder attends both ways.
"""

from __future__ import annotations

import torch

from workers.engine.base_model import FrozenModel
from workers.engine.inference.predict import LoadedPrompt
from workers.engine.methods.prefix_tuning import prompt_states


def with_cached_states(fm: FrozenModel, prompt: LoadedPrompt) -> LoadedPrompt:
    """The same prompt with every vector member replaced by its states (prefixes stay as they are)."""
    if fm.is_encoder_decoder:
        return prompt
    members: list[torch.Tensor] = []
    offsets: list[int] = []
    for member in prompt.members:
        if member.dim() == 2:
            members.append(prompt_states(fm, member))
            offsets.append(int(member.shape[0]))
        else:
            members.append(member.to(device=fm.device, dtype=fm.dtype))
            offsets.append(0)
    return LoadedPrompt(members=members, encoder=prompt.encoder, offsets=offsets)
