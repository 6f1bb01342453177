"""Interpreting a learned prompt: nearest vocabulary tokens of each vector by cosine, and norms."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from common.formats import nearest_tokens_unavailable
from workers.engine.artifacts.artifact import PromptArtifact
from workers.engine.base_model import FrozenModel


@torch.no_grad()
def nearest_tokens(fm: FrozenModel, prompt: torch.Tensor, top_k: int = 5) -> list[dict[str, Any]]:
    """For each prompt vector: its norm and the `top_k` vocabulary tokens closest by cosine."""
    vocab = F.normalize(fm.input_embeddings().weight.float(), dim=-1)  # (V, E)
    vectors = prompt.to(vocab.device).float()  # (P, E)
    sims = F.normalize(vectors, dim=-1) @ vocab.T  # (P, V)
    scores, ids = sims.topk(top_k, dim=-1)
    rows = []
    for position in range(vectors.shape[0]):
        tokens = [
            {"token": fm.tokenizer.convert_ids_to_tokens(int(i)), "id": int(i), "cosine": round(float(s), 4)}
            for s, i in zip(scores[position], ids[position], strict=True)
        ]
        rows.append(
            {"position": position, "norm": round(float(vectors[position].norm()), 4), "nearest": tokens}
        )
    return rows


@torch.no_grad()
def norm_stats(fm: FrozenModel, prompt: torch.Tensor) -> dict[str, float]:
    norms = prompt.float().norm(dim=-1)
    vocab_norms = fm.input_embeddings().weight.float().norm(dim=-1)
    return {
        "min": round(float(norms.min()), 4),
        "mean": round(float(norms.mean()), 4),
        "max": round(float(norms.max()), 4),
        "vocab_mean": round(float(vocab_norms.mean()), 4),
    }


def version_inspection(fm: FrozenModel, artifact: PromptArtifact, top_k: int = 5) -> dict[str, Any]:
    """What a version keeps for its nearest-token view: per position of its (first) member the vector's
    norm and its `top_k` tokens by cosine, with the norms' summary; or, for a prefix, why not.

    Bounded: prompt_length (at most 150) rows of `top_k` tokens. An ensemble shows its first member:
    K members would multiply the size for a view a person reads one prompt at a time."""
    reason = nearest_tokens_unavailable(artifact.layout_method)
    if reason:
        return {"applies": False, "reason": reason}
    prompt = artifact.prompt
    return {
        "applies": True,
        "member": 1,
        "members": artifact.ensemble_size,
        "top_k": top_k,
        "norms": norm_stats(fm, prompt),
        "positions": nearest_tokens(fm, prompt, top_k),
    }
