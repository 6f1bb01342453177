"""Prefix tuning (Li & Liang, 2021): trainable keys and values prepended at every attention layer.

Training goes through the paper's re-parameterisation: P small input vectors pass through an MLP
that emits every layer's key/value prefix, which is far more stable than optimising the prefixes
directly. After training the MLP is folded away: the artifact holds only the per-layer prefixes,
(layers, slots, kv_heads, P, head_dim), and serving feeds them to the model as a key/value cache.
Decoder-only models get (key, value) prefixes at every layer (slots = 2); an encoder-decoder gets
them on its decoder's self-attention and cross-attention (slots = 4), as PEFT does for seq2seq.

Initialisation follows Li & Liang's finding that prefixes started from real words' activations train
far better than random ones: in a decoder-only model the prefix is the key/value states the frozen model
itself computes for the initial vectors (label words, vocabulary, a text), plus a learned correction
whose last layer starts at zero. So step 0 behaves like a prompt-tuning prompt with the same init, not
like noise the model attends to. Encoder-decoder models (whose cross-attention prefix has no such
natural value) start from the MLP's own random output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from common.contracts import Method
from common.errors import EngineError
from workers.engine.base_model import FrozenModel
from workers.engine.methods.prompt_tuning import check_prompt_length
from workers.engine.methods.registry import MethodSettings, TrainingMethod


@dataclass
class PrefixConfig:
    reparameterize: bool = True
    hidden_size: int = 512

    def __post_init__(self) -> None:
        if self.hidden_size < 1:
            raise EngineError(f"The prefix MLP needs a positive hidden size, got {self.hidden_size}.")


@torch.no_grad()
def prompt_states(fm: FrozenModel, vectors: torch.Tensor) -> torch.Tensor:
    """Key/value states of a (P, E) prompt at every layer: (layers, 2, kv_heads, P, head_dim).

    Decoder-only models: causal attention means a prompt's states never depend on what follows it,
    so they are a prefix.
    """
    if fm.is_encoder_decoder:
        raise EngineError("Prompt states are a prefix for decoder-only models only.")
    embeds = vectors.to(device=fm.device, dtype=fm.dtype).unsqueeze(0)  # (1, P, E)
    length = embeds.shape[1]
    out = fm.decoder_body()(
        inputs_embeds=embeds,
        attention_mask=torch.ones(1, length, dtype=torch.long, device=fm.device),
        position_ids=torch.arange(length, device=fm.device).unsqueeze(0),
        use_cache=True,
    )
    layers = out.past_key_values.layers
    return torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in layers])


class PrefixEncoder(nn.Module):
    """Yields the (layers, slots, kv_heads, P, head_dim) prefix; trains through an MLP unless told not to."""

    base: torch.Tensor  # a registered buffer (nn.Module's attribute lookup types it loosely)

    def __init__(self, fm: FrozenModel, initial: torch.Tensor, config: PrefixConfig | None = None):
        super().__init__()
        config = config or PrefixConfig()
        check_prompt_length(initial.shape[0])
        self.config = config
        self.layers, self.kv_heads, self.head_dim = fm.kv_geometry()
        self.slots = fm.prefix_slots
        width = self.layers * self.slots * self.kv_heads * self.head_dim
        length = initial.shape[0]
        self.inputs = nn.Parameter(initial.detach().clone().float())  # (P, E)
        if fm.is_encoder_decoder:
            base = torch.zeros(length, width)
        else:  # (layers, 2, kv, P, hd) -> (P, layers*2*kv*hd), the MLP's output layout
            base = prompt_states(fm, initial).float().permute(3, 0, 1, 2, 4).reshape(length, width).cpu()
        self.register_buffer("base", base)  # (P, layers*slots*kv*hd)
        if config.reparameterize:
            self.mlp: nn.Sequential | None = nn.Sequential(
                nn.Linear(initial.shape[1], config.hidden_size),
                nn.Tanh(),
                nn.Linear(config.hidden_size, width),
            )
            if not fm.is_encoder_decoder:  # start exactly at the real-word states
                last = cast(nn.Linear, self.mlp[-1])  # the Linear that ends the Sequential above
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            self.direct: nn.Parameter | None = None
        else:
            self.mlp = None
            noise = torch.randn(length, width) * 0.02 if fm.is_encoder_decoder else torch.zeros(length, width)
            self.direct = nn.Parameter(noise)  # (P, layers*slots*kv*hd), a correction to `base`

    @property
    def length(self) -> int:
        return int(self.inputs.shape[0])

    def forward(self) -> torch.Tensor:
        # `direct` is the trained correction exactly when there is no MLP.
        delta = self.mlp(self.inputs) if self.mlp is not None else cast(nn.Parameter, self.direct)
        flat: torch.Tensor = self.base + delta  # (P, layers*slots*kv*hd)
        prefix = flat.view(self.length, self.layers, self.slots, self.kv_heads, self.head_dim)
        return prefix.permute(1, 2, 3, 0, 4)  # (layers, slots, kv_heads, P, head_dim)


def _build(fm: FrozenModel, initial: torch.Tensor, settings: MethodSettings) -> nn.Module:
    return PrefixEncoder(fm, initial, PrefixConfig(reparameterize=settings.prefix_reparameterize))


METHOD = TrainingMethod(Method.PREFIX, build=_build)
