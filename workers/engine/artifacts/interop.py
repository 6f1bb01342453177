"""PEFT interop: export a prompt-tuning or P-tuning artifact to PEFT's adapter format, import one back.

PEFT keeps a prompt as `prompt_embeddings` (P × submodules, E) in `adapter_model.safetensors` with an
`adapter_config.json`. Its format carries no task (labels, template), so an import needs the task.
Prefix-tuning artifacts stay Softserve-only: PEFT stores prefixes un-folded per its cache layout.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from common.contracts import Method
from common.errors import ArtifactError
from common.formats import peft_unavailable
from common.task import TaskSpec
from workers.engine.artifacts.artifact import PromptArtifact
from workers.engine.base_model import FrozenModel

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
# Keyed by Method, looked up by an artifact's method string.
_PEFT_TYPES: dict[str, str] = {Method.PROMPT: "PROMPT_TUNING", Method.PTUNING: "PROMPT_TUNING"}


def export_peft(artifact: PromptArtifact, folder: str | Path, is_encoder_decoder: bool = False) -> Path:
    """Write `folder/adapter_model.safetensors` and `folder/adapter_config.json` for PEFT to load."""
    reason = peft_unavailable(artifact.layout_method, artifact.ensemble_size)
    if reason:
        raise ArtifactError(reason)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {"prompt_embeddings": artifact.prompt.detach().cpu().contiguous().float()}, str(folder / PEFT_WEIGHTS)
    )
    config = {
        "peft_type": _PEFT_TYPES[artifact.method],
        "task_type": "SEQ_2_SEQ_LM" if is_encoder_decoder else "CAUSAL_LM",
        "num_virtual_tokens": artifact.prompt_length,
        "token_dim": artifact.embed_dim,
        # One submodule: the prompt goes before the encoder (or decoder-only) input, as in Softserve.
        "num_transformer_submodules": 1,
        "prompt_tuning_init": "RANDOM",
        "base_model_name_or_path": artifact.base_model,
        "inference_mode": True,
        "revision": None,
    }
    (folder / PEFT_CONFIG).write_text(json.dumps(config, indent=2))
    return folder


def export_peft_zip(artifact: PromptArtifact, is_encoder_decoder: bool = False) -> bytes:
    """The PEFT adapter folder as one zip (its two files at the top level): what a version's PEFT
    download serves. Raises ArtifactError for what PEFT cannot hold (prefixes, ensembles)."""
    with tempfile.TemporaryDirectory(prefix="softserve-peft-") as folder:
        export_peft(artifact, folder, is_encoder_decoder)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in (PEFT_CONFIG, PEFT_WEIGHTS):
                archive.write(Path(folder) / name, arcname=name)
    return buffer.getvalue()


def import_peft(folder: str | Path, fm: FrozenModel, spec: TaskSpec) -> PromptArtifact:
    """A Softserve artifact from a PEFT prompt-tuning (or P-tuning) adapter folder, for `spec`'s task."""
    folder = Path(folder)
    config_path, weights_path = folder / PEFT_CONFIG, folder / PEFT_WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise ArtifactError(
            f"{folder} is not a PEFT adapter folder (needs {PEFT_CONFIG} and {PEFT_WEIGHTS})."
        )
    config = json.loads(config_path.read_text())
    peft_type = config.get("peft_type")
    if peft_type not in ("PROMPT_TUNING", "P_TUNING"):
        raise ArtifactError(f"Only PEFT prompt tuning and P-tuning adapters import, not {peft_type}.")
    tensors = load_file(str(weights_path))
    if "prompt_embeddings" not in tensors:
        raise ArtifactError(f"{weights_path} has no prompt_embeddings tensor.")
    length = int(config["num_virtual_tokens"])
    prompt = tensors["prompt_embeddings"][:length].float()  # (P, E): the encoder-side rows
    if prompt.shape[1] != fm.embed_dim:
        raise ArtifactError(
            f"The PEFT prompt has width {prompt.shape[1]}; the base model has {fm.embed_dim}."
        )
    return PromptArtifact(
        tensors={"prompt": prompt},
        method=Method.PROMPT if peft_type == "PROMPT_TUNING" else Method.PTUNING,
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=spec,
        train_config={"imported_from": "peft", "peft_type": peft_type},
    )
