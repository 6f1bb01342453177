"""Prefix tuning (Li & Liang, 2021): trainable keys and values prepended at every attention layer.

Training goes through the paper's re-parameterisation: P small input vectors pass through an MLP
that emits every layer's key/value prefix, which is far more stable than optimising the prefixes
directly. After training the MLP is folded away: the artifact holds only the per-layer prefixes,
(layers, slots, kv_heads, P, head_dim), and serving feeds them to the model as a key/value cache.
Decoder-only models get (key, value) prefixes at every layer (slots = 2); an encoder-decoder gets
them on its decoder's self-attention and cross-attention (slots = 4), as PEFT does for seq2seq.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workers.engine.base_model import FrozenModel
from workers.engine.errors import EngineError
from workers.engine.prompt_tuning import check_prompt_length


@dataclass
class PrefixConfig:
    reparameterize: bool = True
    hidden_size: int = 512

    def __post_init__(self) -> None:
        if self.hidden_size < 1:
            raise EngineError(f"The prefix MLP needs a positive hidden size, got {self.hidden_size}.")


class PrefixEncoder(nn.Module):
    """Yields the (layers, slots, kv_heads, P, head_dim) prefix; trains through an MLP unless told not to."""

    def __init__(self, fm: FrozenModel, initial: torch.Tensor, config: PrefixConfig | None = None):
        super().__init__()
        config = config or PrefixConfig()
        check_prompt_length(initial.shape[0])
        self.config = config
        self.layers, self.kv_heads, self.head_dim = fm.kv_geometry()
        self.slots = fm.prefix_slots
        width = self.layers * self.slots * self.kv_heads * self.head_dim
        self.inputs = nn.Parameter(initial.detach().clone().float())  # (P, E)
        if config.reparameterize:
            self.mlp = nn.Sequential(
                nn.Linear(initial.shape[1], config.hidden_size),
                nn.Tanh(),
                nn.Linear(config.hidden_size, width),
            )
            self.direct = None
        else:
            self.mlp = None
            self.direct = nn.Parameter(torch.randn(initial.shape[0], width) * 0.02)  # (P, layers*slots*kv*hd)

    @property
    def length(self) -> int:
        return int(self.inputs.shape[0])

    def forward(self) -> torch.Tensor:
        flat = self.mlp(self.inputs) if self.mlp is not None else self.direct  # (P, layers*slots*kv*hd)
        prefix = flat.view(self.length, self.layers, self.slots, self.kv_heads, self.head_dim)
        return prefix.permute(1, 2, 3, 0, 4)  # (layers, slots, kv_heads, P, head_dim)
