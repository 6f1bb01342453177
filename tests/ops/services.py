"""Servers the ops tests start for themselves: a throwaway PostgreSQL cluster, the web app under gunicorn.

Nothing here skips: a missing binary or a server that will not start fails the test with its log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.conftest import ROOT
from tests.net import free_port

PG_BIN = Path("/usr/local/bin")


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; the tests run as root in CI."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a server started in its own session, with every process it forked (gunicorn's workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


class PgCluster:
    """`initdb` + `pg_ctl` on a free port, in a folder the postgres user owns; trust auth on 127.0.0.1."""

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise AssertionError(f"{PG_BIN / tool} is needed to start a throwaway PostgreSQL cluster")
        self.root = Path(tempfile.mkdtemp(prefix="softserve-pg-"))
        self.data, self.log = self.root / "data", self.root / "pg.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options]
        subprocess.run(
            _as_postgres([*pg_ctl, "-w", "start"]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)


class WebServer:
    """The platform under gunicorn (the production server), in its own process group."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1):
        self.port, self.log_path = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            *(sys.executable, "-m", "gunicorn", "softserve.wsgi", "--chdir", str(ROOT / "platform")),
            *("--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", "4"),
            *("--config", str(ROOT / "deploy" / "gunicorn.conf.py")),
        ]
        full_env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}", **env}
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=full_env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_until_up()
        except BaseException:
            self.stop()  # a server that never came up must not outlive the test
            raise

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a busy CPU
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer /healthz within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_group(self.proc)


class Prometheus:
    """Debian's Prometheus on a free port, scraping the given targets every second (and loading the
    alert rules, so the test also sees them evaluated). A job named in `tokens` sends that bearer token
    (the web's METRICS_TOKEN), from a file as deploy/prometheus/prometheus.yml does."""

    def __init__(
        self,
        jobs: dict[str, list[str]],
        folder: Path,
        rule_files: list[Path] = (),
        tokens: dict[str, str] | None = None,
    ):
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise AssertionError(
                "prometheus is needed (Debian package `prometheus`; `make setup` installs it)"
            )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "rule_files:"]
        lines += [f"  - {path}" for path in rule_files] or ["  []"]
        lines.append("scrape_configs:")
        for job, targets in jobs.items():
            lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: {list(targets)!r}"]
            if job in (tokens or {}):
                token_file = folder / f"{job}.token"
                token_file.write_text(tokens[job])
                lines += ["    authorization:", "      type: Bearer", f"      credentials_file: {token_file}"]
        config = folder / "prometheus.yml"
        config.write_text("\n".join(lines).replace("rule_files:\n  []", "rule_files: []") + "\n")
        self.log_path = folder / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready in 60 s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def query(self, promql: str) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def get(self, path: str) -> dict:
        response = requests.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()["data"]

    def stop(self) -> None:
        stop_group(self.proc)
