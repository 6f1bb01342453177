"""One JSON object per line, for the web process and the workers alike (structlog over stdlib logging).

Anything logged through the standard library (Django, Celery, our module loggers) is rendered by the
same formatter, with the context bound in `structlog.contextvars`: `request_id` on web lines, `job_id`,
`attempt` and `worker` on a tuning worker's lines while it runs a job. SOFTSERVE_LOG_FORMAT=console gives
readable lines for a terminal instead; SOFTSERVE_LOG_LEVEL sets the level.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Mapping
from typing import Any

import structlog

from common.settings import LOG_FORMAT, LOG_LEVEL

FORMATS = ("json", "console")


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]


def logging_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict (Django's LOGGING takes it as it is)."""
    fmt = LOG_FORMAT.read(env).lower()  # env: the process environment when None
    if fmt not in FORMATS:
        raise ValueError(f"SOFTSERVE_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    level = LOG_LEVEL.read(env).upper()
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "softserve": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": _shared(),
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
            }
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "softserve"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # Django's own request logger would otherwise add a second handler of its own.
            "django": {"handlers": ["stderr"], "level": level, "propagate": False},
            "gunicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def configure(env: Mapping[str, str] | None = None) -> None:
    """Route every logger of this process through the JSON (or console) formatter."""
    logging.config.dictConfig(logging_config(env))
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
