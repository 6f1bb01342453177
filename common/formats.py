"""Which forms a trained prompt comes in, and why not when it does not: standard library only, so the
platform (which never imports torch) and the engine give a tenant the same reason in the same words."""

from __future__ import annotations

from common.contracts import Method

# PEFT's PROMPT_TUNING layout: one (P, E) matrix before the input.
PEFT_METHODS = (Method.PROMPT, Method.PTUNING)
PEFT_ZIP = "peft.zip"  # a version's PEFT adapter (adapter_config.json + adapter_model.safetensors)


def peft_unavailable(method: str, ensemble_size: int) -> str | None:
    """None when a version of this method and ensemble size exports to PEFT, else the reason in words."""
    if method == Method.PREFIX:
        return (
            "Prefix-tuning versions have no PEFT download: PEFT keeps a prefix per layer in its own "
            "cache layout, which Softserve's prefix does not map onto. Use the Softserve file."
        )
    if method not in PEFT_METHODS:
        return f"Only prompt-tuning and P-tuning versions export to PEFT, not {method!r}."
    if ensemble_size > 1:
        return "PEFT has no ensembles: this version's members are in the Softserve file only."
    return None


def nearest_tokens_unavailable(method: str) -> str | None:
    """None when a version's vectors live in the vocabulary's embedding space, else why they do not."""
    if method == Method.PREFIX:
        return (
            "Nearest vocabulary tokens do not apply to prefix tuning: its vectors are keys and values "
            "inside every layer, not input embeddings comparable with the vocabulary."
        )
    return None
