"""gunicorn settings for the platform (`gunicorn softserve.wsgi --chdir platform -c deploy/gunicorn.conf.py`).

Prometheus across processes: every gunicorn worker writes its metrics to files under
PROMETHEUS_MULTIPROC_DIR and `/metrics` (any worker) adds them up. The folder is emptied when the
master starts (stale files would count twice) and a dead worker's live gauges are dropped.
Without PROMETHEUS_MULTIPROC_DIR the master makes a private folder, so `/metrics` is never per-process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# The serving-mode system check (softserve/serving/apps.py) reads it: embedded serving loads a
# model per process.
os.environ.setdefault("WEB_CONCURRENCY", str(workers))
threads = int(os.environ.get("WEB_THREADS", "16"))
# Logs are JSON lines from the application; gunicorn's own error log goes to stderr.
accesslog = None
errorlog = "-"


def on_starting(server) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = tempfile.mkdtemp(prefix="softserve-web-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    path = Path(folder)
    if path.exists():
        for item in path.iterdir():
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
    path.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
