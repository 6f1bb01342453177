"""Scale and figures of the reliability scenarios.

Every scenario in tests/reliability runs real processes and is bounded in time. `make test` runs each at a
reduced count (RELIABILITY_SCALE=ci, the default); `make reliability` runs them at full scale
(RELIABILITY_SCALE=full) and then regenerates the figures section of docs/reliability.md from what each
scenario recorded (`python -m tests.reliability.report`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

FULL_SCALE = os.environ.get("RELIABILITY_SCALE", "ci") == "full"
FIGURES_DIR = Path(os.environ.get("RELIABILITY_FIGURES_DIR", ROOT / "var" / "reliability"))


def scaled(ci: int, full: int) -> int:
    """A scenario's count: `ci` in `make test`, `full` in `make reliability`."""
    return full if FULL_SCALE else ci


def record_figures(scenario: str, title: str, figures: dict[str, Any]) -> Path:
    """Store one scenario's figures from this run (JSON), for the report to render."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{scenario}.json"
    payload = {
        "scenario": scenario,
        "title": title,
        "scale": "full" if FULL_SCALE else "ci",
        "recorded_at": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "figures": figures,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
