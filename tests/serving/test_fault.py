"""Fault: one of two serving workers is killed (SIGKILL) while a client sends a fixed number of requests
over REST. Every request gets its answer; none is lost, none is answered twice."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from django.db import connection

from common.contracts import SERVING_GROUP, serving_stream
from tests.serving.helpers import (
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
from tests.teams import Team, bearer

CLIENTS, PER_CLIENT = 4, 10


@pytest.mark.django_db(transaction=True)  # client threads have their own connections: rows must be committed
def test_killing_a_worker_loses_nothing_and_answers_nothing_twice(
    settings, redis_db, s3_env, s3_store, tiny_models, tiny_model_dirs, tmp_path
):
    model_dir = tiny_model_dirs["gpt2"]
    settings.SERVING_REDIS_URL = REDIS_URL
    settings.SOFTSERVE_BASE_MODELS = [str(model_dir)]
    team = Team("acme")
    artifact = make_artifact(tiny_models["gpt2"], SENTIMENT, seed=5)
    publish(s3_store, team.tenant, "sentiment", artifact, str(model_dir))
    env = worker_env(model_dir, {**s3_env, "SERVING_CLAIM_IDLE_MS": "1500", "SERVING_MAX_WAIT_MS": "10"})
    victim = start_worker(env, tmp_path / "victim.log")
    survivor = start_worker(env, tmp_path / "survivor.log")
    victim_name = consumer_of(tmp_path / "victim.log")
    results: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        api = bearer(team.key)
        try:
            for i in range(PER_CLIENT):
                text = f"review {k}-{i}: " + "good " * (i % 5)
                response = api.post("/api/v1/prompts/sentiment:predict", {"inputs": [text]}, format="json")
                with lock:
                    results.append((text, response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        while len(results) < 8:
            time.sleep(0.01)
        # Freeze the victim first: Redis keeps handing it entries (its read is blocked server-side),
        # so it is sure to hold requests it will never answer when it is killed.
        victim.send_signal(signal.SIGSTOP)
        stream = serving_stream(str(model_dir))
        deadline = time.monotonic() + 20
        held = 0
        while time.monotonic() < deadline and not held:
            consumers = {
                c["name"].decode(): c["pending"] for c in redis_db.xinfo_consumers(stream, SERVING_GROUP)
            }
            held = consumers.get(victim_name, 0)
            time.sleep(0.01)
        assert held, "the frozen worker never held a request; the fault was not exercised"
        victim.kill()
        victim.wait()
        for thread in threads:
            thread.join(timeout=180)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop_worker(victim)
        stop_worker(survivor)
    assert len(results) == CLIENTS * PER_CLIENT
    assert [code for _, code, _ in results] == [200] * len(results), [r for r in results if r[1] != 200][:3]
    fm = tiny_models["gpt2"]
    for text, _, body in results:
        assert same_output(body["outputs"][0], engine_output(fm, artifact, {"text": text}))
    # Exactly one reply per request: one "replied" mark each, and no reply left unread in any list.
    marks = list(redis_db.scan_iter("softserve:replied:*"))
    assert len(marks) == len(results)
    answered_by = [redis_db.get(m).decode() for m in marks]
    assert victim_name in answered_by and len(set(answered_by)) == 2  # both served before the kill
    assert all(redis_db.llen(key) == 0 for key in redis_db.scan_iter("softserve:reply:*"))
    assert redis_db.xlen(stream) == 0 and redis_db.xpending(stream, SERVING_GROUP)["pending"] == 0
    assert "took over" in (tmp_path / "survivor.log").read_text()  # the victim's requests were re-delivered
