"""Serving workers SIGKILLed under load: ≥ 8 clients (CI: 4) send requests over REST to ≥ 3 prompts of two
teams through two real `python -m workers.serving` processes; one worker is frozen while it holds requests
and then killed. Every request is answered exactly once (lost 0, duplicated 0) with the engine's own
output. The same with a poison prompt in the mix: its requests get a clean, generic error and nothing else
changes. Figures: sent, answered, lost, duplicated, p99 overall and of the requests in flight at the kill."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest
from django.db import connection

from common.contracts import SERVING_ERRORS, SERVING_GROUP, serving_stream
from softserve.tenancy.models import Quota
from tests.reliability.figures import FULL_SCALE, record_figures, scaled
from tests.serving.helpers import (
    ANSWER,
    PAIR,
    REDIS_URL,
    SENTIMENT,
    consumer_of,
    engine_output,
    make_artifact,
    publish,
    same_output,
    start_worker,
    stop_worker,
    worker_env,
)
from tests.serving.test_isolation import poison_artifact_bytes
from tests.teams import Team, bearer

REQUESTS = scaled(40, 500)
CLIENTS = scaled(4, 8)
CLAIM_IDLE_MS = 1500


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# `make test` runs the variant with the poison prompt (it exercises the kill too); `make reliability` both.
@pytest.mark.parametrize(
    "poison", [True, False] if FULL_SCALE else [True], ids=lambda p: "poison" if p else "plain"
)
@pytest.mark.django_db(transaction=True)  # client threads have their own connections: rows must be committed
def test_serving_worker_killed_under_load(
    poison, settings, redis_db, s3_env, s3_store, tiny_models, tiny_model_dirs, tmp_path
):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    settings.SERVING_REDIS_URL = REDIS_URL
    settings.SOFTSERVE_BASE_MODELS = [str(model_dir)]
    teams = {name: Team(name) for name in ("acme", "globex")}
    for team in teams.values():
        Quota.objects.update_or_create(tenant=team.tenant, defaults={"requests_per_minute": 100_000})
    artifacts = {
        ("acme", "sentiment"): make_artifact(fm, SENTIMENT, seed=1),
        ("acme", "pair"): make_artifact(fm, PAIR, seed=2),
        ("globex", "sentiment"): make_artifact(fm, SENTIMENT, members=2, seed=3),
        ("globex", "answer"): make_artifact(fm, ANSWER, seed=4),
    }
    for (team, name), artifact in artifacts.items():
        publish(s3_store, teams[team].tenant, name, artifact, str(model_dir))
    if poison:
        version = publish(
            s3_store, teams["globex"].tenant, "poison", make_artifact(fm, seed=5), str(model_dir)
        )
        s3_store.put_bytes(version.artifact_key, poison_artifact_bytes(fm))
        version.artifact_sha256 = ""
        version.save()
    env = worker_env(model_dir, {**s3_env, "SERVING_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS)})
    victim = start_worker(env, tmp_path / "victim.log")
    survivor = start_worker(env, tmp_path / "survivor.log")
    victim_name = consumer_of(tmp_path / "victim.log")
    choices = [*artifacts, *([("globex", "poison")] if poison else [])]
    plan = []
    rng = random.Random(7)
    for i in range(REQUESTS):
        team, name = rng.choice(choices)
        text = f"request {i}: " + "rather good " * (i % 4)
        row = {"text_a": text, "text_b": "same?"} if name == "pair" else {"text": text}
        plan.append((team, name, row))
    results: dict[int, tuple[int, dict, float, float]] = {}
    lock = threading.Lock()
    cursor = iter(range(REQUESTS))

    def client() -> None:
        apis = {name: bearer(team.key) for name, team in teams.items()}
        try:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                team, name, row = plan[i]
                started = time.monotonic()
                response = apis[team].post(
                    f"/api/v1/prompts/{name}:predict", {"inputs": [row]}, format="json"
                )
                with lock:
                    results[i] = (response.status_code, response.json(), started, time.monotonic())
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    stream = serving_stream(str(model_dir))
    try:
        for thread in threads:
            thread.start()
        while len(results) < REQUESTS // 5:
            time.sleep(0.01)
        # Freeze the victim so that it holds requests it will never answer when it is killed: frozen in a
        # blocking read, Redis keeps handing it entries. Frozen elsewhere (mid-batch), it may hold none:
        # then let it run a moment and freeze it again.
        deadline = time.monotonic() + 30
        held = 0
        while time.monotonic() < deadline and not held and len(results) < REQUESTS - CLIENTS:
            victim.send_signal(signal.SIGSTOP)
            tries = time.monotonic() + 0.5
            while time.monotonic() < tries and not held:
                consumers = {
                    c["name"].decode(): c["pending"] for c in redis_db.xinfo_consumers(stream, SERVING_GROUP)
                }
                held = consumers.get(victim_name, 0)
                time.sleep(0.01)
            if not held:
                victim.send_signal(signal.SIGCONT)
                time.sleep(0.05)
        assert held, "the frozen worker never held a request; the fault was not exercised"
        killed_at = time.monotonic()
        victim.kill()
        victim.wait()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop_worker(victim)
        stop_worker(survivor)
    answered = poisoned = 0
    for i, (team, name, row) in enumerate(plan):
        code, body, _, _ = results[i]
        if name == "poison":
            assert code == 502, body
            assert body["error"]["code"] == "internal"
            assert body["error"]["message"].startswith(SERVING_ERRORS["internal"])
            poisoned += 1
            continue
        assert code == 200, (i, body)
        assert same_output(body["outputs"][0], engine_output(fm, artifacts[(team, name)], row)), (i, name)
        answered += 1
    marks = list(redis_db.scan_iter("softserve:replied:*"))
    unread = sum(redis_db.llen(key) for key in redis_db.scan_iter("softserve:reply:*"))
    assert len(marks) == REQUESTS and unread == 0  # one reply per request, every one taken
    assert redis_db.xlen(stream) == 0 and redis_db.xpending(stream, SERVING_GROUP)["pending"] == 0
    assert "took over" in (tmp_path / "survivor.log").read_text()
    latencies = [end - start for _, _, start, end in results.values()]
    in_flight = [end - start for _, _, start, end in results.values() if start <= killed_at <= end]
    figures = {
        "sent": REQUESTS,
        "clients": CLIENTS,
        "prompts": len(artifacts),
        "teams": len(teams),
        "answered": answered,
        "poison_requests_clean_errors": poisoned,
        "lost": REQUESTS - len(results),
        "duplicated": unread + max(0, len(marks) - REQUESTS),
        "held_by_killed_worker": held,
        "claim_idle_ms": CLAIM_IDLE_MS,
        "p50_ms": round(1000 * _percentile(latencies, 0.5), 1),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
        "p99_ms_in_flight_at_kill": round(1000 * _percentile(in_flight, 0.99), 1),
    }
    scenario = "serving_kill_poison" if poison else "serving_kill"
    title = "Serving worker SIGKILLed under load" + (", with a poison prompt in the mix" if poison else "")
    record_figures(scenario, title, figures)
    assert figures["lost"] == 0 and figures["duplicated"] == 0
