"""The Redis transport on a real Redis (db 13): reply once, take-over from a stopped consumer, batch
limits, and a real worker process that finishes its batch on SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid

import pytest

from common.contracts import (
    SERVING_ERRORS,
    SERVING_GROUP,
    serving_replied_key,
    serving_reply_key,
    serving_stream,
)
from tests.serving.helpers import REDIS_URL, make_artifact, start_worker, stored, worker_env
from workers.serving.config import ServingConfig
from workers.serving.redis_queue import RedisSource

MODEL = "tiny-test-model"


def _request(inputs=None, base_model: str = MODEL, **fields) -> dict:
    now = time.time()
    return {
        "request_id": uuid.uuid4().hex,
        "tenant_id": "t",
        "prompt": "p",
        "version": 1,
        "version_id": "v",
        "artifact_key": "k",
        "artifact_sha256": "",
        "base_model": base_model,
        "inputs": inputs or [{"text": "x"}],
        "enqueued_at": now,
        "deadline": now + 60,
        **fields,
    }


def _add(redis_db, request: dict, base_model: str = MODEL) -> None:
    redis_db.xadd(serving_stream(base_model), {"body": json.dumps(request)})


def _source(redis_db, consumer: str, **config) -> RedisSource:
    return RedisSource(redis_db, ServingConfig(base_model=MODEL, redis_url=REDIS_URL, **config), consumer)


def test_a_request_is_answered_once_and_acknowledged(redis_db):
    source = _source(redis_db, "a")
    request = _request()
    _add(redis_db, request)
    [pending] = source.take(8, 0.01, threading.Event())
    reply = {"request_id": request["request_id"], "status": "ok", "outputs": [{"text": "hi"}]}
    assert source.reply(pending, reply) is True
    assert source.reply(pending, {**reply, "outputs": [{"text": "again"}]}) is False
    stream = serving_stream(MODEL)
    assert redis_db.llen(serving_reply_key(request["request_id"])) == 1
    assert json.loads(redis_db.lpop(serving_reply_key(request["request_id"])))["outputs"] == [{"text": "hi"}]
    assert redis_db.get(serving_replied_key(request["request_id"])) == b"a"
    assert redis_db.xlen(stream) == 0 and redis_db.xpending(stream, SERVING_GROUP)["pending"] == 0


def test_a_stopped_consumers_request_is_taken_over(redis_db):
    first, second = _source(redis_db, "dies"), _source(redis_db, "lives", claim_idle_ms=200)
    request = _request()
    _add(redis_db, request)
    [taken] = first.take(8, 0.01, threading.Event())  # ... and never answered
    assert second.take(8, 0.01, threading.Event()) == []  # not idle long enough yet
    time.sleep(0.3)
    second._last_claim = 0.0
    [claimed] = second.take(8, 0.01, threading.Event())
    assert claimed.request["request_id"] == request["request_id"] and claimed.handle == taken.handle
    assert second.reply(claimed, {"request_id": request["request_id"], "status": "ok", "outputs": []})
    assert redis_db.xpending(serving_stream(MODEL), SERVING_GROUP)["pending"] == 0


def test_a_request_that_keeps_stopping_workers_is_answered_with_an_error(redis_db):
    """A poison request (say, one that crashes the model) must not take down every worker in turn."""
    first = _source(redis_db, "first", claim_idle_ms=100, max_deliveries=2)
    second = _source(redis_db, "second", claim_idle_ms=100, max_deliveries=2)
    third = _source(redis_db, "third", claim_idle_ms=100, max_deliveries=2)
    request = _request()
    _add(redis_db, request)
    assert len(first.take(8, 0.01, threading.Event())) == 1  # delivery 1: this worker dies
    time.sleep(0.15)
    second._last_claim = 0.0
    assert len(second.take(8, 0.01, threading.Event())) == 1  # delivery 2: this one dies too
    time.sleep(0.15)
    third._last_claim = 0.0
    assert third.take(8, 0.01, threading.Event()) == []  # delivery 3 is over the limit: answered, not run
    reply = json.loads(redis_db.lpop(serving_reply_key(request["request_id"])))
    assert reply["status"] == "error" and reply["code"] == "given_up"
    assert reply["error"] == SERVING_ERRORS["given_up"]
    assert redis_db.xpending(serving_stream(MODEL), SERVING_GROUP)["pending"] == 0


def test_requests_waiting_in_a_live_workers_backlog_are_not_taken_over_nor_given_up(redis_db):
    """A worker reads ahead (LOOKAHEAD_BATCHES) to pick batches fairly; what waits there is pending and
    may be idle past claim_idle_ms behind a burst. Its own take-over pass once claimed those again, a
    delivery each time: after max_deliveries they were answered `given_up` (no worker had stopped), and
    then answered a second time from the backlog."""
    source = _source(redis_db, "busy", claim_idle_ms=100, max_deliveries=2)
    requests = [_request() for _ in range(6)]
    for request in requests:
        _add(redis_db, request)
    stream, stop = serving_stream(MODEL), threading.Event()
    answered = []
    while len(answered) < len(requests):
        [pending] = source.take(1, 0.0, stop)
        pending_list = redis_db.xpending_range(stream, SERVING_GROUP, "-", "+", 10)
        assert {int(entry["times_delivered"]) for entry in pending_list} == {1}, pending_list
        ok = {"request_id": pending.request["request_id"], "status": "ok", "outputs": []}
        assert source.reply(pending, ok), "answered already (given up while it waited in the backlog)"
        answered.append(pending.request["request_id"])
        time.sleep(0.15)  # the batch took longer than claim_idle_ms: what waits behind it is idle
        source._last_claim = 0.0
    assert sorted(answered) == sorted(r["request_id"] for r in requests)
    for request in requests:
        [reply] = redis_db.lrange(serving_reply_key(request["request_id"]), 0, -1)
        assert json.loads(reply)["status"] == "ok"
    assert redis_db.xpending(stream, SERVING_GROUP)["pending"] == 0


def test_a_request_whose_reply_was_not_sent_is_delivered_again_even_to_the_same_worker(redis_db):
    """A batch whose replies could not be sent (Redis restarting) stays pending; with one worker in the
    pool, that worker itself must take it again, or it would stay pending for good."""
    source = _source(redis_db, "only", claim_idle_ms=100)
    request = _request()
    _add(redis_db, request)
    [taken] = source.take(8, 0.01, threading.Event())  # ... and its reply is lost
    time.sleep(0.15)
    source._last_claim = 0.0
    [again] = source.take(8, 0.01, threading.Event())
    assert again.handle == taken.handle
    assert source.reply(again, {"request_id": request["request_id"], "status": "ok", "outputs": []})
    assert redis_db.xpending(serving_stream(MODEL), SERVING_GROUP)["pending"] == 0


def test_a_batch_closes_at_max_rows_or_max_wait(redis_db):
    source = _source(redis_db, "a")
    for _ in range(5):
        _add(redis_db, _request())
    stop = threading.Event()
    assert len(source.take(3, 1.0, stop)) == 3
    # Timings with margins a loaded 2-core machine keeps (seconds of slack, not milliseconds): what is
    # checked is which wait applies, not how fast Redis answers.
    started = time.monotonic()
    assert len(source.take(10, 0.2, stop)) == 2  # the two left; waits ~max_wait (0.2 s) for more
    assert time.monotonic() - started < 0.2 + 2.0
    _add(redis_db, _request(inputs=[{"text": "a"}] * 4))
    started = time.monotonic()
    assert len(source.take(3, 6.0, stop)) == 1  # one request of 4 rows fills a 3-row batch: no waiting
    assert time.monotonic() - started < 3.0  # half of max_wait: it did not wait for more


def test_malformed_entries_are_dropped_not_retried(redis_db):
    source = _source(redis_db, "a")
    redis_db.xadd(serving_stream(MODEL), {"body": "not json"})
    assert source.take(8, 0.01, threading.Event()) == []
    assert redis_db.xlen(serving_stream(MODEL)) == 0


def test_worker_finishes_the_batch_in_hand_on_sigterm(
    redis_db, s3_env, s3_store, tiny_models, tiny_model_dirs, tmp_path
):
    model_dir = tiny_model_dirs["gpt2"]
    sha = stored(s3_store, "p/a", make_artifact(tiny_models["gpt2"]))
    worker = start_worker(
        worker_env(model_dir, {**s3_env, "SERVING_MAX_BATCH_ROWS": "4"}), tmp_path / "w.log"
    )
    requests = [
        _request(
            base_model=str(model_dir),
            artifact_key="p/a",
            artifact_sha256=sha,
            inputs=[{"text": f"review number {i} " * 20}] * 4,
        )
        for i in range(30)
    ]
    for request in requests:
        _add(redis_db, request, str(model_dir))
    stream = serving_stream(str(model_dir))
    deadline = time.monotonic() + 60
    while redis_db.xpending(stream, SERVING_GROUP)["pending"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    answered = [redis_db.lpop(serving_reply_key(r["request_id"])) for r in requests]
    done = [json.loads(a) for a in answered if a]
    assert done and all(d["status"] == "ok" and len(d["outputs"]) == 4 for d in done)
    # Nothing is left half done: every request is either answered or still waiting, unclaimed, for the
    # next worker -- none is pending on the stopped consumer, and the consumer left the group.
    assert redis_db.xpending(stream, SERVING_GROUP)["pending"] == 0
    assert redis_db.xlen(stream) == len(requests) - len(done)
    assert redis_db.xinfo_consumers(stream, SERVING_GROUP) == []
    log = (tmp_path / "w.log").read_text()
    assert "stopped cleanly" in log
    assert "(torch threads: 1)" in log  # SERVING_TORCH_THREADS=1 (worker_env) applied at start


def test_torch_threads_come_from_the_environment_and_default_to_torchs_own():
    assert ServingConfig.from_env({}).torch_threads == 0
    assert ServingConfig.from_env({"SERVING_TORCH_THREADS": "1"}).torch_threads == 1
    with pytest.raises(ValueError):
        ServingConfig.from_env({"SERVING_TORCH_THREADS": "-1"})
