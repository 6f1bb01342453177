"""docs/metrics.md and the code agree: every metric the code defines is documented, with its type, and
every documented metric exists."""

from __future__ import annotations

import re

import pytest
from prometheus_client.metrics import MetricWrapperBase
from softserve.ops import metrics as web_metrics

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
    for module in (web_metrics, worker_metrics, serving_metrics):
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
