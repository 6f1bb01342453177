"""Helpers of the deployment checks: the repository's files, the validators, .env.example's names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of a validator; a missing one FAILS the test (make setup installs it), never skips it."""
    found = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make setup` (it comes with the dev dependencies)")
    return found


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def env_example() -> dict[str, str]:
    """The variables .env.example lists, with their embedded defaults."""
    names: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            names[match.group(1)] = match.group(2)
    return names


# Name parts that mark a secret (TOKENIZERS_PARALLELISM is not one: parts are whole words).
SECRET_PARTS = {"SECRET", "PASSWORD", "PASSWD", "TOKEN", "KEY", "CREDENTIALS", "AUTH", "PRIVATE"}


def looks_secret(name: str) -> bool:
    return bool(SECRET_PARTS & set(name.upper().split("_")))


# Secrets compose refuses to start without (each `${NAME:?…}` in docker-compose.yml).
SECRETS = {
    "DJANGO_SECRET_KEY": "compose-check-secret",
    "POSTGRES_PASSWORD": "compose-check-postgres",
    "REDIS_PASSWORD": "compose-check-redis",
    "MINIO_ROOT_PASSWORD": "compose-check-minio",
    "FLOWER_BASIC_AUTH": "ops:compose-check-flower",
    "GRAFANA_ADMIN_PASSWORD": "compose-check-grafana",
    "METRICS_TOKEN": "compose-check-metrics",
}


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`docker-compose config` with only the given variables (an empty env file: a developer's .env
    must not change what is checked)."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    return run(tool("docker-compose"), "--env-file", str(empty), "config", env={**clean, **env})


def celery_worker_queues(command: list[str]) -> list[str] | None:
    """The queues a `celery … worker` command consumes (its -Q; every queue of the Celery config without
    one); None for any other command."""
    from workers.celeryconf import app

    if not command or command[0] != "celery" or "worker" not in command:
        return None
    for i, arg in enumerate(command):
        if arg in ("-Q", "--queues"):
            return command[i + 1].split(",")
        if arg.startswith(("-Q", "--queues=")):
            return arg.removeprefix("--queues=").removeprefix("-Q").split(",")
    return [queue.name for queue in app.conf.task_queues]


def assert_queues_split(commands: dict[str, list[str]]) -> None:
    """Every queue of the Celery config is consumed by some worker, and none that takes tuning jobs also
    takes the default queue: the reconciler, evaluations and webhooks must never wait behind training."""
    from common.contracts import QUEUE_DEFAULT, QUEUE_GPU
    from workers.celeryconf import app

    declared = {queue.name for queue in app.conf.task_queues}
    assert declared == {QUEUE_GPU, QUEUE_DEFAULT}, declared
    workers = {name: queues for name, cmd in commands.items() if (queues := celery_worker_queues(cmd))}
    consumed = {queue for queues in workers.values() for queue in queues}
    assert consumed == declared, (
        f"queues nobody consumes: {declared - consumed}, unknown: {consumed - declared}"
    )
    for name, queues in workers.items():
        assert not (QUEUE_GPU in queues and QUEUE_DEFAULT in queues), f"{name} consumes {queues}"
