"""The precision policy: where the frozen model runs under bf16 autocast, for training and scoring alike.

`auto` (the default of the CLI, platform jobs and the serving pool) means bf16 where the device computes
it natively and fp32 elsewhere; a trainable prompt and its optimiser state stay fp32 either way. The
engine's own functions default to `fp32`, so that a caller who names nothing gets exact figures.
"""

from __future__ import annotations

import torch

from common.defaults import PRECISIONS
from common.errors import EngineError


def fast_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls natively: a CUDA GPU with bf16, or a CPU whose oneDNN has bf16
    kernels (AVX512-BF16 or AMX). Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        # torch has no public query for this; oneDNN's own answer is the one that decides the speed.
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(probe and probe())
    return False


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise EngineError(f"Unknown precision {precision!r}; use auto, fp32 or bf16.")
    return precision


def resolved_precision(precision: str, device: torch.device) -> str:
    """`auto` as the device resolves it: bf16 where it is native (1.2-1.5x the fp32 tokens/s on the
    2-core AVX512-BF16 CPU, benchmarks/README.md), fp32 elsewhere."""
    if check_precision(precision) != "auto":
        return precision
    return "bf16" if fast_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast when `precision` resolves to bf16 on `device`, a no-op context otherwise."""
    return torch.autocast(
        device_type=device.type,
        dtype=torch.bfloat16,
        enabled=resolved_precision(precision, device) == "bf16",
    )
