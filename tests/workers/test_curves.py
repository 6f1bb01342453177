"""The live curve's points: one every few seconds of training (mean loss since the last), one at every dev
evaluation, one at the first step; and the bound on what a job row keeps."""

from __future__ import annotations

from workers.curves import CurvePoints, thin_history
from workers.engine.training.results import Progress


def _progress(step: int, loss: float, dev: dict | None = None) -> Progress:
    return Progress(step, 100, loss, 50.0, step * 0.5, 10.0, dev)


def test_a_point_at_the_first_step_then_every_interval_and_at_every_evaluation():
    curve = CurvePoints(every_s=2.0)
    points = [curve.point(_progress(s, float(s)), now=0.5 * s) for s in range(1, 11)]
    made = [p for p in points if p]
    # t = 0.5 (first step), 2.5, 4.5: the mean loss of the steps since the previous point
    assert [p["step"] for p in made] == [1, 5, 9]
    assert made[1]["loss"] == (2 + 3 + 4 + 5) / 4 and made[1]["tokens_per_s"] == 50.0
    evaluation = curve.point(_progress(10, 1.0, {"accuracy": 0.75, "n": 8}), now=5.0)
    assert evaluation["accuracy"] == 0.75 and evaluation["step"] == 10  # before the interval: an evaluation


def test_thinning_leaves_short_histories_alone_and_halves_long_ones_evenly():
    short = [{"step": s, "loss": 1.0} for s in range(1, 11)]
    assert thin_history(short, most=10) == short
    long = [{"step": s, "loss": 1.0} for s in range(1, 101)]
    thinned = thin_history(long, most=40)
    assert 20 <= len(thinned) <= 40
    assert thinned[0]["step"] == 1 and thinned[-1]["step"] == 100
    only_evaluations = [{"step": s, "accuracy": 0.5, "n": 4} for s in range(1, 101)]
    assert 20 <= len(thin_history(only_evaluations, most=40)) <= 40  # too many evaluations alone: thinned too
