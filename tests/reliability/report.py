"""Regenerate the figures section of docs/reliability.md from each scenario's last recorded runs: per
scenario, the last full-scale run and the last CI-scale run side by side, each with its date and commit."""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.conftest import ROOT
from tests.reliability.figures import SCALES, load_history, load_runs

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _section(scenario: str, by_scale: dict[str, dict[str, Any]]) -> str:
    scales = [scale for scale in SCALES if scale in by_scale]
    title = by_scale[scales[0]]["title"]
    names: list[str] = []
    for scale in scales:
        names += [name for name in by_scale[scale]["figures"] if name not in names]
    head = " | ".join(
        f"{scale} scale: {run['recorded_at']}, commit `{run.get('commit', 'unknown')}`"
        for scale, run in ((scale, by_scale[scale]) for scale in scales)
    )
    rows = "\n".join(
        f"| {name} | "
        + " | ".join(_value(by_scale[scale]["figures"].get(name, "—")) for scale in scales)
        + " |"
        for name in names
    )
    missing = [scale for scale in SCALES if scale not in by_scale]
    note = f"\n\nNo {missing[0]}-scale run recorded yet." if missing else ""
    return f"### {title}\n\n`{scenario}`{note}\n\n| figure | {head} |\n|---|{'---|' * len(scales)}\n{rows}\n"


HISTORY_NOTE = (
    "Kept for the record, not as measurements of the current code: these were written by hand (their "
    "commit reads `≤ …`, not one the run measured), and the restart test has since changed what it counts "
    "(503s per outage window, recovery to the last 503). `make reliability` records full-scale runs "
    "afresh; until then the sections above show no full-scale run for these scenarios."
)


def _history(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return ""
    rows = "\n".join(
        f"| `{run['scenario']}` | {run['scale']} | {run['recorded_at']} | `{run.get('commit', 'unknown')}` | "
        + ", ".join(f"{k} {_value(v)}" for k, v in run["figures"].items())
        + " |"
        for run in runs
    )
    return (
        f"### History (not current figures)\n\n{HISTORY_NOTE}\n\n"
        f"| scenario | scale | recorded | commit | figures |\n|---|---|---|---|---|\n{rows}\n"
    )


def render() -> str:
    runs = load_runs()
    sections = [_section(scenario, runs[scenario]) for scenario in sorted(runs)]
    history = _history(load_history())
    if history:
        sections.append(history)
    return "\n".join(sections) or "No scenario has recorded figures yet: run `make reliability`.\n"


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC} lacks the {START} / {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{render()}{END}{tail}", encoding="utf-8")
    print(f"wrote the figures of {len(load_runs())} scenarios into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
