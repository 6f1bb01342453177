"""Prompt tuning (Lester et al., 2021): P trainable vectors prepended to the embedded input.

Only the P×E numbers train; the model stays frozen. The initialisations are the paper's three
(random, sampled vocabulary, class labels) plus a text and a saved prompt to continue from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from common.contracts import Init, Method
from common.errors import EngineError
from workers.engine.base_model import FrozenModel
from workers.engine.methods.registry import MethodSettings, TrainingMethod

MIN_PROMPT_LENGTH, MAX_PROMPT_LENGTH = 1, 150
# The platform's inits, and a saved prompt to continue from (the CLI's --init-file).
INIT_FILE = "file"
INIT_STRATEGIES = (*Init, INIT_FILE)
RANDOM_INIT_RANGE = 0.5


def check_prompt_length(length: int) -> None:
    if not MIN_PROMPT_LENGTH <= length <= MAX_PROMPT_LENGTH:
        raise EngineError(
            f"The prompt length must be between {MIN_PROMPT_LENGTH} and {MAX_PROMPT_LENGTH}, got {length}."
        )


# Markup a tokenizer adds for chat, code or tool formats: <|im_start|>, <file_sep>, <jupyter_code>.
_CONTROL_TOKEN = re.compile(r"^<\|?[^<>\s]+\|?>$")


def control_token_ids(tokenizer: Any) -> set[int]:
    """The tokenizer's special ids plus the control tokens it added. SmolLM2 lists only ids 0-2 as
    special, yet ids 3-16 (<repo_name>, <file_sep>, <jupyter_code>…) are format markup too: starting
    a prompt vector there starts it at an embedding trained for a code-file boundary, not a word."""
    ids = set(tokenizer.all_special_ids)
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(i for i, token in added.items() if token.special or _CONTROL_TOKEN.match(token.content))
    return ids


def pool_ids(tokenizer: Any, vocab: int, count: int | None = None) -> list[int]:
    """The ids of a vocabulary of `vocab` rows that are not control tokens; the `count` lowest of them
    when given (BPE and SentencePiece vocabularies are ordered by frequency)."""
    control = control_token_ids(tokenizer)
    return [i for i in range(vocab) if i not in control][:count]


def vocab_pool(fm: FrozenModel) -> torch.Tensor:
    """The ids sampled-vocabulary init draws from: every id but the control tokens, as PEFT does.

    It used to be the 5,000 lowest (most frequent) ids. On SST-2 at the paper's Adafactor 0.3 that pool
    scored 79.2 ± 2.0% over 3 seeds, the whole vocabulary 84.8 ± 0.4% (benchmarks/README.md, "The
    vocab-init gap"): frequent BPE pieces have smaller embedding norms than the vocabulary's average.
    """
    ids = pool_ids(fm.tokenizer, fm.input_embeddings().num_embeddings)
    return torch.tensor(ids, dtype=torch.long)


def _vocab_rows(fm: FrozenModel, count: int, generator: torch.Generator) -> torch.Tensor:
    pool = vocab_pool(fm)
    picks = pool[torch.randperm(len(pool), generator=generator)[:count]]
    if len(picks) < count:  # a tiny vocabulary: sample with replacement
        picks = pool[torch.randint(len(pool), (count,), generator=generator)]
    return fm.embed(picks.to(fm.device)).detach().float()  # (count, E)


def init_prompt(
    fm: FrozenModel,
    length: int,
    strategy: str,
    *,
    label_words: Sequence[str] = (),
    text: str | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """A (P, E) float32 tensor to start training from."""
    check_prompt_length(length)
    if strategy not in INIT_STRATEGIES or strategy == INIT_FILE:
        raise EngineError(f"Unknown init {strategy!r}; use one of {', '.join(INIT_STRATEGIES)}.")
    generator = torch.Generator().manual_seed(seed)
    dim = fm.embed_dim
    if strategy == Init.RANDOM:
        return (torch.rand(length, dim, generator=generator) * 2 - 1) * RANDOM_INIT_RANGE
    rows: list[torch.Tensor] = []
    if strategy == Init.LABELS:
        if not label_words:
            raise EngineError("The labels init needs a classification task with label words.")
        special = control_token_ids(fm.tokenizer)
        for word in label_words[:length]:
            ids = fm.encode_target(word)
            ids = [i for i in ids if i not in special] or ids
            # A label of several sub-words starts from the mean of their embeddings.
            rows.append(fm.embed(torch.tensor(ids, device=fm.device)).detach().float().mean(0))
    elif strategy == Init.TEXT:
        if not text:
            raise EngineError("The text init needs --init-text.")
        ids = fm.encode(text, special_tokens=False)[:length]
        rows.extend(fm.embed(torch.tensor(ids, device=fm.device)).detach().float())
    prompt = torch.empty(length, dim)
    if rows:
        prompt[: len(rows)] = torch.stack(rows).cpu()
    if len(rows) < length:
        prompt[len(rows) :] = _vocab_rows(fm, length - len(rows), generator).cpu()
    return prompt


class SoftPrompt(nn.Module):
    """The trainable prompt: one (P, E) parameter."""

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        check_prompt_length(initial.shape[0])
        self.vectors = nn.Parameter(initial.detach().clone().float())  # (P, E)

    @property
    def length(self) -> int:
        return int(self.vectors.shape[0])

    def forward(self) -> torch.Tensor:
        return self.vectors  # (P, E)


def _build(fm: FrozenModel, initial: torch.Tensor, settings: MethodSettings) -> nn.Module:
    return SoftPrompt(initial)


METHOD = TrainingMethod(Method.PROMPT, build=_build)
