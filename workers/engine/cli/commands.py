"""The bodies of the `softserve-engine` subcommands; `cli/__init__.py` parses the arguments and calls them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from common.contracts import TaskType
from common.errors import EngineError

if TYPE_CHECKING:  # the CLI imports torch-heavy modules only in the command that needs them
    from common.task import Example
    from workers.engine.artifacts.artifact import PromptArtifact
    from workers.engine.base_model import FrozenModel
    from workers.engine.inference.predict import LoadedPrompt
    from workers.engine.training.config import TrainConfig
    from workers.engine.training.results import Progress


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
    from common.settings import BASE_MODEL

    return args.base_model or BASE_MODEL.read()


def _load_examples(
    path: str, args: argparse.Namespace, template: str | None = None
) -> tuple[list[Example], str]:
    from workers.engine.training.data import read_rows, resolve_template, to_examples

    rows = read_rows(path)
    template = template or resolve_template(rows, args.template, args.text_column)
    return to_examples(rows, template, args.label_column, source=path), template


def _load_prompt(args: argparse.Namespace) -> tuple[FrozenModel, PromptArtifact, LoadedPrompt]:
    from workers.engine.artifacts.artifact import load_artifact
    from workers.engine.base_model import load_base_model
    from workers.engine.inference.predict import LoadedPrompt

    artifact = load_artifact(args.prompt)
    fm = load_base_model(args.base_model or artifact.base_model, args.device)
    return fm, artifact, LoadedPrompt.from_artifact(fm, artifact)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The CLI's training settings; a missing --max-minutes is the method's budget, as a platform job
    gets it."""
    from workers.engine.training.config import TrainConfig

    config = TrainConfig(
        method=args.method,
        prompt_length=args.prompt_length,
        init=args.init,
        init_text=args.init_text,
        init_file=args.init_file,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        ptuning_encoder=args.ptuning_encoder,
        ensemble_size=args.ensemble,
        weight_decay=args.weight_decay,
        batch_size=args.train_batch_size,
        grad_accum=args.grad_accum,
        steps=args.steps,
        max_minutes=args.max_minutes,  # None: resolved to the method's budget below
        eval_every=args.eval_every,
        patience=args.patience,
        dev_eval_limit=args.dev_eval_limit,
        eval_batch_size=args.batch_size,
        max_input_tokens=args.max_input_tokens,
        precision=args.precision,
        seed=args.seed,
    )
    if config.max_minutes is None:
        config.max_minutes = config.defaults.max_minutes
    return config


def cmd_train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from common.task import TaskSpec
    from workers.engine.artifacts.artifact import save_artifact
    from workers.engine.base_model import load_base_model
    from workers.engine.training.data import check_labels, infer_task, split_train_dev
    from workers.engine.training.pipeline import train_task

    config = _train_config(args)
    train, template = _load_examples(args.train, args)
    if args.dev:
        dev, _ = _load_examples(args.dev, args, template)
    else:
        train, dev = split_train_dev(train, 0.1, args.seed)
    spec = infer_task(train, template)
    if args.task_type or args.verbalizer:
        task_type = args.task_type or spec.task_type
        labels = spec.labels if task_type == TaskType.CLASSIFICATION else []
        spec = TaskSpec(
            task_type=task_type,
            template=template,
            labels=labels,
            verbalizer=_pairs(args.verbalizer, "--verbalizer"),
        )
    check_labels(dev, spec, args.dev or "the dev split")
    fm = load_base_model(_base_model(args), args.device)
    bar = tqdm(total=config.steps, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_progress(p: Progress) -> None:
        postfix = {"loss": f"{p.loss:.4f}", "tok/s": f"{p.tokens_per_s:.0f}"}
        if p.best_dev is not None:
            postfix["best_dev"] = f"{p.best_dev:.4f}"
        bar.set_postfix(postfix)
        bar.update(p.step - bar.n)

    artifact = train_task(fm, spec, train, dev, config, on_progress=on_progress)
    bar.close()
    save_artifact(artifact, args.out)
    metrics = artifact.metrics
    summary = {
        "out": args.out,
        "method": config.method,
        "ensemble_size": artifact.ensemble_size,
        "task_type": spec.task_type,
        "labels": spec.labels,
        **metrics,
    }
    _emit(
        args,
        summary,
        [
            f"saved {args.out}: dev {_headline(metrics['dev'])} (best step {metrics['best_step']}, "
            f"{metrics['steps_run']} steps, stopped by {metrics['stop_reason']})"
        ],
    )


def _headline(dev: dict[str, Any]) -> dict[str, Any]:
    """The dev figures for the one-line message; per-label figures and the matrix stay in the JSON."""
    return {k: v for k, v in dev.items() if k not in ("per_label", "confusion")}


def cmd_eval(args: argparse.Namespace) -> None:
    from workers.engine.inference.evaluation import evaluate
    from workers.engine.training.data import check_labels, read_rows, remap_rows, to_examples

    fm, artifact, prompt = _load_prompt(args)
    rows = read_rows(args.data)
    if args.map_column or args.map_label:
        rows = remap_rows(
            rows,
            _pairs(args.map_column, "--map-column"),
            _pairs(args.map_label, "--map-label"),
            args.label_column,
        )
    examples = to_examples(rows, artifact.spec.template, args.label_column, source=args.data)
    check_labels(examples, artifact.spec, args.data)
    # The same detail a version keeps (per-label figures, confusion matrix): in the JSON, not the lines.
    metrics = evaluate(fm, prompt, examples, args.batch_size, detail=True, precision=args.precision)
    lines = [f"{k}: {v}" for k, v in _headline(metrics).items() if k != "members"]
    _emit(args, metrics, lines)


def cmd_export_peft(args: argparse.Namespace) -> None:
    from workers.engine.artifacts.interop import export_peft

    fm, artifact, _ = _load_prompt(args)
    folder = export_peft(artifact, args.out, fm.is_encoder_decoder)
    _emit(
        args,
        {"out": str(folder), "num_virtual_tokens": artifact.prompt_length},
        [f"wrote PEFT adapter {folder}"],
    )


def cmd_import_peft(args: argparse.Namespace) -> None:
    from common.task import TaskSpec
    from workers.engine.artifacts.artifact import save_artifact
    from workers.engine.artifacts.interop import import_peft
    from workers.engine.base_model import load_base_model

    if not args.template:
        raise EngineError("--template is needed: a PEFT adapter does not record how inputs were written.")
    labels = [label.strip() for label in (args.labels or "").split(",") if label.strip()]
    if args.task_type == TaskType.CLASSIFICATION and not labels:
        raise EngineError("--labels is needed for a classification prompt, e.g. --labels negative,positive.")
    spec = TaskSpec(task_type=args.task_type, template=args.template, labels=labels)
    fm = load_base_model(_base_model(args), args.device)
    artifact = import_peft(args.peft, fm, spec)
    save_artifact(artifact, args.out)
    _emit(args, {"out": args.out, "prompt_length": artifact.prompt_length}, [f"saved {args.out}"])


def cmd_baseline(args: argparse.Namespace) -> None:
    from workers.engine.base_model import load_base_model
    from workers.engine.inference.design import design_prompt, pick_shots
    from workers.engine.inference.evaluation import evaluate
    from workers.engine.training.data import check_labels, infer_task

    if args.shots and not args.train:
        raise EngineError("--shots needs --train, where the examples come from.")
    examples, template = _load_examples(args.data, args)
    pool = _load_examples(args.train, args, template)[0] if args.train else []
    spec = infer_task(pool or examples, template)
    check_labels(examples, spec, args.data)
    shots = pick_shots(pool, args.shots, args.seed)
    fm = load_base_model(_base_model(args), args.device)
    metrics = {
        **evaluate(
            fm,
            design_prompt(fm, spec, shots, args.instruction),
            examples,
            args.batch_size,
            precision=args.precision,
        ),
        "shots": args.shots,
    }
    _emit(args, metrics, [f"{k}: {v}" for k, v in metrics.items()])


def cmd_predict(args: argparse.Namespace) -> None:
    from workers.engine.inference.predict import predict

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
    outputs = predict(fm, prompt, rows, max_new_tokens=args.max_new_tokens, precision=args.precision)
    lines = [json.dumps({"input": row, **out}) for row, out in zip(rows, outputs, strict=True)]
    _emit(args, {"outputs": outputs}, [] if args.json else lines)


def cmd_inspect(args: argparse.Namespace) -> None:
    from workers.engine.artifacts.inspection import nearest_tokens, norm_stats

    fm, artifact, _ = _load_prompt(args)
    if artifact.is_prefix:
        # Keys and values live in attention space, not the vocabulary's: report per-layer norms.
        norms = artifact.prompt.float().norm(dim=-1).mean(dim=(2, 3))  # (layers, 2)
        layers = [
            {"layer": i, "key_norm": round(float(k), 4), "value_norm": round(float(v), 4)}
            for i, (k, v) in enumerate(norms.tolist())
        ]
        lines = [f"method prefix, P={artifact.prompt_length}, {len(layers)} layers"]
        lines += [
            f"layer {r['layer']:>2}: key {r['key_norm']:.3f}  value {r['value_norm']:.3f}" for r in layers
        ]
        _emit(args, {"method": artifact.method, "layers": layers}, lines)
        return
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
    "export-peft": cmd_export_peft,
    "import-peft": cmd_import_peft,
    "train": cmd_train,
    "eval": cmd_eval,
    "baseline": cmd_baseline,
    "predict": cmd_predict,
    "inspect": cmd_inspect,
}
