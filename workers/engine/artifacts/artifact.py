"""The prompt artifact: one .safetensors file (never pickle) with the tensors and JSON metadata."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save, save_file

from common.contracts import Method
from common.errors import ArtifactError
from common.task import TaskSpec
from workers.engine.base_model import FrozenModel

FORMAT_VERSION = 1
_JSON_KEYS = ("task", "train_config", "metrics")


@dataclass
class PromptArtifact:
    tensors: dict[str, torch.Tensor]
    method: str
    base_model: str
    fingerprint: str
    spec: TaskSpec
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def members(self) -> list[torch.Tensor]:
        """One prompt per member (K=1 unless an ensemble): (P, E) vectors or a
        (layers, slots, kv_heads, P, head_dim) prefix."""
        if "members" in self.tensors:
            return list(self.tensors["members"].unbind(0))  # from (K, ...)
        return [self.tensors["prefix"] if "prefix" in self.tensors else self.tensors["prompt"]]

    @property
    def prompt(self) -> torch.Tensor:
        return self.members[0]

    @property
    def is_prefix(self) -> bool:
        return self.prompt.dim() == 5

    @property
    def layout_method(self) -> str:
        """The method whose layout the tensors have: prefix for a prefix, whatever the metadata names
        (the form a prompt can be exported or inspected in follows its tensors)."""
        return Method.PREFIX if self.is_prefix else self.method

    @property
    def ensemble_size(self) -> int:
        return len(self.members)

    @property
    def prompt_length(self) -> int:
        return int(self.prompt.shape[-2] if self.is_prefix else self.prompt.shape[0])

    @property
    def embed_dim(self) -> int:
        """The model width the prompt was made for (for a prefix: kv_heads × head_dim)."""
        if self.is_prefix:
            return int(self.prompt.shape[2] * self.prompt.shape[4])
        return int(self.prompt.shape[1])

    def metadata(self) -> dict[str, str]:
        return {
            "format_version": str(FORMAT_VERSION),
            "method": self.method,
            "base_model": self.base_model,
            "fingerprint": self.fingerprint,
            "prompt_length": str(self.prompt_length),
            "embed_dim": str(self.embed_dim),
            "ensemble_size": str(self.ensemble_size),
            "task_type": self.spec.task_type,
            "task": json.dumps(self.spec.to_dict()),
            "train_config": json.dumps(self.train_config),
            "metrics": json.dumps(self.metrics),
        }

    def check_fits(self, fm: FrozenModel) -> None:
        """Refuse a prompt trained for another base model: its vectors mean nothing there."""
        if self.fingerprint != fm.fingerprint:
            raise ArtifactError(
                f"This prompt was trained for the base model {self.base_model!r} (fingerprint "
                f"{self.fingerprint[:12]}), not for {fm.model_id!r} (fingerprint {fm.fingerprint[:12]}); "
                f"pass --base-model {self.base_model}."
            )
        if self.is_prefix:
            layers, kv_heads, head_dim = fm.kv_geometry()
            shape = (layers, fm.prefix_slots, kv_heads, self.prompt_length, head_dim)
            if tuple(self.prompt.shape) != shape:
                raise ArtifactError(
                    f"The prefix has shape {tuple(self.prompt.shape)}, the model needs {shape}."
                )
        elif self.embed_dim != fm.embed_dim:
            raise ArtifactError(f"The prompt has width {self.embed_dim}, the model {fm.embed_dim}.")


def ensemble_tensors(members: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors for K prompts of equal shape: one prompt (or prefix), or K stacked members."""
    if len(members) == 1:
        return {"prefix" if members[0].dim() == 5 else "prompt": members[0]}
    return {"members": torch.stack([m.detach().cpu() for m in members])}


def _storable(artifact: PromptArtifact) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().contiguous().float() for name, t in artifact.tensors.items()}


def save_artifact(artifact: PromptArtifact, path: str | Path) -> Path:
    """Write atomically: a crash leaves the old file or none, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = _storable(artifact)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=artifact.metadata())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def artifact_bytes(artifact: PromptArtifact) -> bytes:
    """The artifact as the bytes of its `.safetensors` file (for object storage)."""
    return save(_storable(artifact), metadata=artifact.metadata())


def load_artifact(path: str | Path) -> PromptArtifact:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"The prompt file {path} does not exist.")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a prompt artifact (safetensors): {exc}.") from exc
    return _decode(tensors, meta, str(path))


def artifact_from_bytes(data: bytes, name: str = "the prompt artifact") -> PromptArtifact:
    """Parse the bytes of a `.safetensors` artifact; `name` says where they came from in errors."""
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{name} is not a prompt artifact (safetensors): {exc}.") from exc
    return _decode(tensors, meta, name)


def _decode(tensors: dict[str, torch.Tensor], meta: dict[str, str], name: str) -> PromptArtifact:
    if "format_version" not in meta or not {"prompt", "prefix", "members"} & set(tensors):
        raise ArtifactError(f"{name} is a safetensors file but not a Softserve prompt artifact.")
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise ArtifactError(
            f"{name} has artifact format {meta['format_version']}; this engine reads up to {FORMAT_VERSION}."
        )
    decoded = {key: json.loads(meta.get(key, "{}")) for key in _JSON_KEYS}
    return PromptArtifact(
        tensors=tensors,
        method=meta["method"],
        base_model=meta["base_model"],
        fingerprint=meta["fingerprint"],
        spec=TaskSpec.from_dict(decoded["task"]),
        train_config=decoded["train_config"],
        metrics=decoded["metrics"],
    )
