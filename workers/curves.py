"""A training job's curve in its metric history: a loss and tokens/s point every few seconds, every dev
evaluation's metric, and a bounded number of points kept on the job row (older points thinned evenly).

The job page draws these points while the worker trains (webui/views/jobs.py `curves`); the trainer's
own per-step history stays in the engine's checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from common.contracts import METRIC_HISTORY_MAX_POINTS

if TYPE_CHECKING:  # jobdb imports this module: no torch for it
    from workers.engine.training.results import Progress


class CurvePoints:
    """Turns the trainer's per-step progress into history points: one when `every_s` has passed since
    the last (the mean loss of the steps in between), one at every dev evaluation, and one at the first
    step, so the chart has a point as soon as training runs."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self._last_at: float | None = None
        self._losses: list[float] = []

    def point(self, progress: Progress, now: float) -> dict[str, Any] | None:
        self._losses.append(progress.loss)
        due = self._last_at is None or now - self._last_at >= self.every_s
        if not (due or progress.dev):
            return None
        point: dict[str, Any] = {
            "step": progress.step,
            "loss": round(sum(self._losses) / len(self._losses), 4),
            "tokens_per_s": round(progress.tokens_per_s, 1),
            "elapsed_s": round(progress.elapsed_s, 1),
            **(progress.dev or {}),
        }
        self._last_at, self._losses = now, []
        return point


def _is_step(point: dict[str, Any]) -> bool:
    return "step" in point and "event" not in point


def _is_loss_only(point: dict[str, Any]) -> bool:
    return _is_step(point) and "n" not in point  # a dev evaluation's figures carry its row count


def _bucketed(history: list[dict[str, Any]], stride: int, evaluations_too: bool) -> list[dict[str, Any]]:
    """The first point of each `stride` steps (loss-only points, or every step point), the last kept."""
    last = max((i for i, p in enumerate(history) if _is_step(p)), default=-1)
    seen: set[int] = set()
    kept = []
    for i, point in enumerate(history):
        thinnable = _is_loss_only(point) or (evaluations_too and _is_step(point))
        if thinnable and i != last:
            bucket = int(point["step"]) // stride
            if bucket in seen:
                continue
            seen.add(bucket)
        kept.append(point)
    return kept


def thin_history(
    history: list[dict[str, Any]], most: int = METRIC_HISTORY_MAX_POINTS
) -> list[dict[str, Any]]:
    """`history` with at most `most` step points: past that, one loss point per `stride` steps, the stride
    doubling until they fit (so the points stay evenly spread over the whole run and a later thinning keeps
    a subset of an earlier one); dev evaluations too only when they alone are too many. The last point and
    every event (a resume) stay."""
    if sum(map(_is_step, history)) <= most:
        return history
    top = max(int(p["step"]) for p in history if _is_step(p))
    for evaluations_too in (False, True):
        stride = 2
        while stride <= 2 * max(top, 1):
            kept = _bucketed(history, stride, evaluations_too)
            if sum(map(_is_step, kept)) <= most:
                return kept
            stride *= 2
    return kept
