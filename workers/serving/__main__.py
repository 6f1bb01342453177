"""`python -m workers.serving`: N worker processes for one base model (N = SERVING_WORKERS).

With one worker this process is the worker. With more it supervises: it starts each worker as a child,
restarts one that dies, and on SIGTERM passes the signal on and waits for every batch in hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from types import FrameType

from common.settings import child_env
from workers import logs
from workers.serving.config import ServingConfig
from workers.serving.worker import serve

logger = logging.getLogger(__name__)
RESTART_DELAY_S = 2.0


def _supervise(config: ServingConfig) -> int:
    def start(i: int) -> subprocess.Popen[bytes]:
        env = child_env(SERVING_WORKERS="1", SERVING_BASE_MODEL=config.base_model)
        if config.metrics_port:
            env["SERVING_METRICS_PORT"] = str(config.metrics_port + i)
        return subprocess.Popen([sys.executable, "-m", "workers.serving"], env=env)

    children = {i: start(i) for i in range(config.workers)}
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:
        for i, child in list(children.items()):
            code = child.poll()
            if code is not None and not stopping:
                logger.warning("serving worker %d exited with %s; restarting", i, code)
                time.sleep(RESTART_DELAY_S)
                children[i] = start(i)
        if stopping and all(c.poll() is not None for c in children.values()):
            return 0
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.serving", description=__doc__)
    parser.add_argument("--base-model", help="overrides SERVING_BASE_MODEL")
    parser.add_argument("--workers", type=int, help="overrides SERVING_WORKERS")
    args = parser.parse_args(argv)
    logs.configure()  # one JSON object per line, like the web and the tuning workers
    overrides = {k: v for k, v in {"base_model": args.base_model, "workers": args.workers}.items() if v}
    config = ServingConfig.from_env(**overrides)
    if config.workers > 1:
        return _supervise(config)
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
