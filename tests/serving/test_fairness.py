"""Fair shares of the serving pool: batches are formed round-robin across tenants (both transports), one
tenant cannot fill a model's queue (SERVING_TENANT_QUEUE_MAX) or this process's threads
(SERVING_TENANT_MAX_CONCURRENT): 429 with Retry-After. The predict path's Redis is bounded in time:
down or hanging, the caller gets a JSON 503 with Retry-After, never a 500 or a hung thread."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from django.db import connection

from common.contracts import serving_stream, serving_tenant_key
from tests.net import free_port
from tests.serving.helpers import REDIS_URL, make_artifact, publish
from tests.serving.test_isolation import serve_request
from tests.teams import Team, bearer
from workers.serving.config import ServingConfig
from workers.serving.local import LocalSource
from workers.serving.queueing import Pending, fair_pick
from workers.serving.redis_queue import RedisSource
from workers.storage import LocalStore

PREDICT = "/api/v1/prompts/{}:predict"
MODEL = "tiny-fair-model"


def _burst(noisy: int = 12) -> list[dict]:
    """A burst of one tenant queued ahead of a quiet tenant's single request."""
    requests = [serve_request(MODEL, "v", "k", "", "noisy", f"n{i}") for i in range(noisy)]
    return [*requests, serve_request(MODEL, "v", "k", "", "quiet", "q")]


def test_fair_pick_takes_tenants_in_turn_each_in_arrival_order():
    backlog = [Pending(r) for r in _burst()]
    batch, rest = fair_pick(backlog, 4)
    assert [p.tenant for p in batch] == ["noisy", "quiet", "noisy", "noisy"]
    assert [p.request["inputs"][0]["text"] for p in batch if p.tenant == "noisy"] == ["n0", "n1", "n2"]
    assert len(rest) == 9 and rest == backlog[3:12]
    # A request of several inputs counts them; one bigger than a batch still goes (alone).
    big = Pending({**backlog[0].request, "inputs": [{"text": "x"}] * 9})
    assert fair_pick([big, *backlog[:2]], 4) == ([big], backlog[:2])


def test_the_redis_transport_batches_fairly(redis_db):
    source = RedisSource(redis_db, ServingConfig(base_model=MODEL, redis_url=REDIS_URL), "c1")
    burst = _burst(6)  # within the worker's look-ahead (LOOKAHEAD_BATCHES batches)
    for request in burst:
        redis_db.xadd(serving_stream(MODEL), {"body": json.dumps(request)})
    stop = threading.Event()
    first = source.take(4, 0.01, stop)
    assert "quiet" in [p.tenant for p in first] and len(first) == 4
    # Nothing is lost or taken twice: the rest comes in later batches (and before a clean stop).
    seen = [p.request["request_id"] for p in first]
    seen += [p.request["request_id"] for p in source.take(4, 0.01, stop)]
    stop.set()
    while source.holding():
        seen += [p.request["request_id"] for p in source.take(4, 0.01, stop)]
    assert sorted(seen) == sorted(r["request_id"] for r in burst)


def test_the_embedded_transport_batches_fairly():
    source = LocalSource(100)
    for request in _burst(6):
        source.put(request)
    stop = threading.Event()
    first = source.take(4, 0.01, stop)
    assert "quiet" in [p.tenant for p in first] and len(first) == 4
    for pending in first:
        source.reply(pending, {"request_id": pending.request["request_id"], "status": "ok"})
    assert source.queued("noisy") == 3 and source.queued("quiet") == 0


@pytest.fixture
def idle_prompt(settings, tmp_path, tiny_models, tiny_model_dirs):
    """Two teams' prompts of a model no worker serves: requests wait until their deadline."""
    settings.SERVING_REDIS_URL = REDIS_URL
    store = LocalStore(tmp_path / "store")
    teams = {name: Team(name) for name in ("acme", "globex")}
    for team in teams.values():
        publish(
            store, team.tenant, "waiting", make_artifact(tiny_models["llama"]), str(tiny_model_dirs["t5"])
        )
    return teams


def _in_threads(calls) -> tuple[list[threading.Thread], list]:
    results: list = []

    def run(call) -> None:
        try:
            results.append(call())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    return threads, results


def _wait(key: str, redis_db, count: int) -> None:
    deadline = time.monotonic() + 10
    while redis_db.zcard(key) < count:
        assert time.monotonic() < deadline, f"{key} never held {count} requests"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_one_tenant_cannot_fill_the_queue(settings, redis_db, idle_prompt, tiny_model_dirs):
    settings.SERVING_TENANT_QUEUE_MAX = 2
    acme, globex = idle_prompt["acme"], idle_prompt["globex"]
    body = {"inputs": ["x"], "timeout_ms": 1500}
    threads, results = _in_threads(
        [lambda: bearer(acme.key).post(PREDICT.format("waiting"), body, format="json")] * 2
    )
    _wait(serving_tenant_key(str(tiny_model_dirs["t5"]), str(acme.tenant.pk)), redis_db, 2)
    refused = acme.client.post(PREDICT.format("waiting"), body, format="json")
    assert refused.status_code == 429 and refused["Retry-After"] == "1", refused.content
    assert refused.json()["error"]["code"] == "tenant_queue_full"
    # Another team still gets in (and waits its turn: 504 here, as no worker serves this model).
    other = globex.client.post(PREDICT.format("waiting"), {"inputs": ["x"], "timeout_ms": 200}, format="json")
    assert other.status_code == 504
    for thread in threads:
        thread.join(30)
    assert [r.status_code for r in results] == [504, 504]
    # Answered (here: timed out), the share is free again.
    again = acme.client.post(PREDICT.format("waiting"), {"inputs": ["x"], "timeout_ms": 200}, format="json")
    assert again.status_code == 504


@pytest.mark.django_db(transaction=True)
def test_one_tenant_cannot_hold_every_web_thread(settings, redis_db, idle_prompt, tiny_model_dirs):
    settings.SERVING_TENANT_MAX_CONCURRENT = 1
    acme, globex = idle_prompt["acme"], idle_prompt["globex"]
    body = {"inputs": ["x"], "timeout_ms": 1500}
    threads, results = _in_threads(
        [lambda: bearer(acme.key).post(PREDICT.format("waiting"), body, format="json")]
    )
    _wait(serving_tenant_key(str(tiny_model_dirs["t5"]), str(acme.tenant.pk)), redis_db, 1)
    refused = acme.client.post(PREDICT.format("waiting"), body, format="json")
    assert refused.status_code == 429 and refused["Retry-After"] == "1", refused.content
    assert refused.json()["error"]["code"] == "too_many_concurrent"
    other = globex.client.post(PREDICT.format("waiting"), {"inputs": ["x"], "timeout_ms": 200}, format="json")
    assert other.status_code == 504
    for thread in threads:
        thread.join(30)
    assert [r.status_code for r in results] == [504]


@pytest.mark.django_db
def test_a_team_over_its_share_is_refused_before_any_work(settings, idle_prompt):
    """The refusal comes first: no body parsing, prompt lookup or input check is spent on a request of a
    team whose share of this process is taken (else a noisy team's flood costs the CPU and database time
    that a quiet team's predictions need). A nonexistent prompt and a malformed body still get the 429."""
    from django.test.utils import CaptureQueriesContext

    from softserve.serving import actions

    settings.SERVING_TENANT_MAX_CONCURRENT = 1
    acme, globex = idle_prompt["acme"], idle_prompt["globex"]
    api = bearer(acme.key)

    def prompt_queries(context: CaptureQueriesContext) -> list[str]:
        return [q["sql"] for q in context.captured_queries if '"prompts_' in q["sql"]]

    with CaptureQueriesContext(connection) as admitted:
        assert api.post(PREDICT.format("no-such-prompt"), {"inputs": []}, format="json").status_code == 404
    assert prompt_queries(admitted)  # admitted, the request looks its prompt up
    with actions.thread_shares.hold(str(acme.tenant.pk)):
        with CaptureQueriesContext(connection) as refused_queries:
            refused = api.post(PREDICT.format("no-such-prompt"), {"inputs": []}, format="json")
        assert refused.status_code == 429 and refused["Retry-After"] == "1", refused.content
        assert refused.json()["error"]["code"] == "too_many_concurrent"
        with CaptureQueriesContext(connection) as completion_queries:
            completion = api.post(
                "/api/v1/completions", {"model": "no-such-prompt", "prompt": "x"}, format="json"
            )
        assert completion.status_code == 429, completion.content
        # Only the key's own authentication reads the database; nothing of the prompt.
        assert not prompt_queries(refused_queries) and not prompt_queries(completion_queries)
        # Another team is not affected.
        other = globex.client.post(PREDICT.format("no-such-prompt"), {"inputs": ["x"]}, format="json")
        assert other.status_code == 404


@pytest.mark.django_db
def test_redis_down_or_hanging_is_a_json_503_not_a_500_nor_a_hang(settings, idle_prompt):
    acme = idle_prompt["acme"]
    settings.SERVING_REDIS_TIMEOUT_S = 0.5
    settings.SERVING_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    down = acme.client.post(PREDICT.format("waiting"), {"inputs": ["x"]}, format="json")
    assert down.status_code == 503 and down["Retry-After"] == "2", down.content
    assert down.json()["error"]["code"] == "serving_unavailable"
    # A Redis that accepts connections and never answers: the kernel completes the handshake.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        settings.SERVING_REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        started = time.monotonic()
        hung = acme.client.post(PREDICT.format("waiting"), {"inputs": ["x"]}, format="json")
        assert hung.status_code == 503 and hung.json()["error"]["code"] == "serving_unavailable"
        assert time.monotonic() - started < 3, "the web thread waited on a silent Redis"
    finally:
        silent.close()
