"""A training run's wall-clock budget, final work included: the trainer stops early enough that the
evaluation at the stop, the final dev evaluation and what its caller does next (report, nearest tokens,
export) still end within the budget.

Nothing here is a constant about evaluation speed: the seconds a dev row costs are measured while the run
trains (a small timed probe after the first step, then every dev evaluation), so the reserve follows the
model, the device, the labels and whatever the scoring code costs today.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# Rows timed after the first step, before any dev evaluation has measured the speed.
CALIBRATION_ROWS = 4
# The most of the budget one dev evaluation during training may take (its sample shrinks to fit), and the
# most the final evaluation may take (past that it scores a seeded sample of dev and says so).
PROBE_SHARE = 0.2
FINAL_SHARE = 0.2
# Neither sample shrinks below this many rows (or all of dev, when smaller).
MIN_EVAL_ROWS = 8
# Evaluation times are estimates (rows differ in length): the reserve holds this much more.
SAFETY = 1.25
# After training: the report, nearest tokens, the export and the database writes (small, not measured
# before they happen): this many seconds, or this share of a short budget.
FINISH_S = 3.0
FINISH_SHARE = 0.05
# Step times kept for the estimate of the next step (the longest of them: batches differ in length).
RECENT_STEPS = 5


@dataclass
class Budget:
    """The clock of one training run. `budget_s` is infinite when the run has no time limit."""

    budget_s: float
    dev_rows: int  # all of a member's dev split
    members: int
    final: bool = True  # a final evaluation follows training (the pipeline's); False: the trainer alone
    s_per_row: float | None = None  # measured seconds per (member, dev row) scored
    probe_rows: int | None = None  # rows of each dev evaluation, once planned
    evaluated: bool = False  # a dev evaluation has run (there is a best to compare the last prompt with)
    reuse_final: bool = False  # the final score comes from the best evaluation's predictions
    _steps: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_STEPS))

    @property
    def limited(self) -> bool:
        return math.isfinite(self.budget_s)

    @property
    def finish_s(self) -> float:
        return min(FINISH_S, FINISH_SHARE * self.budget_s) if self.limited else 0.0

    def step_took(self, seconds: float) -> None:
        self._steps.append(seconds)

    def measured(self, seconds: float, rows: int) -> None:
        """An evaluation of `rows` (member, row) pairs took `seconds`."""
        if rows > 0:
            self.s_per_row = seconds / rows

    def _rows_in(self, seconds: float) -> int:
        return int(seconds / (SAFETY * self.members * (self.s_per_row or 0.0) + 1e-12))

    def plan_probe(self, wanted: int) -> int:
        """How many dev rows each evaluation during training scores: `wanted` (the configured probe), fewer
        where that would take more than PROBE_SHARE of the budget. A single prompt whose probe is all of dev
        keeps it while dev fits in the end's whole share: its final score then costs no second pass."""
        if not self.limited or self.s_per_row is None:
            return wanted
        whole_dev = self.members == 1 and wanted == self.dev_rows
        if whole_dev and self._rows_in((PROBE_SHARE + FINAL_SHARE) * self.budget_s) >= wanted:
            return wanted
        fits = self._rows_in(PROBE_SHARE * self.budget_s)
        return min(wanted, max(min(MIN_EVAL_ROWS, wanted), fits))

    def final_rows(self, left_s: float | None = None) -> int:
        """Rows the final evaluation scores: all of dev, or as many as fit in its share of the budget (or in
        `left_s`, the time actually left, when that is more); never fewer than a dev evaluation's. Before any
        dev evaluation it has the evaluation at the stop's share too: none runs then (see `reserve_s`)."""
        if not self.limited or self.s_per_row is None:
            return self.dev_rows
        room = (FINAL_SHARE if self.evaluated else PROBE_SHARE + FINAL_SHARE) * self.budget_s
        if left_s is not None:
            room = max(room, left_s - self.finish_s)
        floor = max(self.probe_rows or 0, min(MIN_EVAL_ROWS, self.dev_rows))
        return min(self.dev_rows, max(floor, self._rows_in(room)))

    def skip_stop_probe(self) -> bool:
        """Training stops for time before any dev evaluation, and a final evaluation follows: the last prompt
        is the only one there is, so it is kept and scored once, by the final evaluation."""
        return self.final and not self.evaluated

    def reserve_s(self) -> float:
        """Time to keep for the end: the evaluation at the stop (unless `skip_stop_probe`), the final
        evaluation (nothing when it reuses the best evaluation's predictions) and the finish."""
        if not self.limited:
            return 0.0
        per_row = SAFETY * self.members * (self.s_per_row or 0.0)
        probe = 0.0 if self.skip_stop_probe() else (self.probe_rows or 0) * per_row
        final = self.final_rows() * per_row if self.final and not self.reuse_final else 0.0
        return probe + final + self.finish_s

    def next_step_s(self) -> float:
        return max(self._steps, default=0.0)

    def out_of_time(self, elapsed_s: float) -> bool:
        """Whether one more step would leave less than the reserve. Asked again right after a dev evaluation:
        a yes there stops training with that evaluation as the one at the stop."""
        if not self.limited:
            return False
        return self.budget_s - elapsed_s < self.next_step_s() + self.reserve_s()
