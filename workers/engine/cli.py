"""`softserve-engine`: train, evaluate, baseline, predict and inspect soft prompts from the shell.

Bad input exits with status 2 and one sentence on stderr; `--json` makes the last stdout line one
JSON object. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from typing import Any

from workers.engine.errors import EngineError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softserve-engine", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base-model",
        default=None,
        help="model id, local Hugging Face folder or hub id; default: $SOFTSERVE_BASE_MODEL, "
        "else the default model (for a saved prompt: the model it was trained for)",
    )
    common.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    common.add_argument("--device", default=None, help="torch device, e.g. cuda; default: cpu")
    common.add_argument("--seed", type=int, default=0)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--text-column", default=None, help="the single text column (default: text)")
    data.add_argument(
        "--template", default=None, help='input template over columns, e.g. "{text_a} / {text_b}"'
    )
    data.add_argument("--label-column", default="label")
    data.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", parents=[common, data], help="train a prompt on labelled data")
    train.add_argument("--train", required=True, help="CSV, TSV or JSONL file")
    train.add_argument("--dev", default=None, help="dev file; default: a seeded 10%% split of --train")
    train.add_argument("--out", required=True, help="the .safetensors artifact to write")
    train.add_argument("--method", default="prompt")
    train.add_argument("--task-type", choices=("classification", "generation"), default=None)
    train.add_argument("--verbalizer", action="append", default=[], metavar="LABEL=WORDS")
    train.add_argument("--prompt-length", type=int, default=20)
    train.add_argument("--init", default="labels", help="random, vocab, labels, text or file")
    train.add_argument("--init-text", default=None)
    train.add_argument("--init-file", default=None, help="a saved prompt to continue from")
    train.add_argument("--optimizer", default="adafactor", help="adafactor or adamw")
    train.add_argument("--lr", type=float, default=0.3)
    train.add_argument("--weight-decay", type=float, default=1e-5)
    train.add_argument("--train-batch-size", type=int, default=16)
    train.add_argument("--grad-accum", type=int, default=1)
    train.add_argument("--steps", type=int, default=300)
    train.add_argument("--max-minutes", type=float, default=None)
    train.add_argument("--eval-every", type=int, default=50)
    train.add_argument("--patience", type=int, default=5, help="evaluations without gain before stopping")
    train.add_argument("--dev-eval-limit", type=int, default=500, help="dev rows scored at each evaluation")
    train.add_argument("--max-input-tokens", type=int, default=256)

    evaluate = sub.add_parser("eval", parents=[common, data], help="score a prompt on labelled data")
    evaluate.add_argument("--prompt", required=True)
    evaluate.add_argument("--data", required=True)

    baseline = sub.add_parser(
        "baseline", parents=[common, data], help="prompt design: zero/k-shot, no training"
    )
    baseline.add_argument("--data", required=True)
    baseline.add_argument("--train", default=None, help="where k-shot examples come from")
    baseline.add_argument("--shots", type=int, default=0)
    baseline.add_argument(
        "--instruction", default=None, help="text before the examples (default: names the labels)"
    )

    predict = sub.add_parser("predict", parents=[common], help="run a prompt on inputs")
    predict.add_argument("--prompt", required=True)
    predict.add_argument("--text", action="append", default=[], help="an input for a one-field template")
    predict.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one field of a single input for multi-field templates",
    )
    predict.add_argument("--max-new-tokens", type=int, default=32)

    inspect = sub.add_parser(
        "inspect", parents=[common], help="nearest vocabulary tokens of each prompt vector"
    )
    inspect.add_argument("--prompt", required=True)
    inspect.add_argument("--top", type=int, default=5)
    return parser


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise EngineError(f"{what} takes NAME=VALUE, got {value!r}.")
        pairs[name.strip()] = rest
    return pairs


def _emit(args: argparse.Namespace, result: dict[str, Any], lines: list[str]) -> None:
    for line in lines:
        print(line)
    if args.json:
        print(json.dumps(result))


def _base_model(args: argparse.Namespace) -> str:
    from workers.engine.base_model import DEFAULT_MODEL_ID

    return args.base_model or os.environ.get("SOFTSERVE_BASE_MODEL") or DEFAULT_MODEL_ID


def _load_examples(path: str, args: argparse.Namespace, template: str | None = None):
    from workers.engine.data import read_rows, resolve_template, to_examples

    rows = read_rows(path)
    template = template or resolve_template(rows, args.template, args.text_column)
    return to_examples(rows, template, args.label_column, source=path), template


def _load_prompt(args: argparse.Namespace):
    from workers.engine.artifact import load_artifact
    from workers.engine.base_model import load_base_model
    from workers.engine.inference import LoadedPrompt

    artifact = load_artifact(args.prompt)
    fm = load_base_model(args.base_model or artifact.base_model, args.device)
    return fm, artifact, LoadedPrompt.from_artifact(fm, artifact)


def cmd_train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from workers.engine.artifact import PromptArtifact, load_artifact, save_artifact
    from workers.engine.base_model import load_base_model
    from workers.engine.data import check_labels, infer_task, split_train_dev
    from workers.engine.evaluation import evaluate
    from workers.engine.inference import LoadedPrompt
    from workers.engine.prompt_tuning import init_prompt
    from workers.engine.task import TaskSpec
    from workers.engine.trainer import TrainConfig, train_prompt

    config = TrainConfig(
        method=args.method,
        prompt_length=args.prompt_length,
        init=args.init,
        init_text=args.init_text,
        init_file=args.init_file,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.train_batch_size,
        grad_accum=args.grad_accum,
        steps=args.steps,
        max_minutes=args.max_minutes,
        eval_every=args.eval_every,
        patience=args.patience,
        dev_eval_limit=args.dev_eval_limit,
        eval_batch_size=args.batch_size,
        max_input_tokens=args.max_input_tokens,
        seed=args.seed,
    )
    train, template = _load_examples(args.train, args)
    if args.dev:
        dev, _ = _load_examples(args.dev, args, template)
    else:
        train, dev = split_train_dev(train, 0.1, args.seed)
    spec = infer_task(train, template)
    if args.task_type or args.verbalizer:
        labels = spec.labels if (args.task_type or spec.task_type) == "classification" else []
        spec = TaskSpec(
            task_type=args.task_type or spec.task_type,
            template=template,
            labels=labels,
            verbalizer=_pairs(args.verbalizer, "--verbalizer"),
        )
    check_labels(dev, spec, args.dev or "the dev split")
    fm = load_base_model(_base_model(args), args.device)
    if config.init == "file":
        start = load_artifact(config.init_file)
        start.check_fits(fm)
        initial = start.prompt
        config.prompt_length = start.prompt_length
    else:
        words = [spec.verbalizer[label] for label in spec.labels]
        initial = init_prompt(
            fm, config.prompt_length, config.init, label_words=words, text=config.init_text, seed=config.seed
        )
    bar = tqdm(total=config.steps, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_progress(p) -> None:
        postfix = {"loss": f"{p.loss:.4f}", "tok/s": f"{p.tokens_per_s:.0f}"}
        if p.best_dev is not None:
            postfix["best_dev"] = f"{p.best_dev:.4f}"
        bar.set_postfix(postfix)
        bar.update(p.step - bar.n)

    result = train_prompt(fm, spec, train, dev, config, initial, on_progress=on_progress)
    bar.close()
    final = evaluate(
        fm, LoadedPrompt.build(fm, result.prompt, spec, config.max_input_tokens), dev, config.eval_batch_size
    )
    artifact = PromptArtifact(
        tensors={"prompt": result.prompt},
        method=config.method,
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=spec,
        train_config=config.to_dict(),
        metrics={
            "dev": final,
            "best_step": result.best_step,
            "steps_run": result.steps_run,
            "stop_reason": result.stop_reason,
            "train_seconds": round(result.train_seconds, 2),
        },
    )
    save_artifact(artifact, args.out)
    summary = {
        "out": args.out,
        "task_type": spec.task_type,
        "labels": spec.labels,
        "dev": final,
        "best_step": result.best_step,
        "steps_run": result.steps_run,
        "stop_reason": result.stop_reason,
        "train_seconds": round(result.train_seconds, 2),
        "tokens_per_s": round(result.tokens_per_s, 1),
    }
    _emit(
        args,
        summary,
        [
            f"saved {args.out}: dev {final} (best step {result.best_step}, "
            f"{result.steps_run} steps, stopped by {result.stop_reason})"
        ],
    )


def cmd_eval(args: argparse.Namespace) -> None:
    from workers.engine.data import check_labels
    from workers.engine.evaluation import evaluate

    fm, artifact, prompt = _load_prompt(args)
    examples, _ = _load_examples(args.data, args, artifact.spec.template)
    check_labels(examples, artifact.spec, args.data)
    metrics = evaluate(fm, prompt, examples, args.batch_size)
    _emit(args, metrics, [f"{k}: {v}" for k, v in metrics.items()])


def cmd_baseline(args: argparse.Namespace) -> None:
    from workers.engine.base_model import load_base_model
    from workers.engine.data import check_labels, infer_task
    from workers.engine.design import design_prompt, pick_shots
    from workers.engine.evaluation import evaluate

    if args.shots and not args.train:
        raise EngineError("--shots needs --train, where the examples come from.")
    examples, template = _load_examples(args.data, args)
    pool = _load_examples(args.train, args, template)[0] if args.train else []
    spec = infer_task(pool or examples, template)
    check_labels(examples, spec, args.data)
    shots = pick_shots(pool, args.shots, args.seed)
    fm = load_base_model(_base_model(args), args.device)
    metrics = {
        **evaluate(fm, design_prompt(fm, spec, shots, args.instruction), examples, args.batch_size),
        "shots": args.shots,
    }
    _emit(args, metrics, [f"{k}: {v}" for k, v in metrics.items()])


def cmd_predict(args: argparse.Namespace) -> None:
    from workers.engine.inference import predict

    fm, artifact, prompt = _load_prompt(args)
    fields = artifact.spec.fields
    rows = [_pairs(args.field, "--field")] if args.field else []
    if args.text:
        if len(fields) != 1:
            raise EngineError(
                f"This prompt's template needs the fields {fields}; pass them with --field NAME=VALUE."
            )
        rows += [{fields[0]: text} for text in args.text]
    if not rows:
        raise EngineError("Give at least one input with --text or --field.")
    outputs = predict(fm, prompt, rows, max_new_tokens=args.max_new_tokens)
    lines = [json.dumps({"input": row, **out}) for row, out in zip(rows, outputs, strict=True)]
    _emit(args, {"outputs": outputs}, [] if args.json else lines)


def cmd_inspect(args: argparse.Namespace) -> None:
    from workers.engine.inspection import nearest_tokens, norm_stats

    fm, artifact, _ = _load_prompt(args)
    rows = nearest_tokens(fm, artifact.prompt, args.top)
    stats = norm_stats(fm, artifact.prompt)
    lines = [f"method {artifact.method}, P={artifact.prompt_length}, E={artifact.embed_dim}, norms {stats}"]
    lines += [
        f"{r['position']:>3}  |{r['norm']:7.3f}|  "
        + "  ".join(f"{t['token']!r}({t['cosine']:.2f})" for t in r["nearest"])
        for r in rows
    ]
    _emit(args, {"method": artifact.method, "norms": stats, "vectors": rows}, lines)


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "baseline": cmd_baseline,
    "predict": cmd_predict,
    "inspect": cmd_inspect,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        COMMANDS[args.command](args)
    except EngineError as exc:
        print(f"softserve-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("softserve-engine: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
