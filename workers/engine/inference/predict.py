"""Prediction with loaded prompts: many prompts (and tasks) in one batch, results per row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from common.contracts import TaskType
from common.task import TaskSpec
from workers.engine.artifacts.artifact import PromptArtifact
from workers.engine.base_model import FrozenModel
from workers.engine.inference.batching import PromptSet
from workers.engine.inference.encoding import DEFAULT_MAX_INPUT_TOKENS, TaskEncoder
from workers.engine.inference.scoring import class_logprobs, greedy_generate, token_limits
from workers.engine.precision import autocast

_T = TypeVar("_T")

DEFAULT_MAX_NEW_TOKENS = 32


@dataclass
class LoadedPrompt:
    """A prompt ready to run on one base model: its member vectors (K=1 unless an ensemble) and encoder."""

    members: list[torch.Tensor]  # K × (P, E), or K prefixes / cached prompt states (5-D)
    encoder: TaskEncoder
    # Per member: positions its states occupy before the input (P for a prompt served from its cached
    # key/value states, see workers/serving/kv.py); None means 0 for every member.
    offsets: list[int] | None = None

    @classmethod
    def build(
        cls,
        fm: FrozenModel,
        vectors: torch.Tensor | list[torch.Tensor],
        spec: TaskSpec,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
    ) -> LoadedPrompt:
        members = vectors if isinstance(vectors, list) else [vectors]
        return cls(
            members=[m.detach().to(fm.device) for m in members],
            encoder=TaskEncoder(fm, spec, max_input_tokens),
        )

    @classmethod
    def from_artifact(cls, fm: FrozenModel, artifact: PromptArtifact) -> LoadedPrompt:
        artifact.check_fits(fm)
        max_tokens = int(artifact.train_config.get("max_input_tokens", DEFAULT_MAX_INPUT_TOKENS))
        return cls.build(fm, artifact.members, artifact.spec, max_tokens)

    @property
    def spec(self) -> TaskSpec:
        return self.encoder.spec

    def member(self, k: int) -> LoadedPrompt:
        """Member k alone, sharing this prompt's encoder."""
        offsets = None if self.offsets is None else [self.offsets[k]]
        return LoadedPrompt(members=[self.members[k]], encoder=self.encoder, offsets=offsets)


def _expand(
    fm: FrozenModel, items: Sequence[tuple[LoadedPrompt, dict[str, str]]]
) -> tuple[PromptSet, torch.Tensor, list[int]]:
    """Distinct member vectors stacked once; each item becomes one row per member (an ensemble: K rows)."""
    index: dict[int, int] = {}
    vectors: list[torch.Tensor] = []
    offsets: list[int] = []
    rows: list[int] = []
    counts: list[int] = []
    for prompt, _ in items:
        for k, member in enumerate(prompt.members):
            if id(member) not in index:
                index[id(member)] = len(vectors)
                vectors.append(member)
                offsets.append(prompt.offsets[k] if prompt.offsets else 0)
            rows.append(index[id(member)])
        counts.append(len(prompt.members))
    prompts = PromptSet.from_list(vectors, fm.embed_dim, offsets)
    return prompts, torch.tensor(rows, dtype=torch.long), counts


def vote(labels: list[str], member_logprobs: torch.Tensor) -> dict[str, Any]:
    """Majority vote of K members over (K, C) log-probabilities; ties go to the best mean log-probability."""
    picks = member_logprobs.argmax(dim=1)  # (K,)
    votes = torch.bincount(picks, minlength=len(labels))  # (C,)
    tied = votes == votes.max()
    mean_logprob = member_logprobs.mean(0)  # (C,)
    winner = int(torch.where(tied, mean_logprob, torch.full_like(mean_logprob, -torch.inf)).argmax())
    probs = torch.softmax(member_logprobs.float(), dim=1).mean(0)
    out: dict[str, Any] = {
        "label": labels[winner],
        "scores": dict(zip(labels, probs.tolist(), strict=True)),
        "logprobs": dict(zip(labels, mean_logprob.tolist(), strict=True)),
    }
    if member_logprobs.shape[0] > 1:
        out["votes"] = dict(zip(labels, votes.tolist(), strict=True))
        out["members"] = [labels[int(i)] for i in picks]
    return out


@torch.no_grad()
def predict_mixed(
    fm: FrozenModel,
    items: Sequence[tuple[LoadedPrompt, dict[str, str]]],
    max_new_tokens: int | Sequence[int] = DEFAULT_MAX_NEW_TOKENS,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Outputs for rows that may each use a different prompt, task, or ensemble.

    All classification rows (ensemble members included) share one forward pass; generation rows
    share one decoding loop, each stopping at its own token limit (one for all items, or one per item).
    A generated output says why it ended: `finish_reason` is "stop" (end of sequence) or "length".
    `precision` is the policy of workers/engine/precision.py (`auto`: bf16 where native).
    """
    with autocast(fm.device, precision):
        return _predict_mixed(fm, items, max_new_tokens)


def _predict_mixed(
    fm: FrozenModel,
    items: Sequence[tuple[LoadedPrompt, dict[str, str]]],
    max_new_tokens: int | Sequence[int],
) -> list[dict[str, Any]]:
    limits = token_limits(max_new_tokens, len(items))
    outputs: list[dict[str, Any]] = [{} for _ in items]
    for task_type in (TaskType.CLASSIFICATION, TaskType.GENERATION):
        chosen = [i for i, (p, _) in enumerate(items) if p.spec.task_type == task_type]
        if not chosen:
            continue
        group = [items[i] for i in chosen]
        prompts, row_prompt, counts = _expand(fm, group)
        inputs = [p.encoder.input_ids(fields) for p, fields in group for _ in p.members]
        if task_type == TaskType.CLASSIFICATION:
            classes = [p.encoder.class_targets for p, _ in group for _ in p.members]
            scores = class_logprobs(fm, prompts, row_prompt, inputs, classes)
            per_item = [torch.stack(part) for part in _split(scores, counts)]  # (K, C) each
            for i, (prompt, _), member_scores in zip(chosen, group, per_item, strict=True):
                outputs[i] = vote(prompt.spec.labels, member_scores)
        else:
            row_limits = [limits[i] for i, (p, _) in zip(chosen, group, strict=True) for _ in p.members]
            generated = greedy_generate(fm, prompts, row_prompt, inputs, row_limits)
            # Ids come cut at the end of sequence: a row still as long as its limit was cut there ("length").
            # With the number of tokens generated (up to, not counting, the end of sequence): usage figures.
            ended = [
                (fm.decode(ids).strip(), len(ids) >= limit, len(ids))
                for ids, limit in zip(generated, row_limits, strict=True)
            ]
            for i, member_outs in zip(chosen, _split(ended, counts), strict=True):
                # Ensembles of generators: the most frequent text, ties to the earliest member.
                texts = [text for text, _, _ in member_outs]
                text = max(texts, key=texts.count)
                _, cut, tokens = member_outs[texts.index(text)]
                outputs[i] = {
                    "text": text,
                    "finish_reason": "length" if cut else "stop",
                    "completion_tokens": tokens,
                }
    return outputs


def _split(values: list[_T], counts: list[int]) -> list[list[_T]]:
    parts, start = [], 0
    for count in counts:
        parts.append(values[start : start + count])
        start += count
    return parts


def predict(
    fm: FrozenModel,
    prompt: LoadedPrompt,
    rows: Sequence[dict[str, str]],
    batch_size: int = 32,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Outputs for many rows of one prompt, in length-sorted batches (less padding), in input order.

    `batch_size` counts model rows: an ensemble of K members takes K rows per input.
    """
    order = sorted(range(len(rows)), key=lambda i: sum(len(v) for v in rows[i].values()))
    results: list[dict[str, Any]] = [{} for _ in rows]
    per_batch = max(1, batch_size // len(prompt.members))
    for start in range(0, len(order), per_batch):
        chunk = order[start : start + per_batch]
        for i, out in zip(
            chunk,
            predict_mixed(fm, [(prompt, rows[i]) for i in chunk], max_new_tokens, precision),
            strict=True,
        ):
            results[i] = out
    return results
