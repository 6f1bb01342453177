"""Prediction with loaded prompts: many prompts (and tasks) in one batch, results per row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workers.engine.artifact import PromptArtifact
from workers.engine.base_model import FrozenModel
from workers.engine.batching import PromptSet
from workers.engine.encoding import DEFAULT_MAX_INPUT_TOKENS, TaskEncoder
from workers.engine.scoring import class_logprobs, greedy_generate
from workers.engine.task import TaskSpec

DEFAULT_MAX_NEW_TOKENS = 32


@dataclass
class LoadedPrompt:
    """A prompt ready to run on one base model: its vectors and its task's encoder."""

    vectors: torch.Tensor  # (P, E)
    encoder: TaskEncoder

    @classmethod
    def build(
        cls,
        fm: FrozenModel,
        vectors: torch.Tensor,
        spec: TaskSpec,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
    ) -> LoadedPrompt:
        return cls(vectors=vectors.detach().to(fm.device), encoder=TaskEncoder(fm, spec, max_input_tokens))

    @classmethod
    def from_artifact(cls, fm: FrozenModel, artifact: PromptArtifact) -> LoadedPrompt:
        artifact.check_fits(fm)
        max_tokens = int(artifact.train_config.get("max_input_tokens", DEFAULT_MAX_INPUT_TOKENS))
        return cls.build(fm, artifact.prompt, artifact.spec, max_tokens)

    @property
    def spec(self) -> TaskSpec:
        return self.encoder.spec


def _prompt_table(prompts: Sequence[LoadedPrompt]) -> tuple[PromptSet, torch.Tensor]:
    """Distinct prompts stacked once; each row points at its prompt's index."""
    unique: dict[int, int] = {}
    vectors: list[torch.Tensor] = []
    rows = []
    for prompt in prompts:
        if id(prompt) not in unique:
            unique[id(prompt)] = len(vectors)
            vectors.append(prompt.vectors)
        rows.append(unique[id(prompt)])
    return PromptSet.from_list(vectors), torch.tensor(rows, dtype=torch.long)


@torch.no_grad()
def predict_mixed(
    fm: FrozenModel,
    items: Sequence[tuple[LoadedPrompt, dict[str, str]]],
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[dict[str, Any]]:
    """Outputs for rows that may each use a different prompt and task.

    All classification rows share one forward pass; generation rows share one decoding loop.
    """
    outputs: list[dict[str, Any]] = [{} for _ in items]
    classify = [i for i, (p, _) in enumerate(items) if p.spec.task_type == "classification"]
    generate = [i for i, (p, _) in enumerate(items) if p.spec.task_type == "generation"]
    if classify:
        prompts, row_prompt = _prompt_table([items[i][0] for i in classify])
        inputs = [items[i][0].encoder.input_ids(items[i][1]) for i in classify]
        classes = [items[i][0].encoder.class_targets for i in classify]
        for i, scores in zip(classify, class_logprobs(fm, prompts, row_prompt, inputs, classes), strict=True):
            labels = items[i][0].spec.labels
            probs = torch.softmax(scores.float(), dim=0).tolist()
            best = int(torch.argmax(scores))
            outputs[i] = {
                "label": labels[best],
                "scores": dict(zip(labels, probs, strict=True)),
                "logprobs": dict(zip(labels, scores.tolist(), strict=True)),
            }
    if generate:
        prompts, row_prompt = _prompt_table([items[i][0] for i in generate])
        inputs = [items[i][0].encoder.input_ids(items[i][1]) for i in generate]
        for i, ids in zip(
            generate, greedy_generate(fm, prompts, row_prompt, inputs, max_new_tokens), strict=True
        ):
            outputs[i] = {"text": fm.decode(ids).strip()}
    return outputs


def predict(
    fm: FrozenModel,
    prompt: LoadedPrompt,
    rows: Sequence[dict[str, str]],
    batch_size: int = 32,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[dict[str, Any]]:
    """Outputs for many rows of one prompt, in length-sorted batches (less padding), in input order."""
    order = sorted(range(len(rows)), key=lambda i: len(prompt.encoder.input_ids(rows[i])))
    results: list[dict[str, Any]] = [{} for _ in rows]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, out in zip(
            chunk, predict_mixed(fm, [(prompt, rows[i]) for i in chunk], max_new_tokens), strict=True
        ):
            results[i] = out
    return results
