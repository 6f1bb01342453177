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


def test_history_files_are_never_shown_as_a_last_run(tmp_path, monkeypatch):
    """Hand-written figures (issue 22) live in history/: the report shows them apart, as history."""
    import json

    monkeypatch.setattr(figures, "FIGURES_DIR", tmp_path)
    monkeypatch.setattr(figures, "SCALE", "ci")
    figures.record_figures("kill", "A kill", {"sent": 40, "lost": 0})
    (tmp_path / "history").mkdir()
    old = {"scenario": "kill", "title": "A kill", "scale": "full", "recorded_at": "then", "commit": "≤ abc"}
    (tmp_path / "history" / "kill.full.json").write_text(json.dumps({**old, "figures": {"sent": 500}}))
    assert set(figures.load_runs()["kill"]) == {"ci"}
    text = report.render()
    assert "No full-scale run recorded yet." in text
    history = text.split("### History (not current figures)")[1]
    assert "`kill` | full | then | `≤ abc` | sent 500" in history


def test_the_committed_full_scale_figures_name_the_commit_they_measured():
    """A committed current figure names a real commit (a hand-written `≤ …` one belongs in history/)."""
    for scenario, by_scale in figures.load_runs().items():
        for scale, run in by_scale.items():
            assert not run["commit"].startswith("≤"), f"{scenario}.{scale}: {run['commit']}"
