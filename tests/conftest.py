"""Shared fixtures: paths to the shared data, and tiny random-initialised GPT-2, Llama and T5 models."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Serving pools the tests start score in fp32, so their answers can be compared with the engine's to 1e-4;
# the `auto` policy (bf16 where native) is checked on its own (tests/serving/test_precision.py).
os.environ.setdefault("SERVING_PRECISION", "fp32")

pytest_plugins = ["tests.teams", "tests.s3"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
TINY_KINDS = ("gpt2", "llama", "t5")


ALLOW_SQLITE = "SOFTSERVE_TESTS_ALLOW_SQLITE"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):  # pytest-django's own, extended
    """The platform tests run on PostgreSQL, the database production runs: SQLite differs in locking,
    transactions and constraints, so a pass there proves less. A bare `pytest` without a PostgreSQL
    DATABASE_URL fails here instead of quietly using the embedded SQLite, unless SQLite is asked for
    (SOFTSERVE_TESTS_ALLOW_SQLITE=1)."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if not engine.endswith("postgresql") and os.environ.get(ALLOW_SQLITE) != "1":
        pytest.fail(
            f"the platform tests need PostgreSQL, and the database is {engine}: set DATABASE_URL to "
            f"postgres://… (as `make test` does), or {ALLOW_SQLITE}=1 to run them on SQLite anyway",
            pytrace=False,
        )
    return django_db_setup


def shared_dataset(task: str, split: str) -> Path:
    path = SHARED_DATASETS / task / f"{split}.csv"
    if not path.is_file():
        pytest.fail(f"shared dataset missing: {path}; tests read ../shared/datasets beside the project")
    return path


def _corpus(limit: int = 800) -> list[str]:
    with shared_dataset("sst2", "train").open(encoding="utf-8") as handle:
        texts = [row["text"] for _, row in zip(range(limit), csv.DictReader(handle), strict=False)]
    return [*texts, "negative positive good bad great awful Answer: Sentiment: Review:"]


def _tokenizer(kind: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    if kind == "t5":  # T5 ends every encoded sequence with </s>
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny_model(kind: str, folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, GPT2Config, LlamaConfig, T5Config

    tokenizer = _tokenizer(kind)
    vocab = len(tokenizer)
    ids = {"pad_token_id": 0, "eos_token_id": 1}
    torch.manual_seed(seed)
    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=vocab, n_positions=512, n_embd=32, n_layer=2, n_head=2, bos_token_id=1, **ids
        )
        model = AutoModelForCausalLM.from_config(config)
    elif kind == "llama":
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=1,
            **ids,
        )
        model = AutoModelForCausalLM.from_config(config)
    else:
        config = T5Config(
            vocab_size=vocab,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            **ids,
        )
        model = AutoModelForSeq2SeqLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: build_tiny_model(kind, root / kind) for kind in TINY_KINDS}


@pytest.fixture(scope="session")
def tiny_models(tiny_model_dirs):
    from workers.engine.base_model import load_base_model

    return {kind: load_base_model(str(path)) for kind, path in tiny_model_dirs.items()}


@pytest.fixture(params=TINY_KINDS)
def tiny(request, tiny_models):
    """Each test using this runs once per tiny architecture."""
    return tiny_models[request.param]
