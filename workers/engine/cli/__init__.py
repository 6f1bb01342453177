"""`softserve-engine`: train, evaluate, baseline, predict and inspect soft prompts from the shell.

Bad input exits with status 2 and one sentence on stderr; `--json` makes the last stdout line one
JSON object. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from common.contracts import Method, TaskType
from common.defaults import (
    DEFAULT_PRECISION,
    DEFAULTS,
    EVAL_EVERY,
    GENERATION,
    GENERATION_INIT,
    JOB_DEFAULTS,
    LABELS_INIT,
    PRECISIONS,
    PROMPT_LENGTH,
    STEPS,
    MethodDefaults,
    per_method,
    rate_text,
)
from common.errors import EngineError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


Parser = argparse.ArgumentParser
_TEMPLATE_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\\\": "\\"}


def template_argument(value: str) -> str:
    """A template as typed in a shell: `\\n` and `\\t` are the newline and tab they name, `\\\\` a backslash.

    A shell passes `"Review: {text}\\nSentiment:"` as a backslash and an `n`; a template means a newline.
    """
    out, i = [], 0
    while i < len(value):
        pair = value[i : i + 2]
        if pair in _TEMPLATE_ESCAPES:
            out.append(_TEMPLATE_ESCAPES[pair])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _per_method(value: Callable[[MethodDefaults], str]) -> str:
    return per_method(value, ensemble=False)  # an ensemble's members take their method's settings


def _defaults_epilog() -> str:
    """`train --help`'s closing section: each method's defaults and the measurement behind them."""
    lines = ["defaults by method (an option you give replaces its default):"]
    for method, d in DEFAULTS.items():
        lines.append(f"  {method}: {d.describe()}")
        lines.append(f"    why: {d.reason}")
    return "\n".join(lines)


def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """The options several commands share: the model and output (`common`), how data files are read
    (`data`), and the precision policy (`precision`)."""
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
        "--template",
        type=template_argument,
        default=None,
        help='input template over columns, e.g. "Review: {text}\\nSentiment:"; '
        "\\n and \\t are a newline and a tab, \\\\ a backslash",
    )
    data.add_argument("--label-column", default="label")
    data.add_argument("--batch-size", type=int, default=32, help="rows per forward pass")
    # Training and scoring share one precision policy (workers/engine/precision.py).
    precision = argparse.ArgumentParser(add_help=False)
    precision.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISIONS,
        help="auto (bf16 autocast where the GPU or CPU runs bf16 natively, else fp32), fp32 or bf16",
    )
    return common, data, precision


def _add_train(sub: Any, common: Parser, data: Parser, precision: Parser) -> None:
    train = sub.add_parser(
        "train",
        parents=[common, data, precision],
        help="train a prompt on labelled data",
        epilog=_defaults_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's lines as written
    )
    train.add_argument("--train", required=True, help="CSV, TSV or JSONL file")
    train.add_argument("--dev", default=None, help="dev file; default: a seeded 10%% split of --train")
    train.add_argument("--out", required=True, help="the .safetensors artifact to write")
    train.add_argument("--method", default=Method.PROMPT, help="prompt (prompt tuning), ptuning or prefix")
    train.add_argument("--ptuning-encoder", default="mlp", help="P-tuning's prompt encoder: mlp or lstm")
    train.add_argument(
        "--ensemble",
        type=int,
        default=1,
        metavar="K",
        help="train K prompts (seeds seed..seed+K-1) in one bank; predict by majority vote "
        f"(K > 1: the ensemble's time budget, {DEFAULTS['ensemble'].max_minutes:g} min)",
    )
    train.add_argument("--task-type", choices=tuple(TaskType), default=None)
    train.add_argument("--verbalizer", action="append", default=[], metavar="LABEL=WORDS")
    train.add_argument("--prompt-length", type=int, default=PROMPT_LENGTH)
    train.add_argument(
        "--init",
        default=None,
        help=f"random, vocab, labels, text or file (default: the method's, {_per_method(lambda d: d.init)}; "
        f"a {GENERATION} task starts from {GENERATION_INIT} where that is {LABELS_INIT})",
    )
    train.add_argument("--init-text", default=None)
    train.add_argument("--init-file", default=None, help="a saved prompt to continue from")
    train.add_argument(
        "--optimizer",
        default=None,
        help=f"adafactor or adamw (default: the method's, {_per_method(lambda d: d.optimizer)})",
    )
    train.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default: the method's, {_per_method(lambda d: rate_text(d.learning_rate))})",
    )
    train.add_argument("--weight-decay", type=float, default=1e-5)
    train.add_argument("--train-batch-size", type=int, default=JOB_DEFAULTS.batch_size)
    train.add_argument("--grad-accum", type=int, default=1)
    train.add_argument("--steps", type=int, default=STEPS)
    train.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="wall-clock budget; training stops there keeping its best checkpoint (default: the method's, "
        + ", ".join(f"{m} {d.max_minutes:g}" for m, d in DEFAULTS.items())
        + ")",
    )
    train.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    train.add_argument("--patience", type=int, default=5, help="evaluations without gain before stopping")
    train.add_argument("--dev-eval-limit", type=int, default=500, help="dev rows scored at each evaluation")
    train.add_argument("--max-input-tokens", type=int, default=256)


def _add_eval(sub: Any, common: Parser, data: Parser, precision: Parser) -> None:
    evaluate = sub.add_parser(
        "eval", parents=[common, data, precision], help="score a prompt on labelled data"
    )
    evaluate.add_argument("--prompt", required=True)
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument(
        "--map-column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="domain transfer: read the template's FIELD from this data's COLUMN",
    )
    evaluate.add_argument(
        "--map-label",
        action="append",
        default=[],
        metavar="THEIRS=OURS",
        help="domain transfer: this data's label THEIRS is the prompt's label OURS",
    )


def _add_peft(sub: Any, common: Parser, data: Parser) -> None:
    export = sub.add_parser("export-peft", parents=[common], help="write a prompt as a PEFT adapter folder")
    export.add_argument("--prompt", required=True)
    export.add_argument("--out", required=True, help="the adapter folder to write")

    imports = sub.add_parser(
        "import-peft", parents=[common, data], help="a PEFT prompt-tuning adapter as a prompt"
    )
    imports.add_argument(
        "--peft", required=True, help="folder with adapter_config.json and adapter_model.safetensors"
    )
    imports.add_argument("--out", required=True)
    imports.add_argument("--labels", default=None, help="comma-separated label set of the task")
    imports.add_argument("--task-type", choices=tuple(TaskType), default=TaskType.CLASSIFICATION)


def _add_baseline(sub: Any, common: Parser, data: Parser, precision: Parser) -> None:
    baseline = sub.add_parser(
        "baseline", parents=[common, data, precision], help="prompt design: zero/k-shot, no training"
    )
    baseline.add_argument("--data", required=True)
    baseline.add_argument("--train", default=None, help="where k-shot examples come from")
    baseline.add_argument("--shots", type=int, default=0)
    baseline.add_argument(
        "--instruction", default=None, help="text before the examples (default: names the labels)"
    )


def _add_prompt_tools(sub: Any, common: Parser, precision: Parser) -> None:
    """predict and inspect: run a saved prompt on inputs, or look at its vectors."""
    predict = sub.add_parser("predict", parents=[common, precision], help="run a prompt on inputs")
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softserve-engine", description=__doc__.splitlines()[0])
    common, data, precision = _parents()
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub, common, data, precision)
    _add_eval(sub, common, data, precision)
    _add_peft(sub, common, data)
    _add_baseline(sub, common, data, precision)
    _add_prompt_tools(sub, common, precision)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("always", message="The T5 model")  # advice worth showing
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from workers.engine.cli.commands import COMMANDS

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
