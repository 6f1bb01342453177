"""Regenerate the figures section of docs/reliability.md from the scenarios' last recorded run."""

from __future__ import annotations

import json
import sys

from tests.conftest import ROOT
from tests.reliability.figures import FIGURES_DIR

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return str(value)


def render() -> str:
    sections = []
    for path in sorted(FIGURES_DIR.glob("*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        rows = "\n".join(f"| {name} | {_value(value)} |" for name, value in run["figures"].items())
        sections.append(
            f"### {run['title']}\n\n`{run['scenario']}` — scale `{run['scale']}`, "
            f"run {run['recorded_at']}\n\n"
            f"| figure | value |\n|---|---|\n{rows}\n"
        )
    return "\n".join(sections) or "No scenario has recorded figures yet: run `make reliability`.\n"


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC} lacks the {START} / {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{render()}{END}{tail}", encoding="utf-8")
    print(f"wrote the figures of {len(list(FIGURES_DIR.glob('*.json')))} scenarios into {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
