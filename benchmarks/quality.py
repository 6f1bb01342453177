"""Dev accuracy on SST-2 with the default model, one process, the same step budget for every trained row.

Rows: prompt design zero-shot and 4-shot (no training), Softserve prompt tuning, PEFT PromptTuning with
PEFT's defaults (random init, AdamW 3e-2), PEFT with the paper's settings (sampled-vocabulary init,
Adafactor 0.3), prefix tuning, P-tuning, and a 5-member prompt ensemble (each member, their average and
best, and the vote). Every prompt is scored by the same rank-classification scorer on the same dev rows;
early stopping uses 500 rows carved from train. `--rows` picks a subset.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import SST2_TEMPLATE, dataset_path, peft_prompt_model, peft_prompt_vectors, train_peft

ALL_ROWS = "design,softserve,peft,prefix,ptuning,ensemble"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a run of a minute or two: few steps, 200 dev rows"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps per trained row")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="Softserve's training budget")
    parser.add_argument("--dev-rows", type=int, default=None)
    parser.add_argument(
        "--probe-rows", type=int, default=500, help="rows of the early-stopping split scored per evaluation"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--softserve-optimizer", default="adafactor", help="the Softserve row's optimiser")
    parser.add_argument("--softserve-lr", type=float, default=0.3, help="the Softserve row's learning rate")
    parser.add_argument(
        "--softserve-init", default="labels", help="the Softserve row's init (labels, vocab, …)"
    )
    parser.add_argument("--rows", default=ALL_ROWS, help=f"comma-separated subset of {ALL_ROWS}")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from transformers.optimization import Adafactor
    from transformers.utils import logging as hf_logging

    from workers.engine.base_model import load_base_model
    from workers.engine.data import read_rows, split_train_dev, to_examples
    from workers.engine.design import design_prompt, pick_shots
    from workers.engine.encoding import TaskEncoder
    from workers.engine.evaluation import evaluate
    from workers.engine.inference import LoadedPrompt
    from workers.engine.pipeline import train_task
    from workers.engine.prompt_tuning import init_prompt
    from workers.engine.task import TaskSpec
    from workers.engine.trainer import TrainConfig, train_prompt

    hf_logging.set_verbosity_error()
    steps = args.steps or (15 if args.quick else 300)
    dev_rows = args.dev_rows or (200 if args.quick else None)
    fm = load_base_model()
    spec = TaskSpec(task_type="classification", template=SST2_TEMPLATE, labels=["negative", "positive"])
    train = to_examples(read_rows(dataset_path("sst2", "train")), SST2_TEMPLATE, "label")
    dev = to_examples(read_rows(dataset_path("sst2", "dev")), SST2_TEMPLATE, "label")[:dev_rows]
    # Early stopping uses a slice of train, never the dev rows the table reports.
    train, early_stop = split_train_dev(train, 500 / len(train), args.seed)
    rows: list[tuple[str, dict, float]] = []

    def score(name: str, prompt: LoadedPrompt, seconds: float) -> float:
        metrics = evaluate(fm, prompt, dev)
        rows.append((name, metrics, seconds))
        print(
            f"{name:<34} acc {metrics['accuracy']:.4f}  f1 {metrics['macro_f1']:.4f}  train {seconds:7.1f}s",
            file=sys.stderr,
            flush=True,
        )
        return metrics["accuracy"]

    wanted = set(args.rows.split(","))
    figures: dict[str, float] = {}
    config = TrainConfig(
        prompt_length=20,
        init="labels",
        batch_size=16,
        steps=steps,
        eval_every=max(5, steps // 6),
        patience=100,
        dev_eval_limit=args.probe_rows,
        seed=args.seed,
    )

    if "design" in wanted:
        figures["design_0shot_acc"] = score("prompt design, 0-shot", design_prompt(fm, spec, []), 0.0)
        shots = pick_shots(train, 4, args.seed)
        figures["design_4shot_acc"] = score("prompt design, 4-shot", design_prompt(fm, spec, shots), 0.0)

    if "softserve" in wanted:
        budgeted = replace(
            config,
            init=args.softserve_init,
            max_minutes=args.max_minutes,
            optimizer=args.softserve_optimizer,
            learning_rate=args.softserve_lr,
        )
        initial = init_prompt(fm, 20, args.softserve_init, label_words=spec.labels, seed=args.seed)
        result = train_prompt(fm, spec, train, early_stop, budgeted, initial)
        prompt = LoadedPrompt.build(fm, result.prompt, spec)
        figures["softserve_acc"] = score("Softserve prompt tuning", prompt, result.train_seconds)
        figures["softserve_train_minutes"] = round(result.train_seconds / 60, 2)
        figures["softserve_steps"] = result.steps_run
        figures["softserve_optimizer"] = f"{args.softserve_optimizer} lr {args.softserve_lr}"
        figures["softserve_init"] = args.softserve_init

    if "peft" in wanted:
        encoder = TaskEncoder(fm, spec)
        inputs, targets = encoder.encode(train)
        peft_rows = {
            "peft_default_acc": (
                "PEFT defaults (random, AdamW 3e-2)",
                "RANDOM",
                lambda p: torch.optim.AdamW(p, lr=3e-2),
            ),
            "peft_paper_acc": (
                "PEFT paper (vocab init, Adafactor .3)",
                "SAMPLE_VOCAB",
                lambda p: Adafactor(
                    p,
                    lr=0.3,
                    scale_parameter=False,
                    relative_step=False,
                    warmup_init=False,
                    weight_decay=1e-5,
                ),
            ),
        }
        for key, (name, init, make_optimizer) in peft_rows.items():
            torch.manual_seed(args.seed)
            model = peft_prompt_model(fm, init)
            timing = train_peft(model, fm, inputs, targets, steps, 16, make_optimizer, args.seed)
            figures[key] = score(
                name, LoadedPrompt.build(fm, peft_prompt_vectors(model), spec), timing["seconds"]
            )

    def report_probe(row: str):
        """Print each early-stopping evaluation, so a run that goes wrong shows where."""

        def on_progress(progress) -> None:
            if progress.step % config.eval_every:
                return
            if progress.dev is not None:  # one prompt: this evaluation's probe accuracy
                probe = f"probe {progress.dev['accuracy']:.4f}"
            else:  # a bank: the members' best probe accuracies so far, averaged
                probe = f"members' best probe, mean {progress.best_dev or 0:.4f}"
            print(
                f"  {row} step {progress.step}: loss {progress.loss:.4f}, {probe}",
                file=sys.stderr,
                flush=True,
            )

        return on_progress

    # The other methods, each with the same step budget per member as prompt tuning.
    methods = {
        "prefix": ("prefix tuning (MLP, folded)", {"method": "prefix", "init": "vocab"}),
        "ptuning": ("P-tuning (MLP encoder)", {"method": "ptuning"}),
        "ensemble": ("prompt ensemble, 5 members", {"ensemble_size": 5}),
    }
    for key, (name, overrides) in methods.items():
        if key not in wanted:
            continue
        artifact = train_task(fm, spec, train, early_stop, replace(config, **overrides), report_probe(key))
        seconds = artifact.metrics["train_seconds"]
        figures[f"{key}_best_step"] = artifact.metrics["best_step"]  # early stopping's pick (per member)
        prompt = LoadedPrompt.from_artifact(fm, artifact)
        if key != "ensemble":
            figures[f"{key}_acc"] = score(name, prompt, seconds)
            continue
        metrics = evaluate(fm, prompt, dev)
        for k, member in enumerate(metrics["members"]):
            rows.append((f"  ensemble member {k}", member, seconds))
        figures["ensemble_member_avg_acc"] = metrics["member_avg_accuracy"]
        figures["ensemble_member_best_acc"] = metrics["member_best_accuracy"]
        rows.append(
            (
                "  ensemble member average",
                {"accuracy": metrics["member_avg_accuracy"], "macro_f1": float("nan")},
                seconds,
            )
        )
        rows.append(
            (
                "  ensemble member best",
                {"accuracy": metrics["member_best_accuracy"], "macro_f1": float("nan")},
                seconds,
            )
        )
        rows.append((name, metrics, seconds))
        figures["ensemble_acc"] = metrics["accuracy"]

    print(f"\n{'row':<40}{'dev acc':>9}{'macro-F1':>10}{'train s':>10}")
    for name, metrics, seconds in rows:
        print(f"{name:<40}{metrics['accuracy']:>9.4f}{metrics['macro_f1']:>10.4f}{seconds:>10.1f}")
    designs = [figures[k] for k in ("design_0shot_acc", "design_4shot_acc") if k in figures]
    if "softserve_acc" in figures and designs:
        figures["softserve_minus_best_design"] = round(figures["softserve_acc"] - max(designs), 4)
    print(
        json.dumps(
            {
                **figures,
                "steps_budget": steps,
                "dev_rows": len(dev),
                "probe_rows": args.probe_rows,
                "started": time.strftime("%Y-%m-%d %H:%M"),
            }
        )
    )


if __name__ == "__main__":
    main()
