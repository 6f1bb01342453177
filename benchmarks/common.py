"""Shared pieces of the benchmarks: data paths, the PEFT baseline loop, peak-memory sampling."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SST2_TEMPLATE = "Review: {text}\nSentiment:"


def dataset_path(task: str, split: str) -> Path:
    path = DATASETS / task / f"{split}.csv"
    if not path.is_file():
        raise SystemExit(f"benchmark data missing: {path} (expected ../shared/datasets beside the project)")
    return path


@dataclass(frozen=True)
class BenchTask:
    """A shared labelled dataset as the benchmarks pose it: its template and labels (the labels as the
    data writes them, each its own verbalizer, as a team would upload them)."""

    name: str
    template: str
    labels: tuple[str, ...]
    text_init: str  # the words of a `text` init: the task's cue and its label words
    # Inputs are cut to their last N tokens; a task whose rows are longer than a protocol's cut raises it
    # (AG News' headline opens the text, RTE's premise comes first): the SmolLM2 tokens of the rendered
    # dev rows are median 56 / max 301 for AG News and median 65 / max 244 for RTE, against 14 / 65 for SST-2.
    min_input_tokens: int = 0


TASKS = {
    "sst2": BenchTask("sst2", SST2_TEMPLATE, ("negative", "positive"), "Review sentiment positive negative"),
    "agnews": BenchTask(
        "agnews",
        "Article: {text}\nTopic:",
        ("world", "sports", "business", "sci_tech"),
        "News topic world sports business science technology",
        min_input_tokens=128,
    ),
    "rte": BenchTask(
        "rte",
        "Premise: {text_a}\nHypothesis: {text_b}\nAnswer:",
        ("entailment", "not_entailment"),
        "Does the premise entail the hypothesis entailment not entailment",
        min_input_tokens=256,
    ),
}


class PeakRss:
    """Samples this process's resident memory in a thread; `.peak_mb` is the maximum seen."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            self._stop.wait(self.interval_s)

    @contextmanager
    def measure(self):
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def peft_prompt_model(fm, init: str, num_virtual_tokens: int = 20):
    """PEFT's PromptTuning around the same frozen model; `init` is a PromptTuningInit name."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit[init],
    )
    return get_peft_model(fm.model, config)


def peft_batch(fm, inputs: list[list[int]], targets: list[list[int]]) -> dict[str, torch.Tensor]:
    """The usual causal-LM collation: right padding to the batch maximum, loss only on targets."""
    seqs = [[*i, *t] for i, t in zip(inputs, targets, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), fm.pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, (inp, tgt) in enumerate(zip(inputs, targets, strict=True)):
        ids[row, : len(inp) + len(tgt)] = torch.tensor([*inp, *tgt])
        labels[row, len(inp) : len(inp) + len(tgt)] = torch.tensor(tgt)
        mask[row, : len(inp) + len(tgt)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def train_peft(
    peft_model,
    fm,
    inputs: list[list[int]],
    targets: list[list[int]],
    steps: int,
    batch_size: int,
    make_optimizer: Callable,
    seed: int = 0,
) -> dict[str, float]:
    """A plain PEFT training loop: shuffled batches, full-vocabulary logits, HF's own loss."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params)
    rng = random.Random(seed)
    order: list[int] = []
    tokens, started = 0, time.perf_counter()
    peft_model.train()
    for _ in range(steps):
        if len(order) < batch_size:
            fresh = list(range(len(inputs)))
            rng.shuffle(fresh)
            order += fresh
        index, order = order[:batch_size], order[batch_size:]
        batch = peft_batch(fm, [inputs[i] for i in index], [targets[i] for i in index])
        optimizer.zero_grad(set_to_none=True)
        peft_model(**batch).loss.backward()
        optimizer.step()
        tokens += int(batch["attention_mask"].sum()) + peft_model.peft_config[
            "default"
        ].num_virtual_tokens * len(index)
    peft_model.eval()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def peft_prompt_vectors(peft_model) -> torch.Tensor:
    return peft_model.get_prompt_embedding_to_save("default").detach().float()  # (P, E)
