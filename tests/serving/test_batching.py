"""The batcher on tiny models: the soft-prompt KV cache changes nothing, and a mixed batch (prompts,
methods, lengths, ensembles, tasks) gives each row the result it gets alone. No services needed."""

from __future__ import annotations

import time
import uuid

import pytest
from prometheus_client import REGISTRY

from common.contracts import SERVING_ERRORS
from tests.serving.helpers import (
    ANSWER,
    PAIR,
    SENTIMENT,
    SINGLE_TOKEN,
    TOKEN_COUNTS,
    engine_output,
    make_artifact,
    public,
    same_output,
    stored,
)
from workers.engine.inference.predict import LoadedPrompt, predict_mixed
from workers.serving.batcher import Batcher
from workers.serving.cache import PromptCache
from workers.serving.config import ServingConfig
from workers.serving.kv import with_cached_states
from workers.serving.queueing import Pending
from workers.storage import LocalStore

TEXTS = ["a great film", "awful, long, and so very bad that I left before the end", "ok", "good"]


def _prompts(fm):
    """(name, artifact) of every kind a batch may mix; prefixes and p-tuning-style vectors included."""
    return [
        ("vector", make_artifact(fm, SENTIMENT, length=5, seed=1)),
        ("single-token", make_artifact(fm, SINGLE_TOKEN, length=3, seed=2)),
        ("ensemble", make_artifact(fm, SENTIMENT, length=7, members=3, seed=3)),
        ("prefix", make_artifact(fm, SINGLE_TOKEN, method="prefix", length=4, seed=4)),
        ("prefix-ensemble", make_artifact(fm, SENTIMENT, method="prefix", length=2, members=2, seed=5)),
        ("pair", make_artifact(fm, PAIR, length=6, seed=6)),
        ("generation", make_artifact(fm, ANSWER, length=4, seed=7)),
    ]


def _row(spec, i: int) -> dict[str, str]:
    if "text_a" in spec.fields:
        return {"text_a": TEXTS[i % 4], "text_b": TEXTS[(i + 1) % 4]}
    return {"text": TEXTS[i % 4]}


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_kv_cache_gives_the_uncached_results(tiny_models, kind):
    fm = tiny_models[kind]
    items = []
    for i, (_, artifact) in enumerate(_prompts(fm)):
        prompt = LoadedPrompt.from_artifact(fm, artifact)
        items += [(prompt, _row(artifact.spec, i)), (prompt, _row(artifact.spec, i + 1))]
    cached = {id(p): with_cached_states(fm, p) for p, _ in items}
    # The cached form really is different: every member is now 5-D states, vectors shifted by their length.
    vector = cached[id(items[0][0])]
    assert vector.members[0].dim() == 5 and vector.offsets == [5]
    plain = predict_mixed(fm, items)
    fast = predict_mixed(fm, [(cached[id(p)], row) for p, row in items])
    worst = 0.0
    for a, b in zip(plain, fast, strict=True):
        if "text" in a:
            assert a["text"] == b["text"]
        else:
            assert a["label"] == b["label"]
            worst = max(worst, *(abs(a["logprobs"][k] - b["logprobs"][k]) for k in a["logprobs"]))
    assert worst < 1e-4, worst


def _batcher(fm, tmp_path, model_dir, **config) -> tuple[Batcher, LocalStore]:
    store = LocalStore(tmp_path / "store")
    settings = ServingConfig(base_model=str(model_dir), **{"precision": "fp32", **config})
    cache = PromptCache(fm, store, 4, 16, kv_cache=settings.kv_cache)
    return Batcher(fm, cache, settings), store


def _request(model_dir, version_id: str, key: str, sha: str, inputs, deadline_s: float = 30) -> Pending:
    now = time.time()
    return Pending(
        {
            "request_id": uuid.uuid4().hex,
            "tenant_id": "t",
            "prompt": version_id,
            "version": 1,
            "version_id": version_id,
            "artifact_key": key,
            "artifact_sha256": sha,
            "base_model": str(model_dir),
            "inputs": inputs,
            "enqueued_at": now,
            "deadline": now + deadline_s,
        }
    )


@pytest.mark.parametrize("kind", ["gpt2", "llama", "t5"])
def test_mixed_batch_rows_equal_their_results_alone(tiny_models, tiny_model_dirs, tmp_path, kind):
    fm, model_dir = tiny_models[kind], tiny_model_dirs[kind]
    batcher, store = _batcher(fm, tmp_path, model_dir, max_batch_tokens=200)
    requests = []
    for i, (name, artifact) in enumerate(_prompts(fm)):
        sha = stored(store, f"p/{name}", artifact)
        inputs = [_row(artifact.spec, i + j) for j in range(1 + i % 3)]  # 1-3 inputs of varied lengths
        requests.append(_request(model_dir, name, f"p/{name}", sha, inputs))
    rows = [r for i, p in enumerate(requests) for r in batcher._rows(i, p.request)]
    assert len(batcher.sub_batches(rows)) > 1  # the token budget really cuts this batch
    together = batcher.process(requests)
    for pending, reply in zip(requests, together, strict=True):
        assert reply["status"] == "ok", reply
        for j, row in enumerate(pending.request["inputs"]):
            alone = batcher.process(
                [
                    _request(
                        model_dir,
                        pending.request["version_id"],
                        pending.request["artifact_key"],
                        pending.request["artifact_sha256"],
                        [row],
                    )
                ]
            )[0]
            assert same_output(reply["outputs"][j], alone["outputs"][0]), (pending.request["prompt"], j)
            # Token counts (usage figures) do not depend on the batch-mates either.
            assert all(reply["outputs"][j][k] == alone["outputs"][0][k] for k in TOKEN_COUNTS)
            # ... and equals the engine without the serving path (no KV cache, no batching).
            artifact = dict(_prompts(fm))[pending.request["version_id"]]
            assert same_output(reply["outputs"][j], engine_output(fm, artifact, row))
    ensemble = together[2]["outputs"][0]
    assert set(public(ensemble)) == {"label", "scores", "votes"} and sum(ensemble["votes"].values()) == 3


def test_sub_batches_keep_the_budgets_and_the_grouped_baseline_splits_per_prompt(
    tiny_models, tiny_model_dirs, tmp_path
):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    batcher, store = _batcher(fm, tmp_path, model_dir, max_batch_rows=4, max_batch_tokens=10_000)
    requests = []
    for i in range(3):
        artifact = make_artifact(fm, SINGLE_TOKEN, seed=10 + i)
        sha = stored(store, f"p/{i}", artifact)
        requests.append(_request(model_dir, f"v{i}", f"p/{i}", sha, [{"text": t} for t in TEXTS]))
    rows = [r for i, p in enumerate(requests) for r in batcher._rows(i, p.request)]
    groups = batcher.sub_batches(rows)
    # Budgets count model rows: an input takes one, or one per label continued from its cached states
    # when its labels take several tokens (each holds a copy of those states).
    per_input = rows[0].model_rows
    assert all(r.model_rows == per_input for r in rows) and 4 % per_input == 0
    assert [sum(r.model_rows for r in g) for g in groups] == [4] * (12 * per_input // 4)
    assert all(g == sorted(g, key=lambda r: r.width) for g in groups)
    assert max(len({r.version_id for r in g}) for g in groups) > 1  # mixed prompts share passes
    batcher.config.group_by_prompt = True
    grouped = batcher.sub_batches(rows)
    assert all(len({r.version_id for r in g}) == 1 for g in grouped)


def _sample(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_expired_requests_are_dropped_before_compute(tiny_models, tiny_model_dirs, tmp_path):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    batcher, store = _batcher(fm, tmp_path, model_dir)
    sha = stored(store, "p/x", make_artifact(fm))
    forwards = _sample("softserve_serving_forward_seconds_count")
    expired = _request(model_dir, "v", "p/x", sha, [{"text": "late"}], deadline_s=-1)
    replies = batcher.process([expired])
    assert replies[0]["status"] == "expired" and "outputs" not in replies[0]
    assert _sample("softserve_serving_forward_seconds_count") == forwards  # no forward pass ran
    fresh = _request(model_dir, "v", "p/x", sha, [{"text": "in time"}])
    late, ok = batcher.process([expired, fresh])
    assert late["status"] == "expired" and ok["status"] == "ok" and len(ok["outputs"]) == 1


def test_prompt_cache_tiers_hashes_and_fingerprints(tiny_models, tiny_model_dirs, tmp_path, caplog):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    batcher, store = _batcher(fm, tmp_path, model_dir)
    misses = _sample("softserve_serving_prompt_cache_misses_total")
    device_hits = _sample("softserve_serving_prompt_cache_hits_total", {"tier": "device"})
    sha = stored(store, "p/a", make_artifact(fm, seed=1))
    row = [{"text": "fine"}]
    assert batcher.process([_request(model_dir, "a", "p/a", sha, row)])[0]["status"] == "ok"
    assert batcher.process([_request(model_dir, "a", "p/a", sha, row)])[0]["status"] == "ok"
    assert _sample("softserve_serving_prompt_cache_misses_total") == misses + 1
    assert _sample("softserve_serving_prompt_cache_hits_total", {"tier": "device"}) == device_hits + 1
    # A new version is servable at once: a new key, loaded on first use.
    sha_b = stored(store, "p/b", make_artifact(fm, seed=2))
    assert batcher.process([_request(model_dir, "b", "p/b", sha_b, row)])[0]["status"] == "ok"
    # Bytes that do not match the recorded hash, a prompt for another model, a missing object: errors.
    # The tenant is told a stable message; the detail is in the worker's log under the request id.
    for request, detail in [
        (_request(model_dir, "c", "p/a", "0" * 64, row), "hash"),
        (
            _request(model_dir, "o", "p/o", stored(store, "p/o", make_artifact(tiny_models["llama"])), row),
            "fingerprint",
        ),
        (_request(model_dir, "g", "p/none", "", row), "No stored object"),
    ]:
        caplog.clear()
        reply = batcher.process([request])[0]
        assert reply["status"] == "error" and reply["code"] == "prompt_unavailable", reply
        assert reply["error"] == SERVING_ERRORS["prompt_unavailable"]
        logged = [r.getMessage() for r in caplog.records if request.request["request_id"] in r.getMessage()]
        assert any(detail in m for m in logged), caplog.text
    # An error for one request leaves its batch-mates answered.
    mixed = batcher.process(
        [_request(model_dir, "g", "p/none", "", row), _request(model_dir, "a", "p/a", sha, row)]
    )
    assert [r["status"] for r in mixed] == ["error", "ok"]
