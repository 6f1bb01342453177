"""What the engine knows of a method: how to build its trainable module and which of its settings to
check. Each method's file declares its own `METHOD`; `methods.METHODS` lists them, keyed by
`common.contracts.Method`, so that no part of the engine picks a method with an if-chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from common.contracts import Method
from workers.engine.base_model import FrozenModel


class MethodSettings(Protocol):
    """The method-specific settings a training configuration carries (`TrainConfig` has them all)."""

    ptuning_encoder: str
    prefix_reparameterize: bool


def _no_settings(settings: MethodSettings) -> None:
    """A method with no settings of its own has nothing to refuse."""


@dataclass(frozen=True)
class TrainingMethod:
    """One method: `build(fm, initial, settings)` returns its trainable module (calling the module yields
    the prompt it trains) from a (P, E) initial prompt; `check(settings)` raises EngineError for a setting
    the method cannot take, before any data is read."""

    method: Method
    build: Callable[[FrozenModel, torch.Tensor, MethodSettings], nn.Module]
    check: Callable[[MethodSettings], None] = _no_settings
