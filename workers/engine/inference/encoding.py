"""Turning a task's rows into token ids for one base model: inputs, targets and each class's tokens."""

from __future__ import annotations

from common.contracts import TaskType
from common.errors import DataError
from common.task import Example, TaskSpec
from workers.engine.base_model import FrozenModel

DEFAULT_MAX_INPUT_TOKENS = 256


class TaskEncoder:
    """Tokenises rows of one task for one model; class token lists are computed once."""

    def __init__(self, fm: FrozenModel, spec: TaskSpec, max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS):
        self.fm = fm
        self.spec = spec
        self.max_input_tokens = max_input_tokens
        self.class_targets = [fm.encode_target(spec.verbalizer[label]) for label in spec.labels]
        self._label_index = {label: i for i, label in enumerate(spec.labels)}

    def input_ids(self, fields: dict[str, str]) -> list[int]:
        ids = self.fm.encode(self.spec.render(fields))
        if not ids:
            raise DataError("An input renders to no tokens; every row needs some text.")
        # Keep the tail: the template's answer cue (and T5's end token) sit at the end.
        return ids[-self.max_input_tokens :]

    def label_index(self, label: str) -> int:
        try:
            return self._label_index[label]
        except KeyError:
            raise DataError(f"The label {label!r} is not in the label set {self.spec.labels}.") from None

    def target_ids(self, target: str) -> list[int]:
        if self.spec.task_type == TaskType.CLASSIFICATION:
            return self.class_targets[self.label_index(target)]
        ids = self.fm.encode_target(target)
        if not self.fm.is_encoder_decoder and self.fm.eos_id is not None:
            ids = [*ids, self.fm.eos_id]  # learn to stop
        return ids

    def encode(self, examples: list[Example]) -> tuple[list[list[int]], list[list[int]]]:
        return [self.input_ids(ex.fields) for ex in examples], [self.target_ids(ex.target) for ex in examples]
