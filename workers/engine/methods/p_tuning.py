"""P-tuning (Liu et al., 2021): virtual-token embeddings produced by a small prompt encoder.

The encoder (an MLP, or a bidirectional LSTM followed by an MLP) re-parameterises P input vectors;
it is used only while training. The artifact stores the encoder's output, a (P, E) prompt, so a
P-tuning prompt is served exactly like a prompt-tuning one. The encoder is residual with a
zero-initialised last layer, so training starts from the chosen initialisation (e.g. label words).
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

ENCODER_KINDS = ("mlp", "lstm")


@dataclass
class PTuningConfig:
    encoder: str = "mlp"
    hidden_size: int = 256
    lstm_layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_KINDS:
            raise EngineError(f"Unknown P-tuning encoder {self.encoder!r}; use mlp or lstm.")
        if self.hidden_size < 1 or self.lstm_layers < 1:
            raise EngineError("The P-tuning encoder needs a positive hidden size and layer count.")
        if not 0 <= self.dropout < 1:
            raise EngineError(f"The P-tuning dropout must be in [0, 1), got {self.dropout}.")


class PromptEncoder(nn.Module):
    """Maps P trainable input vectors (P, E) to the virtual tokens (P, E) placed before the input."""

    def __init__(self, initial: torch.Tensor, config: PTuningConfig | None = None):
        super().__init__()
        config = config or PTuningConfig()
        check_prompt_length(initial.shape[0])
        dim = initial.shape[1]
        self.config = config
        self.inputs = nn.Parameter(initial.detach().clone().float())  # (P, E)
        self.lstm = None
        head_in = dim
        if config.encoder == "lstm":
            self.lstm = nn.LSTM(
                dim,
                config.hidden_size // 2,
                num_layers=config.lstm_layers,
                bidirectional=True,
                batch_first=True,
                dropout=config.dropout if config.lstm_layers > 1 else 0.0,
            )
            head_in = config.hidden_size
        self.head = nn.Sequential(
            nn.Linear(head_in, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, dim),
        )
        last = cast(nn.Linear, self.head[-1])  # the Linear that ends the Sequential above
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    @property
    def length(self) -> int:
        return int(self.inputs.shape[0])

    def forward(self) -> torch.Tensor:
        hidden = self.inputs  # (P, E)
        if self.lstm is not None:
            hidden = self.lstm(hidden.unsqueeze(0))[0].squeeze(0)  # (P, H)
        prompt: torch.Tensor = self.inputs + self.head(hidden)  # (P, E)
        return prompt


def _build(fm: FrozenModel, initial: torch.Tensor, settings: MethodSettings) -> nn.Module:
    return PromptEncoder(initial, PTuningConfig(encoder=settings.ptuning_encoder))


def _check(settings: MethodSettings) -> None:
    PTuningConfig(encoder=settings.ptuning_encoder)


METHOD = TrainingMethod(Method.PTUNING, build=_build, check=_check)
