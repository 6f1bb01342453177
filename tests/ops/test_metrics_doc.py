"""docs/metrics.md and the code agree: every metric the code defines is documented, with its type, and
every documented metric exists."""

from __future__ import annotations

import ast
import re

import pytest
from prometheus_client.metrics import MetricWrapperBase

from softserve.ops import metrics as web_metrics
from softserve.tenancy import throttling
from tests.conftest import ROOT
from workers import metrics as worker_metrics
from workers.fleet import DeviceProbe
from workers.serving import metrics as serving_metrics

ROW = re.compile(r"^\| `(softserve_[a-z_]+)` \| (counter|gauge|histogram) \|")


def documented() -> dict[str, str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := ROW.match(line))}


def _exposed(metric: MetricWrapperBase) -> tuple[str, str]:
    return (f"{metric._name}_total" if metric._type == "counter" else metric._name), metric._type


def defined() -> dict[str, str]:
    out: dict[str, str] = {}
    for module in (web_metrics, throttling, worker_metrics, serving_metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                name, kind = _exposed(value)
                out[name] = kind
    collectors = [web_metrics.QueueCollector(), worker_metrics.DeviceCollector(DeviceProbe())]
    for collector in collectors:
        families = list(collector.collect())
        assert families, f"{type(collector).__name__} collected nothing"
        out.update({family.name: family.type for family in families})
    return out


@pytest.mark.django_db
def test_every_metric_in_the_code_is_in_docs_metrics_md_and_back():
    doc, code = documented(), defined()
    assert len(doc) >= 25, "docs/metrics.md's tables were not parsed"
    assert sorted(set(code) - set(doc)) == [], "metrics missing from docs/metrics.md"
    assert sorted(set(doc) - set(code)) == [], "docs/metrics.md lists metrics the code no longer has"
    assert {n: doc[n] for n in code} == code, "a metric's type in docs/metrics.md is wrong"


def test_serving_prompt_labels_are_bounded(monkeypatch):
    monkeypatch.setattr(serving_metrics, "TOP_PROMPTS", 2)
    monkeypatch.setattr(serving_metrics, "_labelled", set())
    pairs = [serving_metrics.prompt_labels("t", f"p{i}") for i in range(5)]
    assert pairs == [("t", "p0"), ("t", "p1"), ("other", "other"), ("other", "other"), ("other", "other")]
    assert serving_metrics.prompt_labels("t", "p1") == ("t", "p1")


METRIC_CLASSES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
}
CODE_FOLDERS = ("platform", "workers", "webui")


def declared_in_source() -> dict[str, tuple[str, str]]:
    """Every metric any module of the code declares (a prometheus-client class called with a literal
    `softserve_…` name), found by reading the source: a metric defined in a module the import-based
    list above does not name is caught here. Name as exported -> (type, where)."""
    out: dict[str, tuple[str, str]] = {}
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if called not in METRIC_CLASSES or not isinstance(first, ast.Constant):
                    continue
                if not isinstance(first.value, str) or not first.value.startswith("softserve_"):
                    continue
                kind = METRIC_CLASSES[called]
                exported = f"{first.value}_total" if called == "Counter" else first.value
                out[exported] = (kind, f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def test_every_metric_declared_anywhere_in_the_source_is_documented():
    doc, found = documented(), declared_in_source()
    assert len(found) >= 25, "the source scan found too few metrics: is it reading the code?"
    missing = {name: where for name, (_, where) in found.items() if name not in doc}
    assert missing == {}, f"metrics exported but missing from docs/metrics.md: {missing}"
    wrong = {name: (kind, doc[name]) for name, (kind, _) in found.items() if doc[name] != kind}
    assert wrong == {}, f"types in docs/metrics.md differ from the code (code, doc): {wrong}"
    assert "softserve_rate_limit_unavailable_total" in found  # the one this scan was added for
