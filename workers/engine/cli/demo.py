"""`make run` until the platform exists: train a prompt on the shared SST-2 data and predict with it."""

from __future__ import annotations

import sys
from pathlib import Path

from common.settings import DEMO_DIR, DEMO_STEPS
from workers.engine.cli import main as cli

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "sst2"
OUT = Path(DEMO_DIR.read()) / "sst2-prompt.safetensors"
TEMPLATE = "Review: {text}\nSentiment:"


def main() -> int:
    if not (DATA / "train.csv").is_file():
        print(f"The demo needs the shared SST-2 data at {DATA}.", file=sys.stderr)
        return 2
    steps = DEMO_STEPS.read()
    print(
        f"Training a 20-vector prompt on SST-2 for {steps} steps (the default model, on this machine's CPU)…"
    )
    code = cli(
        [
            "train",
            "--train",
            str(DATA / "train.csv"),
            "--dev",
            str(DATA / "dev.csv"),
            "--template",
            TEMPLATE,
            "--out",
            str(OUT),
            "--steps",
            steps,
            "--eval-every",
            "20",
            "--dev-eval-limit",
            "200",
            "--max-minutes",
            "5",
        ]
    )
    if code:
        return code
    print("\nPredicting with the stored prompt:")
    return cli(
        [
            "predict",
            "--prompt",
            str(OUT),
            "--text",
            "a gorgeous, moving and funny film",
            "--text",
            "two hours of my life I will never get back",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
