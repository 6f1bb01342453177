"""Load and fairness over REST: a bounded headless Locust run (its own process, tests/reliability/
serving_load.py) against gunicorn with a real serving worker, mixed prompts of three teams. Figures:
requests/s, p50/p99 per team, errors (0). A noisy team pushing far past its share
(SERVING_TENANT_MAX_CONCURRENT) gets 429s while a quiet team's p99 stays within 1.5x of its p99 without
the noisy team (2.0x at CI scale, where p99 is one request or two) and its p50 within 1.5x at any scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from softserve.tenancy.models import Quota
from tests.conftest import ROOT
from tests.net import free_port
from tests.reliability.figures import FULL_SCALE, record_figures, scaled
from tests.serving.helpers import (
    ANSWER,
    REDIS_URL,
    SENTIMENT,
    SINGLE_TOKEN,
    make_artifact,
    publish,
    start_worker,
    stop_worker,
    worker_env,
)
from tests.teams import Team
from workers.storage import LocalStore

ALONE_S = scaled(10, 60)
LOADED_S = scaled(15, 60)
TENANT_MAX_CONCURRENT = 1
# The quiet team's p99 with the noisy team over its share, over its p99 without it: the target is 1.5x.
# A CI-scale run has ~150 quiet requests per phase, so its p99 is its 2nd-slowest request: one scheduler
# hiccup on this shared CPU moves it, hence the looser bound there. The p50 ratio holds at 1.5x at any scale.
P99_RATIO_MAX = 1.5 if FULL_SCALE else 2.0
P50_RATIO_MAX = 1.5


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _start_web(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    cmd = [str(gunicorn), "softserve.wsgi", "--chdir", "platform", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*cmd, "--workers", "1", "--threads", "8"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gunicorn exited:\n{log.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/prompts", timeout=2)
        except urllib.error.HTTPError:
            return proc  # 401/403: it answers
        except OSError:
            time.sleep(0.2)
            continue
        return proc
    proc.kill()
    raise AssertionError(f"gunicorn not ready in 60 s:\n{log.read_text()[-3000:]}")


def _locust(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.serving_load", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + 120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)  # gunicorn reads what this test writes
def test_load_and_fairness_across_teams(redis_db, tiny_models, tiny_model_dirs, tmp_path):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    store = LocalStore(tmp_path / "storage")
    teams = {name: Team(name) for name in ("quiet", "noisy", "initech")}
    prompts = {
        "quiet": [("q-sentiment", SENTIMENT), ("q-yesno", SINGLE_TOKEN)],
        "noisy": [("n-sentiment", SENTIMENT), ("n-yesno", SINGLE_TOKEN)],
        "initech": [("i-sentiment", SENTIMENT), ("i-answer", ANSWER)],
    }
    for seed, (team, names) in enumerate(prompts.items()):
        Quota.objects.update_or_create(tenant=teams[team].tenant, defaults={"requests_per_minute": 10**6})
        for name, spec in names:
            publish(store, teams[team].tenant, name, make_artifact(fm, spec, seed=seed), str(model_dir))
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SERVING_REDIS_URL": REDIS_URL,
        "REDIS_URL": "",
        "STORAGE_DIR": str(tmp_path / "storage"),
        "SERVING_TENANT_MAX_CONCURRENT": str(TENANT_MAX_CONCURRENT),
        "SOFTSERVE_BASE_MODELS": str(model_dir),
        "DJANGO_DEBUG": "0",
    }
    for name in ("S3_ENDPOINT_URL", "S3_USE_AWS", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    port = free_port()
    worker = start_worker(
        worker_env(model_dir, {k: env[k] for k in ("STORAGE_DIR",)}), tmp_path / "worker.log"
    )
    web = _start_web(env, port, tmp_path / "web.log")

    def team(name: str, users: int, pause_s: float, **extra) -> dict:
        return {
            "key": teams[name].key,
            "prompts": [p for p, _ in prompts[name]],
            "users": users,
            "pause_s": pause_s,
            **extra,
        }

    host = f"http://127.0.0.1:{port}"
    load_at_start = round(os.getloadavg()[0], 2)  # this CPU is shared: the figures say how busy it was
    try:
        # The quiet teams' own load, then the same with a noisy team pushing far past its share.
        # Each within its share: one prediction at a time.
        steady = {"quiet": team("quiet", 1, 0.02), "initech": team("initech", 1, 0.1)}
        alone = _locust({"host": host, "seconds": ALONE_S, "teams": steady})
        loaded = _locust(
            {
                "host": host,
                "seconds": LOADED_S,
                "teams": {
                    **steady,
                    # Over its share: 8 users against 1 prediction at a time; on a 429 it waits as told
                    # (Retry-After: 1 s), as the documented client behaviour.
                    "noisy": team("noisy", 8, 0.0, may_be_refused=True, backoff_s=1.0),
                },
            }
        )
        # Without the noisy team once more: other jobs share this CPU, and their load drifts over a run, so
        # the quiet team's p99 is compared with its baseline on both sides of the loaded phase.
        after = _locust({"host": host, "seconds": ALONE_S, "teams": steady})
    finally:
        stop_worker(web)
        stop_worker(worker)
    quiet, noisy, initech = loaded["quiet"], loaded["noisy"], loaded["initech"]
    figures = {
        "seconds_alone": alone["seconds"],
        "seconds_loaded": loaded["seconds"],
        "quiet_alone_ok_per_s": alone["quiet"]["ok_per_s"],
        "quiet_alone_p50_ms": alone["quiet"]["p50_ms"],
        "quiet_alone_p99_ms": alone["quiet"]["p99_ms"],
        "quiet_loaded_ok_per_s": quiet["ok_per_s"],
        "quiet_loaded_p50_ms": quiet["p50_ms"],
        "quiet_loaded_p99_ms": quiet["p99_ms"],
        "quiet_after_p50_ms": after["quiet"]["p50_ms"],
        "quiet_after_p99_ms": after["quiet"]["p99_ms"],
        "quiet_p50_ratio": round(
            quiet["p50_ms"] / max(alone["quiet"]["p50_ms"], after["quiet"]["p50_ms"], 1e-9), 2
        ),
        "quiet_p99_ratio": round(
            quiet["p99_ms"] / max(alone["quiet"]["p99_ms"], after["quiet"]["p99_ms"], 1e-9), 2
        ),
        "initech_ok_per_s": initech["ok_per_s"],
        "initech_p99_ms": initech["p99_ms"],
        "noisy_ok_per_s": noisy["ok_per_s"],
        "noisy_p99_ms": noisy["p99_ms"],
        "noisy_429": noisy["statuses"].get("429", 0),
        "total_ok_per_s": round(quiet["ok_per_s"] + initech["ok_per_s"] + noisy["ok_per_s"], 2),
        "errors": sum(alone[t]["errors"] + after[t]["errors"] for t in steady)
        + quiet["errors"]
        + initech["errors"]
        + noisy["errors"],
        "tenant_max_concurrent": TENANT_MAX_CONCURRENT,
        "p99_ratio_max_asserted": P99_RATIO_MAX,
        "load_average_at_start": load_at_start,
    }
    record_figures(
        "serving_load", "Load and fairness over REST (Locust, gunicorn, one serving worker)", figures
    )
    assert figures["errors"] == 0, loaded
    assert figures["noisy_429"] > 0, loaded
    assert quiet["statuses"].get("429", 0) == 0 and initech["statuses"].get("429", 0) == 0, loaded
    # It holds because a noisy request over the share is refused before any work (actions.admit: no body
    # parsing, prompt lookup or validation), and the serving worker keeps to one torch thread
    # (SERVING_TORCH_THREADS) instead of fighting gunicorn for both cores.
    assert figures["quiet_p99_ratio"] <= P99_RATIO_MAX, figures
    assert figures["quiet_p50_ratio"] <= P50_RATIO_MAX, figures
