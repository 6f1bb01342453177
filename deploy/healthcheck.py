"""Health checks of the one image (Docker HEALTHCHECK, compose healthchecks, Kubernetes exec probes).

    python deploy/healthcheck.py http URL    # healthy when URL answers 200 (web /healthz, a worker's port)
    python deploy/healthcheck.py broker      # healthy when the Celery broker (CELERY_BROKER_URL) answers

Standard library only for `http` (no Django, no torch: a probe must stay cheap); `broker` imports kombu,
which the image has for Celery. Exit 0 when healthy, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def check_http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} is unreachable: {exc}"


def check_broker() -> str | None:
    from kombu import Connection

    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url:
        return "CELERY_BROKER_URL is not set"
    try:
        with Connection(url, connect_timeout=TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_S)
    except Exception as exc:  # any failure is an unhealthy answer, reported on stderr
        return f"the broker is unreachable: {type(exc).__name__}: {exc}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "http":
        problem = check_http(argv[1])
    elif argv == ["broker"]:
        problem = check_broker()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
