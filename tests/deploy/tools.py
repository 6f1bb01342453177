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
