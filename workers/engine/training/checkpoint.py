"""A training bank's resumable state as one safetensors blob: tensors as tensors, the rest as JSON metadata.

A worker that dies mid-job resumes from the last of these instead of step 0. Like artifacts, never
pickle: the blob may come back from shared storage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from common.errors import EngineError

FORMAT_VERSION = 1


@dataclass
class BankState:
    """Everything `train_bank` needs to go on from `step` as if it had never stopped."""

    step: int
    elapsed_s: float
    modules: list[dict[str, torch.Tensor]]  # each member module's state_dict
    optimizer: dict[str, Any]  # the optimizer's state_dict (one optimizer over all members)
    runs: list[dict[str, Any]]  # per member: data position, best checkpoint, stopping state, history

    def to_bytes(self) -> bytes:
        tensors: dict[str, torch.Tensor] = {}
        for k, module_state in enumerate(self.modules):
            for name, tensor in module_state.items():
                tensors[f"module/{k}/{name}"] = tensor
        optimizer_state: dict[str, dict[str, Any]] = {}
        for index, entries in self.optimizer["state"].items():
            plain = optimizer_state.setdefault(str(index), {})
            for name, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer/{index}/{name}"] = value
                else:
                    plain[name] = value
        runs = []
        for k, run in enumerate(self.runs):
            tensors[f"best_prompt/{k}"] = run["best_prompt"]
            runs.append({key: value for key, value in run.items() if key != "best_prompt"})
        meta = {
            "format_version": str(FORMAT_VERSION),
            "step": str(self.step),
            "elapsed_s": repr(self.elapsed_s),
            "members": str(len(self.modules)),
            "param_groups": json.dumps(self.optimizer["param_groups"]),
            "optimizer_plain": json.dumps(optimizer_state),
            "runs": json.dumps(runs),
        }
        return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> BankState:
        try:
            tensors = load(data)
            header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
            meta = header.get("__metadata__") or {}
            if int(meta.get("format_version", 0)) != FORMAT_VERSION:
                raise ValueError(f"checkpoint format {meta.get('format_version')!r}")
            members = int(meta["members"])
            plain = json.loads(meta["optimizer_plain"])
            runs = json.loads(meta["runs"])
        except (SafetensorError, ValueError, KeyError) as exc:
            raise EngineError(f"The training checkpoint cannot be read: {exc}.") from exc
        modules: list[dict[str, torch.Tensor]] = [{} for _ in range(members)]
        optimizer_state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in plain.items()}
        for key, tensor in tensors.items():
            kind, _, rest = key.partition("/")
            if kind == "module":
                k, _, name = rest.partition("/")
                modules[int(k)][name] = tensor
            elif kind == "optimizer":
                index, _, name = rest.partition("/")
                optimizer_state.setdefault(int(index), {})[name] = tensor
            elif kind == "best_prompt":
                runs[int(rest)]["best_prompt"] = tensor
        return cls(
            step=int(meta["step"]),
            elapsed_s=float(meta["elapsed_s"]),
            modules=modules,
            optimizer={"state": optimizer_state, "param_groups": json.loads(meta["param_groups"])},
            runs=runs,
        )
