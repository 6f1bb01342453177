"""Prompt design baselines (no training): an instruction and k examples as a text prompt.

The text's token embeddings are used exactly where a soft prompt would go, so baselines and tuned
prompts go through the same scorer and are compared like for like.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from common.contracts import TaskType
from common.errors import EngineError
from common.task import Example, TaskSpec
from workers.engine.base_model import FrozenModel
from workers.engine.inference.predict import LoadedPrompt


def instruction(spec: TaskSpec) -> str:
    """A question naming the label words; small models answer it far better than a "classify" order."""
    if spec.task_type == TaskType.CLASSIFICATION:
        words = [spec.verbalizer[label] for label in spec.labels]
        return f"Is each text {', '.join(words[:-1])} or {words[-1]}?\n\n"
    return "Answer each input.\n\n"


def pick_shots(train: Sequence[Example], shots: int, seed: int) -> list[Example]:
    if shots < 0:
        raise EngineError(f"--shots must not be negative, got {shots}.")
    if shots > len(train):
        raise EngineError(f"--shots {shots} asks for more examples than the {len(train)} training rows.")
    return random.Random(seed).sample(list(train), shots)


def design_text(spec: TaskSpec, shots: Sequence[Example], preamble: str | None = None) -> str:
    text = instruction(spec) if preamble is None else preamble
    for ex in shots:
        answer = spec.verbalizer.get(ex.target, ex.target)
        text += f"{spec.render(ex.fields)} {answer}\n\n"
    return text


@torch.no_grad()
def design_prompt(
    fm: FrozenModel,
    spec: TaskSpec,
    shots: Sequence[Example],
    preamble: str | None = None,
    max_input_tokens: int = 256,
) -> LoadedPrompt:
    """The text prompt `preamble` (default: a question naming the labels) followed by `shots` examples."""
    ids = fm.encode(design_text(spec, shots, preamble), special_tokens=False)
    if not ids:
        return LoadedPrompt.build(fm, torch.zeros(0, fm.embed_dim), spec, max_input_tokens)
    vectors = fm.embed(torch.tensor(ids, device=fm.device)).float()  # (P_text, E)
    return LoadedPrompt.build(fm, vectors, spec, max_input_tokens)
