"""The report keeps each scenario's last full-scale figures apart from its last CI-scale ones."""

from __future__ import annotations

from tests.reliability import figures, report


def test_a_ci_run_does_not_replace_the_last_full_scale_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "FIGURES_DIR", tmp_path)
    monkeypatch.setattr(figures, "SCALE", "full")
    figures.record_figures("kill", "A kill", {"sent": 500, "lost": 0})
    monkeypatch.setattr(figures, "SCALE", "ci")
    figures.record_figures("kill", "A kill", {"sent": 40, "lost": 0})
    runs = figures.load_runs()
    assert runs["kill"]["full"]["figures"]["sent"] == 500
    assert runs["kill"]["ci"]["figures"]["sent"] == 40
    assert runs["kill"]["full"]["commit"] and runs["kill"]["full"]["recorded_at"]
    text = report.render()
    header = next(line for line in text.splitlines() if line.startswith("| figure"))
    assert "full scale:" in header and "ci scale:" in header and "commit" in header
    assert "| sent | 500 | 40 |" in text
