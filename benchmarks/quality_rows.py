"""The rows of `quality.py`: one function trains (or scores) one row for one seed on one task (SST-2, AG
News or RTE, `benchmarks.common.TASKS`) and returns its record.

Every row is scored by the engine's rank-classification scorer
(`workers.engine.inference.evaluation.evaluate`) on the same dev rows. Softserve rows train with the
engine (`train_prompt` / `train_task`); the PEFT, LoRA and full fine-tuning rows with a plain causal-LM
loop (`hf_loop`) that probes early stopping on the same rows at the same interval. Each row passes its
optimiser and learning rate explicitly, so the tables do not move when the platform's defaults do.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.common import TASKS, dataset_path, peft_batch

PEFT_ADAFACTOR = {"optimizer": "adafactor", "learning_rate": 0.3}


@dataclass(frozen=True)
class Protocol:
    steps: int
    batch_size: int
    dev_rows: int | None  # the first N of the task's dev split; None: all of it
    probe_rows: int  # carved from train (seed 0), early stopping's split
    eval_every: int
    max_input_tokens: int  # a task with longer rows raises it (BenchTask.min_input_tokens)
    seeds: int
    train_rows: int | None = None  # the first N of the task's train split (before the probe is carved)


PROTOCOLS = {
    "small": Protocol(60, 8, 300, 100, 15, 64, 3),
    "quick": Protocol(4, 4, 40, 16, 2, 64, 1),
    "full": Protocol(300, 16, None, 500, 50, 256, 1),
}


@dataclass(frozen=True)
class Row:
    label: str  # as the tables print it
    kind: str  # design | engine | peft-prompt | lora | full-ft
    settings: dict[str, Any] = field(default_factory=dict)
    trained: bool = True


def _prompt(label: str, **settings: Any) -> Row:
    return Row(label, "engine", {"method": "prompt", "optimizer": "adamw", "learning_rate": 3e-2, **settings})


ROWS: dict[str, Row] = {
    "design-0shot": Row("prompt design, 0-shot (no training)", "design", {"shots": 0}, trained=False),
    "design-4shot": Row("prompt design, 4-shot (no training)", "design", {"shots": 4}, trained=False),
    # Lester et al. 2021 Fig. 3 ablations (prompt tuning, AdamW 3e-2); prompt-labels is length 20, labels.
    "prompt-labels": _prompt("prompt tuning, P=20, class-label init", prompt_length=20, init="labels"),
    "prompt-len1": _prompt("prompt tuning, P=1, label init", prompt_length=1, init="labels"),
    "prompt-len5": _prompt("prompt tuning, P=5, label init", prompt_length=5, init="labels"),
    "prompt-len100": _prompt("prompt tuning, P=100, label init", prompt_length=100, init="labels"),
    "prompt-len150": _prompt("prompt tuning, P=150, label init", prompt_length=150, init="labels"),
    "prompt-random": _prompt("prompt tuning, P=20, random-uniform init", prompt_length=20, init="random"),
    "prompt-vocab": _prompt("prompt tuning, P=20, sampled-vocab init", prompt_length=20, init="vocab"),
    # The text is the task's (BenchTask.text_init): for SST-2 "Review sentiment positive negative".
    "prompt-text": _prompt("prompt tuning, P=20, text init", prompt_length=20, init="text"),
    # The vocab-init gap: Softserve's old pool (5,000 lowest non-control ids) vs the whole vocabulary (what
    # the engine draws from now) vs PEFT. Both Softserve pools are emulated here, as they were measured.
    "softserve-vocab-pool-adafactor0.3": Row(
        "Softserve vocab init, 5,000-id pool (before the fix), Adafactor 0.3",
        "engine",
        {"method": "prompt", "init": "vocab", "pool": "common", **PEFT_ADAFACTOR},
    ),
    "softserve-vocab-whole-adafactor0.3": Row(
        "Softserve vocab init, whole vocabulary, Adafactor 0.3",
        "engine",
        {"method": "prompt", "init": "vocab", "pool": "whole", **PEFT_ADAFACTOR},
    ),
    "peft-vocab-adafactor0.3": Row(
        "PEFT PromptTuning, paper settings (SAMPLE_VOCAB, Adafactor 0.3)",
        "peft-prompt",
        {"init": "SAMPLE_VOCAB", **PEFT_ADAFACTOR},
    ),
    "peft-random-adamw3e-2": Row(
        "PEFT PromptTuning, PEFT defaults (RANDOM, AdamW 3e-2)",
        "peft-prompt",
        {"init": "RANDOM", "optimizer": "adamw", "learning_rate": 3e-2},
    ),
    # The other methods and the baselines a team would pick instead.
    "prefix": Row(
        "prefix tuning (MLP, folded; vocab init; AdamW 5e-4)",
        "engine",
        {"method": "prefix", "init": "vocab", "optimizer": "adamw", "learning_rate": 5e-4},
    ),
    "ptuning": Row(
        "P-tuning (MLP encoder; label init; AdamW 3e-3)",
        "engine",
        {"method": "ptuning", "init": "labels", "optimizer": "adamw", "learning_rate": 3e-3},
    ),
    "lora": Row(
        "PEFT LoRA r=8 on q/k/v/o (AdamW 5e-4)",
        "lora",
        {"r": 8, "alpha": 16, "optimizer": "adamw", "learning_rate": 5e-4},
    ),
    "full-ft": Row(
        "full fine-tuning, all weights (AdamW 2e-5)", "full-ft", {"optimizer": "adamw", "learning_rate": 2e-5}
    ),
    # Row seed s trains members with seeds 5s .. 5s+4 (disjoint between row seeds); the record keeps
    # each member's dev score beside the vote's.
    "ensemble": Row(
        "prompt ensemble, 5 members (label init, AdamW 3e-2; majority vote)",
        "engine",
        {
            "method": "prompt",
            "init": "labels",
            "ensemble_size": 5,
            "optimizer": "adamw",
            "learning_rate": 3e-2,
        },
    ),
}


def tensor_bytes(tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


class Bench:
    """The model, task and splits of one child process (one row × seed). `fm`: a loaded model instead of
    the default one (the tests pass a tiny one)."""

    def __init__(self, protocol: Protocol, task: str = "sst2", fm=None):
        from common.task import TaskSpec
        from workers.engine.base_model import load_base_model
        from workers.engine.training.data import read_rows, split_train_dev, to_examples

        self.protocol = protocol
        self.task = TASKS[task]
        self.max_input_tokens = max(protocol.max_input_tokens, self.task.min_input_tokens)
        self.trained: tuple[float, float] | None = None
        self.fm = fm if fm is not None else load_base_model()
        template = self.task.template
        self.spec = TaskSpec(task_type="classification", template=template, labels=list(self.task.labels))
        train = to_examples(read_rows(dataset_path(task, "train")), template, "label")[: protocol.train_rows]
        self.dev = to_examples(read_rows(dataset_path(task, "dev")), template, "label")[: protocol.dev_rows]
        # Early stopping's probe is carved from train with a fixed seed: the same rows for every run.
        self.train, self.probe = split_train_dev(train, protocol.probe_rows / len(train), 0)

    def mark_trained(self) -> None:
        """Training (with its probe evaluations) ends here; the final dev pass is not train time."""
        self.trained = (time.perf_counter(), time.process_time())

    def loaded(self, vectors):
        from workers.engine.inference.predict import LoadedPrompt

        return LoadedPrompt.build(self.fm, vectors, self.spec, self.max_input_tokens)

    def score(self, prompt, rows) -> dict[str, Any]:
        from workers.engine.inference.evaluation import evaluate

        return evaluate(self.fm, prompt, rows)

    def no_prompt(self):
        """An empty prompt: the LoRA / fine-tuned model scored on the bare template, like 0-shot."""
        return self.loaded(torch.zeros(0, self.fm.embed_dim))


COMMON_POOL_SIZE = 5000  # the vocab init's pool before the fix: the 5,000 lowest non-special ids


def emulated_pool_ids(fm, pool: str) -> list[int]:
    """The ids a gap row's vocab init drew from: every id but the special ids, or the 5,000 lowest."""
    special = set(fm.tokenizer.all_special_ids)
    ids = [i for i in range(fm.model.get_input_embeddings().num_embeddings) if i not in special]
    return ids[:COMMON_POOL_SIZE] if pool == "common" else ids


def emulated_vocab_init(fm, pool: str, length: int, seed: int) -> torch.Tensor:
    """A vocab init as the gap rows were measured, before the engine's pool left out the control tokens
    (SmolLM2's ids 3-16; none was drawn for seeds 0-2): every id but the tokenizer's special ids 0-2
    (`whole`, what the engine now draws from, less those control tokens), or the 5,000 lowest of them
    (`common`, the engine's pool before the fix)."""
    ids = emulated_pool_ids(fm, pool)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.tensor(ids)[torch.randperm(len(ids), generator=generator)[:length]]
    return fm.embed(picks).detach().float()


def run_design(bench: Bench, row: Row, seed: int) -> dict[str, Any]:
    from workers.engine.inference.design import design_prompt, pick_shots

    shots = pick_shots(bench.train, row.settings["shots"], seed) if row.settings["shots"] else []
    prompt = design_prompt(bench.fm, bench.spec, shots, max_input_tokens=bench.max_input_tokens)
    return {
        "dev": bench.score(prompt, bench.dev),
        "steps_run": 0,
        "best_step": 0,
        "curve": [],
        "storage_bytes": 0,
        "serving_bytes": tensor_bytes(prompt.members),
    }


def run_engine(bench: Bench, row: Row, seed: int) -> dict[str, Any]:
    from workers.engine.training.config import TrainConfig
    from workers.engine.training.pipeline import train_task
    from workers.engine.training.trainer import train_prompt

    p = bench.protocol
    settings = dict(row.settings)
    pool = settings.pop("pool", None)
    if settings.get("init") == "text":
        settings["init_text"] = bench.task.text_init
    size = settings.get("ensemble_size", 1)
    config = TrainConfig(
        batch_size=p.batch_size,
        steps=p.steps,
        eval_every=p.eval_every,
        patience=100,
        dev_eval_limit=p.probe_rows,
        max_input_tokens=bench.max_input_tokens,
        # fp32 like the PEFT, LoRA and full fine-tuning loops: the rows compare methods, not precisions
        precision="fp32",
        # An ensemble's member k trains with seed `config.seed + k`: row seeds get disjoint members.
        seed=seed * size,
        **settings,
    )
    curve: list = []
    cpu_started = time.process_time()

    def on_progress(progress) -> None:
        if progress.step % config.eval_every == 0 or progress.step == config.steps:
            acc = progress.dev["accuracy"] if progress.dev else progress.best_dev  # a bank: members' best
            cpu = round(time.process_time() - cpu_started, 1)
            curve.append([progress.step, round(progress.elapsed_s, 1), acc, cpu])

    if pool:
        initial = emulated_vocab_init(bench.fm, pool, config.prompt_length, seed)
        result = train_prompt(bench.fm, bench.spec, bench.train, bench.probe, config, initial, on_progress)
        members, best_step, steps_run = [result.prompt], result.best_step, result.steps_run
    else:
        artifact = train_task(bench.fm, bench.spec, bench.train, bench.probe, config, on_progress)
        members, best_step = artifact.members, artifact.metrics["best_step"]
        steps_run = artifact.metrics["steps_run"]
    bench.mark_trained()
    prompt = bench.loaded(members)
    dev = bench.score(prompt, bench.dev)
    out: dict[str, Any] = {
        "dev": dev,
        "steps_run": steps_run,
        "best_step": best_step,
        "curve": curve,
        "storage_bytes": tensor_bytes(members),
        "serving_bytes": tensor_bytes(prompt.members),
        "resolved_config": config.to_dict(),
    }
    if len(members) > 1:
        # An artifact's best_step is one per member: the record's is their mean (a number, as every
        # row's), and each member's own dev score, from the ensemble's one evaluation pass, sits beside it.
        out["best_step"] = round(sum(best_step) / len(best_step), 1)
        out["members"] = [
            {
                "seed": config.seed + k,
                "best_step": step,
                "dev_accuracy": scores["accuracy"],
                "dev_macro_f1": scores["macro_f1"],
            }
            for k, (step, scores) in enumerate(zip(best_step, dev["members"], strict=True))
        ]
    return out


def make_optimizer(params, settings: dict[str, Any]):
    if settings["optimizer"] == "adamw":
        return torch.optim.AdamW(
            params, lr=settings["learning_rate"], weight_decay=settings.get("weight_decay", 0.0)
        )
    from transformers.optimization import Adafactor

    return Adafactor(
        params,
        lr=settings["learning_rate"],
        scale_parameter=False,
        relative_step=False,
        warmup_init=False,
        weight_decay=1e-5,
    )


def hf_loop(
    bench: Bench,
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    settings: dict[str, Any],
    seed: int,
    probe: Callable[[], float],
    snapshot: Callable[[], Any],
) -> dict[str, Any]:
    """Shuffled batches, HF's causal-LM loss on the label tokens; a probe every `eval_every` steps
    keeps the best state."""
    from workers.engine.inference.encoding import TaskEncoder

    p = bench.protocol
    inputs, targets = TaskEncoder(bench.fm, bench.spec, bench.max_input_tokens).encode(bench.train)
    optimizer = make_optimizer(params, settings)
    rng, order = random.Random(seed), []
    best = (-1.0, 0, None)
    curve, started, cpu_started = [], time.perf_counter(), time.process_time()
    model.train()
    for step in range(1, p.steps + 1):
        if len(order) < p.batch_size:
            fresh = list(range(len(inputs)))
            rng.shuffle(fresh)
            order += fresh
        index, order = order[: p.batch_size], order[p.batch_size :]
        batch = peft_batch(bench.fm, [inputs[i] for i in index], [targets[i] for i in index])
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()
        if step % p.eval_every == 0 or step == p.steps:
            model.eval()
            with torch.no_grad():
                acc = probe()
            model.train()
            cpu = round(time.process_time() - cpu_started, 1)
            curve.append([step, round(time.perf_counter() - started, 1), acc, cpu])
            if acc > best[0]:
                best = (acc, step, snapshot())
    model.eval()
    bench.mark_trained()
    return {"best_step": best[1], "best_state": best[2], "steps_run": p.steps, "curve": curve}


def loop_result(dev: dict[str, Any], out: dict[str, Any], task_bytes: int, **extra: Any) -> dict[str, Any]:
    """A row's result after `hf_loop`: its dev figures, the loop's steps and curve, and the bytes one task
    adds (the same in storage and in serving memory for these rows)."""
    return {
        "dev": dev,
        "steps_run": out["steps_run"],
        "best_step": out["best_step"],
        "curve": out["curve"],
        "storage_bytes": task_bytes,
        "serving_bytes": task_bytes,
        **extra,
    }


def run_peft_prompt(bench: Bench, row: Row, seed: int) -> dict[str, Any]:
    from benchmarks.common import peft_prompt_model, peft_prompt_vectors

    torch.manual_seed(seed)  # PEFT's SAMPLE_VOCAB / RANDOM draw from the global generator
    model = peft_prompt_model(bench.fm, row.settings["init"])
    params = [q for q in model.parameters() if q.requires_grad]

    def vectors():
        return peft_prompt_vectors(model)

    out = hf_loop(
        bench,
        model,
        params,
        row.settings,
        seed,
        lambda: bench.score(bench.loaded(vectors()), bench.probe)["accuracy"],
        vectors,
    )
    prompt = bench.loaded(out["best_state"])
    return loop_result(bench.score(prompt, bench.dev), out, tensor_bytes(prompt.members))


def run_lora(bench: Bench, row: Row, seed: int) -> dict[str, Any]:
    """LoRA injects its layers into fm.model in place, so the engine's scorer runs the adapted model."""
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(seed)
    s = row.settings
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=s["r"],
        lora_alpha=s["alpha"],
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model = get_peft_model(bench.fm.model, config)
    params = [q for q in model.parameters() if q.requires_grad]

    def snapshot():
        return [q.detach().clone() for q in params]

    out = hf_loop(
        bench,
        model,
        params,
        s,
        seed,
        lambda: bench.score(bench.no_prompt(), bench.probe)["accuracy"],
        snapshot,
    )
    with torch.no_grad():
        for q, best in zip(params, out["best_state"], strict=True):
            q.copy_(best)
    return loop_result(
        bench.score(bench.no_prompt(), bench.dev),
        out,
        tensor_bytes(params),
        trainable_params=sum(q.numel() for q in params),
    )


def run_full_ft(bench: Bench, row: Row, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = bench.fm.model
    model.requires_grad_(True)
    params = list(model.parameters())

    def snapshot():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    out = hf_loop(
        bench,
        model,
        params,
        row.settings,
        seed,
        lambda: bench.score(bench.no_prompt(), bench.probe)["accuracy"],
        snapshot,
    )
    model.load_state_dict(out["best_state"])
    model.requires_grad_(False)
    # Tied input/output embeddings count once: what a checkpoint of this task stores.
    distinct = list({id(q): q for q in params}.values())
    return loop_result(
        bench.score(bench.no_prompt(), bench.dev),
        out,
        tensor_bytes(distinct),
        trainable_params=sum(q.numel() for q in distinct),
    )


RUNNERS = {
    "design": run_design,
    "engine": run_engine,
    "peft-prompt": run_peft_prompt,
    "lora": run_lora,
    "full-ft": run_full_ft,
}


def run_row(protocol: Protocol, name: str, seed: int, task: str = "sst2", fm=None) -> dict[str, Any]:
    """Train and score one row for one seed on `task` in this process; the record `quality.py` stores.
    `fm`: a loaded model instead of the default one."""
    import resource

    row = ROWS[name]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    bench = Bench(protocol, task, fm)
    setup_s = time.perf_counter() - wall0
    cpu1, wall1 = time.process_time(), time.perf_counter()
    result = RUNNERS[row.kind](bench, row, seed)
    wall, cpu = time.perf_counter() - wall1, time.process_time() - cpu1
    trained_wall, trained_cpu = bench.trained or (wall1, cpu1)
    return {
        "row": name,
        "label": row.label,
        "seed": seed,
        "task": task,
        "protocol": {k: v for k, v in protocol.__dict__.items()},
        "max_input_tokens": bench.max_input_tokens,
        "settings": row.settings,
        "dev_accuracy": result["dev"]["accuracy"],
        "dev_macro_f1": result["dev"]["macro_f1"],
        "dev_n": result["dev"]["n"],
        "best_step": result["best_step"],
        "steps_run": result["steps_run"],
        # Training, probe evaluations and the final dev pass (model and data loading excluded).
        "run_wall_s": round(wall, 1),
        "run_cpu_s": round(cpu, 1),
        "setup_wall_s": round(setup_s, 1),
        "total_cpu_s": round(time.process_time() - cpu0, 1),
        "train_wall_s": round(trained_wall - wall1, 1),  # steps + probe evaluations
        "train_cpu_s": round(trained_cpu - cpu1, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "storage_bytes": result["storage_bytes"],
        "serving_bytes": result["serving_bytes"],
        # [step, wall s since training began, probe accuracy, CPU s since training began]
        "curve": result["curve"],
        "torch_threads": torch.get_num_threads(),
        **{k: v for k, v in result.items() if k in ("trainable_params", "resolved_config", "members")},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
