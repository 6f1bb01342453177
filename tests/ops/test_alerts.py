"""The alert rules load in Prometheus' own checker, and each alert fires on the series its test feeds it."""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import ROOT

RULES = ROOT / "deploy" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is needed (Debian package `prometheus`; `make setup` installs it as root)"
    return path


def test_promtool_check_rules():
    run = subprocess.run(
        [_promtool(), "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 5 rules found" in run.stdout


def test_promtool_test_rules_shows_each_alert_firing():
    run = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rules = (RULES / "alerts.yml").read_text()
    tests = (RULES / "alerts_test.yml").read_text()
    alerts = [
        line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")
    ]
    assert len(alerts) == 5
    for alert in alerts:  # every alert has a test case that expects it to fire
        assert f"alertname: {alert}\n        exp_alerts:\n          - exp_labels" in tests, alert


def test_grafana_dashboard_queries_are_valid_promql_on_documented_metrics(tmp_path):
    import json
    import re

    from tests.ops.test_metrics_doc import documented

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "softserve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 20
    names = set(documented())
    for expr in exprs:
        for used in re.findall(r"softserve_[a-z_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", used)
            assert used in names or base in names, f"{used} (in {expr!r}) is not in docs/metrics.md"
    # promtool parses every query: written as recording rules, checked like the alert rules.
    rules = tmp_path / "panels.yml"
    body = "\n".join(
        f"      - record: panel:query{i}\n        expr: {json.dumps(e)}" for i, e in enumerate(exprs)
    )
    rules.write_text(f"groups:\n  - name: panels\n    rules:\n{body}\n")
    run = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
