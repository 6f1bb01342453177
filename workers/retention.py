"""Prediction inputs past their prompt's retention period are forgotten (set to NULL), by a periodic task.

A prompt keeps the inputs of its predictions only when it opts in (`keep_inputs`), and only for its
`input_retention_days`; this is the worker side of that promise. SQLAlchemy Core on the tables Django's
migrations own (as workers/jobdb.py does): no Django in the workers. One UPDATE per distinct retention
period (few: 1 to 365 days), each using the (tenant, prompt, created_at) index through its prompt ids.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

log = logging.getLogger(__name__)

PREDICTIONS = sa.table(
    "serving_prediction", sa.column("prompt_id"), sa.column("inputs"), sa.column("created_at")
)
PROMPTS = sa.table("prompts_taskprompt", sa.column("id"), sa.column("input_retention_days"))


def expire_prediction_inputs(engine: sa.Engine, now: datetime | None = None) -> int:
    """Forget the inputs of every prediction older than its prompt's retention; returns how many."""
    now = now or datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        now = now.astimezone(UTC).replace(tzinfo=None)  # Django keeps naive UTC text there
    forgotten = 0
    with engine.begin() as conn:
        periods = conn.execute(sa.select(PROMPTS.c.input_retention_days).distinct()).scalars().all()
        for days in periods:
            prompts = sa.select(PROMPTS.c.id).where(PROMPTS.c.input_retention_days == days)
            result = conn.execute(
                sa.update(PREDICTIONS)
                .where(
                    PREDICTIONS.c.prompt_id.in_(prompts),
                    PREDICTIONS.c.inputs.is_not(None),
                    PREDICTIONS.c.created_at < now - timedelta(days=int(days)),
                )
                .values(inputs=None)
            )
            forgotten += result.rowcount or 0
    if forgotten:
        log.info("forgot the inputs of %d predictions past their retention period", forgotten)
    return forgotten
