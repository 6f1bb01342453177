"""Real servers for tests that run the platform the production way: gunicorn, throwaway redis-server and
PostgreSQL instances (started and restarted by the test), a TCP server that accepts and never answers,
and a small HTTP client. Every helper fails loudly when its server does not come up."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.conftest import ROOT
from tests.net import free_port


def wait_until(condition, timeout: float, what: str, log: Path | None = None, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (connection refused or reset, client timeout)
    headers: dict[str, str]
    body: Any  # parsed JSON, else bytes
    seconds: float


def call(
    port: int, method: str, path: str, key: str | None = None, body: Any = None, timeout: float = 60
) -> Answer:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        return Answer(response.status, dict(response.getheaders()), parsed, time.monotonic() - started)
    except OSError:
        return Answer(0, {}, b"", time.monotonic() - started)
    finally:
        conn.close()


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    """This checkout's code first (never another checkout's editable install)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", "PYTHONUNBUFFERED": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "softserve.settings"
    env.update(extra)
    return env


def start_gunicorn(env: dict[str, str], log: Path, threads: int = 8, workers: int = 1) -> tuple[Any, int]:
    """The production web server (as docker-compose's `web` runs it); returns once it answers HTTP."""
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    cmd = [gunicorn, "softserve.wsgi", "--chdir", "platform", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--threads", str(threads), "--timeout", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        return call(port, "GET", "/accounts/login/", timeout=5).status == 200

    wait_until(up, 90, "gunicorn to answer", log, every=0.3)
    return proc, port


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class HangingServer:
    """Accepts TCP connections and never sends a byte: a Redis (or anything) that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@dataclass
class RedisServer:
    """A throwaway redis-server with an append-only file (as docker-compose's redis), restartable."""

    dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--appendonly", "yes", "--save", ""),
            ],
            stdout=(self.dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_timeout=2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.RedisError:
                return False

        wait_until(up, 20, f"redis-server on {self.port}", self.dir / "redis.log")

    def stop(self) -> None:
        """SIGTERM, as `docker restart` sends: Redis flushes its append-only file and exits."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster (initdb, pg_ctl) on a free port, restartable. As root it runs as the
    `postgres` user, since initdb refuses root."""

    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="softserve-pg-")))
    port: int = field(default_factory=free_port)

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        initdb = shutil.which("initdb") or "/usr/local/bin/initdb"
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        pg_ctl = shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl"
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.dir / "pg.log"), "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: every session is ended mid-query, as in a restart."""
        pg_ctl = shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl"
        self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, name: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session=True, with its children."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
