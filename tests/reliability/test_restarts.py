"""Redis restarted mid-run, then PostgreSQL restarted mid-run, under load.

A real stack on throwaway servers the test starts itself: PostgreSQL (initdb, pg_ctl) and redis-server
(append-only file, as docker-compose's redis) on free ports; the web app under gunicorn; a Celery tuning
worker with the reconciler's beat; a serving worker; all on the tiny GPT-2 and a local storage folder.
Clients keep sending API reads and predictions, a producer keeps creating tuning jobs, and jobs are
training while each service is stopped (SIGTERM for Redis, a fast shutdown for PostgreSQL: every session
ended mid-query) and started again.

Meanwhile every failure must be a clean JSON 503 with Retry-After and nothing a 500; afterwards every job
the API accepted (201) succeeds and every request answered 2xx had completed. A 503 counts as "during an
outage" only inside that outage's own window: from the service going down (a second of slack for the
clock) to RECOVERY_BOUND_S after it is back; any 503 outside every window fails the test. Figures:
requests sent, 503s per outage window, 500s, jobs completed, recovery time per outage (service back up to
the answer of the LAST 503 in its window: a server that keeps answering the odd 503 after the service is
back shows it here), and the time to the first 2xx of both an API read and a prediction.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from common.contracts import JOB_ENDED
from tests.conftest import ROOT
from tests.datasets.test_datasets_api import sst2_head
from tests.live import (
    Answer,
    Postgres,
    RedisServer,
    call,
    kill_group,
    start_gunicorn,
    stop,
    subprocess_env,
    wait_until,
)
from tests.reliability.figures import record_figures, scaled
from tests.workers.conftest import WORKER_COMMAND

RESTARTS = scaled(1, 3)  # restarts of each service
CLIENTS = scaled(3, 6)  # threads sending API reads and predictions
OUTAGE_S = scaled(3, 8)  # how long each service stays down
STEADY_S = scaled(4, 8)  # load before, between and after the restarts (longer than a recovery window)
JOB_STEPS = scaled(20, 60)
JOB_EVERY_S = scaled(4, 5)  # the producer creates a tuning job this often
# A 503 sent later than this after a service came back is a failure to recover. Recorded recoveries are
# under 1 s (docs/reliability-figures/restarts.*.json); the bound leaves room for a loaded 2-core box and
# stays below STEADY_S, so consecutive outage windows never overlap and a stray 503 between them is seen.
RECOVERY_BOUND_S = scaled(2.5, 5.0)
assert RECOVERY_BOUND_S + 1 < STEADY_S, "outage windows must not overlap"
SETUP_PYTHON = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from softserve.tenancy.actions import create_tenant
from softserve.tenancy.models import Quota
tenant, _, key = create_tenant("acme", "owner@acme.example")
Quota.objects.filter(tenant=tenant).update(requests_per_minute=10**6, concurrent_jobs=1000)
print("KEY", key)
"""


@dataclass
class Sent:
    kind: str  # read | predict | job
    at: float  # monotonic, when it was sent
    answer: Answer


class Stack:
    """The servers and processes of one run; `close` stops everything it started."""

    def __init__(self, tmp: Path, model_dir: Path):
        self.tmp, self.model = tmp, str(model_dir)
        self.pg = Postgres()
        self.redis = RedisServer(dir=tmp / "redis")
        self.procs: list[subprocess.Popen] = []
        self.groups: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        env = subprocess_env(
            {
                "DATABASE_URL": self.pg.url("softserve"),
                "REDIS_URL": self.redis.url(0),  # the rate-limit cache
                "CELERY_BROKER_URL": self.redis.url(1),
                "SERVING_REDIS_URL": self.redis.url(2),
                "SOFTSERVE_VAR_DIR": str(self.tmp / "var"),
                "STORAGE_DIR": str(self.tmp / "storage"),
                "SOFTSERVE_BASE_MODELS": self.model,
                "SERVING_BASE_MODEL": self.model,
                "SERVING_MAX_WAIT_MS": "5",
                "SERVING_CLAIM_IDLE_MS": "3000",
                "REDIS_CONNECT_TIMEOUT_S": "1",
                "REDIS_SOCKET_TIMEOUT_S": "1",
                "OUTAGE_RETRY_AFTER_S": "1",
                "SOFTSERVE_HEARTBEAT_S": "0.5",
                "SOFTSERVE_HEARTBEAT_TIMEOUT_S": "20",
                "SOFTSERVE_CHECKPOINT_EVERY": "10",
                "SOFTSERVE_RECONCILE_EVERY_S": "1",
                "SOFTSERVE_REQUEUE_UNCLAIMED_S": "5",
                "HF_HUB_OFFLINE": "1",
                # One thread per process: three processes share the cores with the clients.
                "OMP_NUM_THREADS": "1",
            }
        )
        for name in ("S3_ENDPOINT_URL", "S3_USE_AWS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(name, None)
        return env

    def start(self) -> str:
        """Servers up, schema migrated, a tenant made; web, tuning and serving workers running. The key."""
        (self.tmp / "redis").mkdir()
        (self.tmp / "var").mkdir()
        self.redis.start()
        self.pg.init()
        with psycopg.connect(self.pg.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE softserve")
        env = self.env()
        # Migrate and make a tenant in one process (one Django start-up fewer).
        done = subprocess.run(
            [sys.executable, "platform/manage.py", "shell", "-c", SETUP_PYTHON],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"migrate and setup failed:\n{done.stdout}\n{done.stderr}"
        key = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("KEY "))
        worker_log, serving_log = self.tmp / "tuning.log", self.tmp / "serving.log"
        tuning = subprocess.Popen(
            WORKER_COMMAND,
            cwd=ROOT,
            env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups.append(tuning)
        serving = subprocess.Popen(
            [sys.executable, "-m", "workers.serving"],
            cwd=ROOT,
            env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
            stdout=serving_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(serving)
        web, self.port = start_gunicorn(env, self.tmp / "web.log", threads=12)
        self.procs.append(web)
        wait_until(
            lambda: "ready" in worker_log.read_text(errors="replace"), 120, "the tuning worker", worker_log
        )
        wait_until(
            lambda: "serving worker ready" in serving_log.read_text(errors="replace"),
            120,
            "the serving worker",
            serving_log,
        )
        return key

    def alive(self) -> dict[str, int | None]:
        """Exit codes of the long-running processes (None: still running)."""
        return {
            "web": self.procs[1].poll(),
            "serving": self.procs[0].poll(),
            "tuning": self.groups[0].poll(),
        }

    def logs(self) -> str:
        names = ("web.log", "tuning.log", "serving.log")
        return "\n".join(f"--- {n}\n{(self.tmp / n).read_text(errors='replace')[-4000:]}" for n in names)

    def close(self) -> None:
        for proc in self.procs:
            stop(proc)
        for proc in self.groups:
            kill_group(proc)
        self.redis.stop()
        self.pg.destroy()


def _prepare(port: int, key: str, model: str) -> str:
    """A dataset, a prompt on the tiny model, one trained version behind `production`. The dataset id."""
    response = requests.post(
        f"http://127.0.0.1:{port}/api/v1/datasets",
        headers={"Authorization": f"Bearer {key}"},
        data={"name": "sst2"},
        files={"file": ("train.csv", sst2_head(120))},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    dataset = response.json()["id"]
    prompt = {
        "name": "sentiment",
        "task_type": "classification",
        "template": "Review: {text}\nSentiment:",
        "labels": ["negative", "positive"],
        "base_model": model,
    }
    assert (created := call(port, "POST", "/api/v1/prompts", key, prompt)).status == 201, created.body
    job = _create_job(port, key, dataset, steps=2)
    assert job.status == 201, job.body
    done = _wait_jobs(port, key, [job.body["id"]], 180)
    assert done[job.body["id"]] == "succeeded", done
    moved = call(port, "PUT", "/api/v1/prompts/sentiment/aliases/production", key, {"version": 1})
    assert moved.status == 200, moved.body
    return dataset


def _create_job(port: int, key: str, dataset: str, steps: int) -> Answer:
    body = {
        "kind": "tune",
        "prompt": "sentiment",
        "dataset_version": dataset,
        "steps": steps,
        "prompt_length": 4,
        "batch_size": 4,
        "eval_every": steps,
    }
    return call(port, "POST", "/api/v1/jobs", key, body, timeout=60)


def _wait_jobs(port: int, key: str, ids: list[str], timeout: float) -> dict[str, str]:
    statuses: dict[str, str] = {}

    def all_done() -> bool:
        for job_id in ids:
            if statuses.get(job_id) not in JOB_ENDED:
                answer = call(port, "GET", f"/api/v1/jobs/{job_id}", key, timeout=30)
                if answer.status == 200:
                    statuses[job_id] = answer.body["status"]
        return all(statuses.get(j) in JOB_ENDED for j in ids)

    try:
        wait_until(all_done, timeout, "the accepted jobs to finish", every=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatuses: {statuses}") from None
    return statuses


def _clean_503(answer: Answer) -> bool:
    """The project's error shape, code `unavailable`, and a Retry-After."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    return (
        answer.status == 503
        and int(answer.headers.get("Retry-After", "0")) >= 1
        and isinstance(error, dict)
        and set(error) == {"status", "code", "message", "fields"}
        and error["status"] == 503
    )


def test_redis_and_postgresql_restarted_mid_run(tiny_model_dirs, tmp_path):
    stack = Stack(tmp_path, tiny_model_dirs["gpt2"])
    started = time.monotonic()
    try:
        key = stack.start()
        port = stack.port
        dataset = _prepare(port, key, stack.model)
        _run(stack, port, key, dataset, setup_s=time.monotonic() - started)
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.close()


def _run(stack: Stack, port: int, key: str, dataset: str, setup_s: float) -> None:
    sent: list[Sent] = []
    lock = threading.Lock()
    stopping = threading.Event()
    texts = ["a gripping, funny film", "dull and far too long", "a fine cast wasted", "pure joy"]

    def record(kind: str, at: float, answer: Answer) -> None:
        with lock:
            sent.append(Sent(kind, at, answer))

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while not stopping.is_set():
            at = time.monotonic()
            if rng.random() < 0.5:
                body = {"inputs": [rng.choice(texts)]}
                record("predict", at, call(port, "POST", "/api/v1/prompts/sentiment:predict", key, body))
            else:
                record("read", at, call(port, "GET", rng.choice(["/api/v1/jobs", "/api/v1/prompts"]), key))
            time.sleep(0.05)

    def producer() -> None:
        while not stopping.wait(JOB_EVERY_S):
            at = time.monotonic()
            record("job", at, _create_job(port, key, dataset, JOB_STEPS))

    load_started = time.monotonic()
    # Jobs already training when the first service goes down.
    for _ in range(2):
        at = time.monotonic()
        record("job", at, _create_job(port, key, dataset, JOB_STEPS))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=producer))
    for thread in threads:
        thread.start()
    outages: list[dict] = []
    during: list[tuple[str, Answer]] = []  # (service, answer) of the jobs created while it was down
    try:
        time.sleep(STEADY_S)
        for _ in range(RESTARTS):
            for service in (stack.redis, stack.pg):
                name = "redis" if service is stack.redis else "postgresql"
                down = time.monotonic()
                service.stop()
                # A job created now: with Redis (the broker) down it is committed and answered 201, and
                # the reconciler sends it later; with PostgreSQL down it is a 503.
                at = time.monotonic()
                during.append((name, _create_job(port, key, dataset, JOB_STEPS)))
                record("job", at, during[-1][1])
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
                service.start()
                outages.append({"service": name, "down": down, "up": time.monotonic()})
                time.sleep(STEADY_S)
    finally:
        stopping.set()
        for thread in threads:
            thread.join(timeout=120)
    assert stack.alive() == {"web": None, "serving": None, "tuning": None}, stack.logs()

    load_s = time.monotonic() - load_started
    accepted = [s.answer.body["id"] for s in sent if s.kind == "job" and s.answer.status == 201]
    finished = _wait_jobs(port, key, accepted, scaled(240, 900))
    drain_s = time.monotonic() - load_started - load_s
    statuses = Counter(s.answer.status for s in sent)

    # Which outage window a request was sent in: from the service going down (a second of slack for the
    # clock) to RECOVERY_BOUND_S after it came back. Windows never overlap (RECOVERY_BOUND_S < STEADY_S).
    def window_of(item: Sent) -> int | None:
        inside = [i for i, o in enumerate(outages) if o["down"] - 1 <= item.at <= o["up"] + RECOVERY_BOUND_S]
        assert len(inside) <= 1, "outage windows overlap"
        return inside[0] if inside else None

    window = {id(item): window_of(item) for item in sent}
    met = {key: (outages[i]["service"] if i is not None else None) for key, i in window.items()}
    # No answer at all, a 500 or any other 5xx, or a 503 not in the error shape with Retry-After.
    unclean = [
        s for s in sent if s.answer.status == 0 or (s.answer.status >= 500 and not _clean_503(s.answer))
    ]
    outside = [s for s in sent if s.answer.status == 503 and met[id(s)] is None]
    recovery, first_2xx, per_window = [], [], []
    for index, outage in enumerate(outages):
        mine = [s for s in sent if s.answer.status == 503 and window[id(s)] == index]
        per_window.append(len(mine))
        # Recovery: from the service being back to the answer of the last 503 of this window (0 when the
        # last 503 came before the service was back).
        last = max((s.at + s.answer.seconds for s in mine), default=outage["up"])
        recovery.append(max(0.0, last - outage["up"]))
        firsts = [
            min(
                (
                    s.at + s.answer.seconds
                    for s in sent
                    if s.kind == kind and s.at >= outage["up"] and 200 <= s.answer.status < 300
                ),
                default=float("inf"),
            )
            for kind in ("read", "predict")
        ]
        first_2xx.append(max(firsts) - outage["up"])
    figures = {
        "restarts_each": RESTARTS,
        "outage_s": OUTAGE_S,
        "clients": CLIENTS,
        "requests_sent": len(sent),
        "answered_2xx": sum(n for code, n in statuses.items() if 200 <= code < 300),
        "recovery_bound_s": RECOVERY_BOUND_S,
        "503s_during_outages": sum(1 for s in sent if s.answer.status == 503 and met[id(s)]),
        "503s_per_outage": [f"{o['service']}: {n}" for o, n in zip(outages, per_window, strict=True)],
        "503s_outside_outages": sum(1 for s in sent if s.answer.status == 503 and met[id(s)] is None),
        "503s_redis": sum(1 for s in sent if s.answer.status == 503 and met[id(s)] == "redis"),
        "503s_postgresql": sum(1 for s in sent if s.answer.status == 503 and met[id(s)] == "postgresql"),
        "500s": statuses.get(500, 0),
        "other_5xx_or_no_answer": len(unclean),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "jobs_accepted": len(accepted),
        "jobs_accepted_while_broker_down": sum(1 for n, a in during if n == "redis" and a.status == 201),
        "jobs_completed": sum(1 for s in finished.values() if s == "succeeded"),
        "recovery_s_max": round(max(recovery), 2),
        "recovery_s": [round(r, 2) for r in recovery],
        "first_2xx_s": [round(r, 2) for r in first_2xx],
        "setup_s": round(setup_s, 1),
        "load_s": round(load_s, 1),
        "drain_s": round(drain_s, 1),
    }
    record_figures("restarts", "Redis and PostgreSQL restarted mid-run", figures)
    print(figures)
    assert statuses.get(500, 0) == 0 and not unclean, [
        (s.kind, s.answer.status, s.answer.body) for s in unclean
    ]
    assert not outside, [(s.kind, s.answer.body) for s in outside]
    assert set(statuses) <= {200, 201, 503}, statuses  # no 4xx either: nothing was refused for a wrong reason
    assert figures["503s_redis"] >= 1 and figures["503s_postgresql"] >= 1  # the outages were real and seen
    # Every request answered 2xx was complete: predictions carry their output, jobs finished (below).
    assert all(
        len(s.answer.body["outputs"]) == 1 and "label" in s.answer.body["outputs"][0]
        for s in sent
        if s.kind == "predict" and s.answer.status == 200
    )
    assert all(status == "succeeded" for status in finished.values()), finished
    assert len(accepted) >= 2 + RESTARTS
    assert [a.status for n, a in during] == [201 if n == "redis" else 503 for n, a in during], during
    assert max(recovery) < RECOVERY_BOUND_S, recovery
    assert max(first_2xx) < RECOVERY_BOUND_S, first_2xx  # reads and predictions both answer again
    assert all(n >= 1 for n in per_window), per_window  # every outage was real and seen in its window
