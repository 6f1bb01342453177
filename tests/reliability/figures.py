"""Scale and figures of the reliability scenarios.

Every scenario in tests/reliability runs real processes and is bounded in time. `make test` runs each at a
reduced count (RELIABILITY_SCALE=ci, the default); `make reliability` runs them at full scale
(RELIABILITY_SCALE=full) and then regenerates the figures section of docs/reliability.md from what each
scenario recorded (`python -m tests.reliability.report`).

Each scenario keeps its last run at each scale apart (`<scenario>.full.json`, `<scenario>.ci.json`, under
docs/reliability-figures/, committed with the code they measured): a CI-scale run never replaces the last
full-scale figures, and the report shows both, each with its date and commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

FULL_SCALE = os.environ.get("RELIABILITY_SCALE", "ci") == "full"
SCALE = "full" if FULL_SCALE else "ci"
SCALES = ("full", "ci")
# Relative to the repository root when relative (as in .env.example).
FIGURES_DIR = ROOT / os.environ.get("RELIABILITY_FIGURES_DIR", "docs/reliability-figures")


def scaled(ci: int, full: int) -> int:
    """A scenario's count: `ci` in `make test`, `full` in `make reliability`."""
    return full if FULL_SCALE else ci


def figures_path(scenario: str, scale: str) -> Path:
    return FIGURES_DIR / f"{scenario}.{scale}.json"


def _commit() -> str:
    """The commit the figures measured; `+changes` when the work tree differed from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        # The figures folder itself is left out: an earlier run's files there change nothing measured.
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){FIGURES_DIR}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if changed else head


def record_figures(scenario: str, title: str, figures: dict[str, Any]) -> Path:
    """Store one scenario's figures from this run (JSON) as the last run at this run's scale."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = figures_path(scenario, SCALE)
    payload = {
        "scenario": scenario,
        "title": title,
        "scale": SCALE,
        "recorded_at": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "figures": figures,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_history() -> list[dict[str, Any]]:
    """Figures kept for the record only (FIGURES_DIR/history/): written by hand, or by a test that
    counted differently from today's, so they measure no current code; never shown as a last run."""
    paths = sorted((FIGURES_DIR / "history").glob("*.json"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def load_runs() -> dict[str, dict[str, dict[str, Any]]]:
    """{scenario: {scale: run}} of every recorded run."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(FIGURES_DIR.glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        runs.setdefault(run["scenario"], {})[run["scale"]] = run
    return runs
