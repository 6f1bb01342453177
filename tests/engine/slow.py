"""A real model made slow on purpose where it evaluates: every forward pass without gradients (scoring
dev rows, predicting) sleeps in proportion to its rows, as if the device were that much slower there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def slow_evaluation(fm, seconds_per_row: float) -> Iterator[None]:
    """While inside: each evaluation forward of `fm` (its output head, which every scoring path runs)
    takes `seconds_per_row` more per row. Training (gradients on) runs at its own speed."""

    def sleep(module, args) -> None:
        if not torch.is_grad_enabled():
            time.sleep(seconds_per_row * args[0].shape[0])

    handle = fm.lm_head().register_forward_pre_hook(sleep)
    try:
        yield
    finally:
        handle.remove()
