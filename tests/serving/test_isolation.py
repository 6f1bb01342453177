"""One request cannot stop the shared pool or fail another tenant's rows: a poison request (a prompt whose
artifact breaks loading, an input that breaks the forward pass) fails alone with a generic message and
its request id, its batch-mates are answered as if alone, and later predictions still work. In the batcher,
in the embedded pool of the web process, and in a real Redis serving worker."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from common.contracts import SERVING_ERRORS, serving_reply_key, serving_stream
from common.task import TaskSpec
from tests.serving.helpers import (
    ANSWER,
    SENTIMENT,
    engine_output,
    make_artifact,
    publish,
    same_output,
    start_worker,
    stop_worker,
    stored,
    worker_env,
)
from workers import storage
from workers.engine.artifacts.artifact import artifact_bytes
from workers.serving import local
from workers.serving.batcher import Batcher
from workers.serving.cache import PromptCache
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending


def poison_artifact_bytes(fm) -> bytes:
    """A well-formed safetensors prompt whose task metadata lacks its type: loading it raised KeyError,
    an exception the engine does not own (any bug or forged file would do)."""
    data = artifact_bytes(make_artifact(fm, SENTIMENT, seed=99))
    assert b"task_type" in data
    return data.replace(b"task_type", b"task_typo")


def serve_request(model_dir, version_id: str, key: str, sha: str, tenant: str, text: str, **extra) -> dict:
    now = time.time()
    return {
        "request_id": uuid.uuid4().hex,
        "tenant_id": tenant,
        "prompt": version_id,
        "version": 1,
        "version_id": version_id,
        "artifact_key": key,
        "artifact_sha256": sha,
        "base_model": str(model_dir),
        "inputs": [{"text": text}],
        "enqueued_at": now,
        "deadline": now + 60,
        **extra,
    }


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _assert_generic(reply: dict, code: str = "internal") -> None:
    assert reply["status"] == "error" and reply["code"] == code, reply
    assert reply["error"] == SERVING_ERRORS[code]  # no exception text
    assert "Error" not in json.dumps(reply) and "Traceback" not in json.dumps(reply)


class Fixture:
    """Two teams' prompts (classification, generation) and two poisons in one store."""

    def __init__(self, fm, model_dir, store):
        self.fm, self.model_dir = fm, model_dir
        self.sentiment = make_artifact(fm, SENTIMENT, seed=1)
        self.answer = make_artifact(fm, ANSWER, seed=2)
        self.shas = {
            "sentiment": stored(store, "p/sentiment", self.sentiment),
            "answer": stored(store, "p/answer", self.answer),
        }
        store.put_bytes("p/poison", poison_artifact_bytes(fm))

    def good(self, tenant: str, text: str) -> dict:
        return serve_request(self.model_dir, "sentiment", "p/sentiment", self.shas["sentiment"], tenant, text)

    def generate(self, tenant: str, text: str, **extra) -> dict:
        return serve_request(self.model_dir, "answer", "p/answer", self.shas["answer"], tenant, text, **extra)

    def load_poison(self, tenant: str) -> dict:
        return serve_request(self.model_dir, "poison", "p/poison", "", tenant, "anything")

    def forward_poison(self, tenant: str) -> dict:
        # A token limit below 1 breaks the shared forward pass (ValueError in the engine's decoding),
        # failing every row of its sub-batch before the fix.
        return self.generate(tenant, "what is this", max_new_tokens=-1)

    def expected(self, request: dict) -> dict:
        artifact = self.sentiment if request["version_id"] == "sentiment" else self.answer
        return engine_output(self.fm, artifact, request["inputs"][0])


def test_the_batcher_isolates_poison_requests(tiny_models, tiny_model_dirs, tmp_path, caplog):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    store = storage.LocalStore(tmp_path / "store")
    f = Fixture(fm, model_dir, store)
    batcher = Batcher(
        fm, PromptCache(fm, store, 8, 16), ServingConfig(base_model=str(model_dir), precision="fp32")
    )
    batch = [
        f.good("acme", "a fine film"),
        f.forward_poison("evil"),
        f.generate("globex", "why is the sky blue"),
        f.load_poison("evil"),
        f.good("globex", "dull and long"),
    ]
    retries = _sample("softserve_serving_isolation_retries_total")
    replies = batcher.process([Pending(r) for r in batch])
    assert [r["status"] for r in replies] == ["ok", "error", "ok", "error", "ok"], replies
    for i in (0, 2, 4):
        assert same_output(replies[i]["outputs"][0], f.expected(batch[i]))
    _assert_generic(replies[1])
    _assert_generic(replies[3])
    assert _sample("softserve_serving_isolation_retries_total") > retries  # they shared a forward pass
    # The detail is logged under each poison's request id.
    for i, detail in ((1, "token limit"), (3, "task_type")):
        logged = [r for r in caplog.records if batch[i]["request_id"] in r.getMessage()]
        assert logged and any(detail in (r.exc_text or "") + r.getMessage() for r in logged), caplog.text


@pytest.mark.django_db(transaction=True)  # client threads have their own connections
def test_the_embedded_pool_survives_poison_and_keeps_answering(
    settings, monkeypatch, tmp_path, tiny_models, tiny_model_dirs
):
    from tests.teams import Team, bearer

    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    settings.SERVING_REDIS_URL = ""
    settings.SOFTSERVE_BASE_MODELS = [str(model_dir)]
    for name in ("S3_ENDPOINT_URL", "S3_USE_AWS", "SERVING_REDIS_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORAGE_DIR", str(tmp_path / "storage"))
    monkeypatch.setenv("SERVING_MAX_WAIT_MS", "300")  # requests sent together share one batch
    storage.default_store.cache_clear()
    local.close_pools()
    try:
        store = storage.default_store()
        f = Fixture(fm, model_dir, store)
        acme, evil = Team("acme"), Team("evil")
        publish(store, acme.tenant, "sentiment", f.sentiment, str(model_dir))
        poison = publish(store, evil.tenant, "poison", make_artifact(fm, SENTIMENT, seed=3), str(model_dir))
        store.put_bytes(poison.artifact_key, poison_artifact_bytes(fm))
        poison.artifact_sha256 = ""
        poison.save()
        predict = "/api/v1/prompts/{}:predict"
        bad = bearer(evil.key).post(predict.format("poison"), {"inputs": ["x"]}, format="json")
        assert bad.status_code == 502, bad.content
        error = bad.json()["error"]
        assert error["code"] == "internal" and error["message"].startswith(SERVING_ERRORS["internal"])
        assert "request id" in error["message"] and "KeyError" not in bad.content.decode()
        # The forward-stage poison shares a batch with other teams' requests (sent at once).
        requests = [f.good("acme", "a fine film"), f.forward_poison("evil"), f.generate("acme", "why")]
        replies: dict[int, dict] = {}

        def send(i: int) -> None:
            replies[i] = local.submit(requests[i], 30)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert replies[0]["status"] == "ok" and replies[2]["status"] == "ok", replies
        _assert_generic(replies[1])
        for i in (0, 2):
            assert same_output(replies[i]["outputs"][0], f.expected(requests[i]))
        # Later predictions of any prompt still work: the batching thread is alive.
        for text in ("still here", "and again"):
            later = acme.client.post(predict.format("sentiment"), {"inputs": [text]}, format="json")
            assert later.status_code == 200, later.content
        assert all(pool.thread.is_alive() for pool in local._pools.values())
    finally:
        local.close_pools()
        storage.default_store.cache_clear()


def test_a_redis_worker_survives_poison_and_keeps_answering(
    redis_db, s3_env, s3_store, tiny_models, tiny_model_dirs, tmp_path
):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    f = Fixture(fm, model_dir, s3_store)
    env = worker_env(model_dir, {**s3_env, "SERVING_MAX_WAIT_MS": "300"})
    worker = start_worker(env, tmp_path / "worker.log")
    stream = serving_stream(str(model_dir))

    def send(requests: list[dict]) -> list[dict]:
        for request in requests:
            redis_db.xadd(stream, {"body": json.dumps(request)})
        replies = []
        for request in requests:
            popped = redis_db.blpop([serving_reply_key(request["request_id"])], timeout=60)
            assert popped, f"no reply to {request['request_id']}:\n{(tmp_path / 'worker.log').read_text()}"
            replies.append(json.loads(popped[1]))
        return replies

    try:
        batch = [
            f.good("acme", "a fine film"),
            f.load_poison("evil"),
            f.forward_poison("evil"),
            f.generate("globex", "why is the sky blue"),
            f.good("globex", "dull"),
        ]
        replies = send(batch)
        assert [r["status"] for r in replies] == ["ok", "error", "error", "ok", "ok"], replies
        for i in (0, 3, 4):
            assert same_output(replies[i]["outputs"][0], f.expected(batch[i]))
        _assert_generic(replies[1])
        _assert_generic(replies[2])
        later = send([f.good("acme", "later"), f.generate("globex", "later")])
        assert [r["status"] for r in later] == ["ok", "ok"]
        assert worker.poll() is None, "the worker stopped"
        log = (tmp_path / "worker.log").read_text()
        assert batch[1]["request_id"] in log and batch[2]["request_id"] in log  # the detail, by request id
    finally:
        stop_worker(worker)
    assert redis_db.xlen(stream) == 0


def test_budgets_count_class_expansion_and_an_oversized_input_fails_alone(
    tiny_models, tiny_model_dirs, tmp_path
):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    store = storage.LocalStore(tmp_path / "store")
    f = Fixture(fm, model_dir, store)
    labels = [f"label{k}" for k in range(12)]
    # Twelve long labels: scored from one pass over the input, but their tokens alone outgrow a batch
    # (the other inputs, about 15 positions and 3 label positions each, take several sub-batches).
    verbalizer = {x: " ".join(["the", x, "class"] * 20) for x in labels}
    wide = TaskSpec("classification", "{text}\nWhich?", labels, verbalizer)
    store.put_bytes("p/wide", artifact_bytes(make_artifact(fm, wide, seed=7)))
    config = ServingConfig(base_model=str(model_dir), max_batch_rows=8, max_batch_tokens=60, precision="fp32")
    batcher = Batcher(fm, PromptCache(fm, store, 8, 16), config)
    wide_request = serve_request(model_dir, "wide", "p/wide", "", "evil", "one input, twelve labels")
    batch = [f.good("acme", f"fine film {i}") for i in range(6)]
    batch.insert(3, wide_request)
    # Every sub-batch keeps both budgets: its model rows, padded to the run's widest, plus the label
    # positions that run after them.
    rows = [r for i, request in enumerate(batch) if i != 3 for r in batcher._rows(i, request)]
    # Multi-token labels: each input is charged its own row plus one copy of its cached states per label
    # scored from them, and the label positions that run.
    assert min(r.model_rows for r in rows) > 1 and min(r.label_positions for r in rows) > 0
    for group in batcher.sub_batches(rows):
        used = sum(r.model_rows for r in group)
        positions = used * max(r.width for r in group) + sum(r.label_positions for r in group)
        assert used <= 8 and positions <= 60
    assert len(batcher.sub_batches(rows)) > 1, "the budget must cut this batch"
    replies = batcher.process([Pending(r) for r in batch])
    # The input whose labels alone need more than 60 positions is refused with a clear code; the others
    # are answered.
    assert replies[3]["status"] == "error" and replies[3]["code"] == "too_large", replies[3]
    assert replies[3]["error"] == SERVING_ERRORS["too_large"]
    for i, reply in enumerate(replies):
        if i != 3:
            assert reply["status"] == "ok" and same_output(reply["outputs"][0], f.expected(batch[i]))
