"""A shadow version's rows ride in the same mixed batch as the primary's: outputs as if each ran alone,
the row budget counts them, and a shadow that fails never fails the request. No services needed."""

from __future__ import annotations

from tests.serving.helpers import SENTIMENT, SINGLE_TOKEN, engine_output, make_artifact, same_output, stored
from tests.serving.test_batching import _batcher, _request
from workers.serving.queueing import Pending, fair_pick

TEXTS = ["a great film", "awful and long", "ok"]


def _with_shadow(pending: Pending, version_id: str, key: str, sha: str) -> Pending:
    pending.request["shadow"] = {
        "version": 2,
        "version_id": version_id,
        "artifact_key": key,
        "artifact_sha256": sha,
    }
    return pending


def test_shadow_rows_score_in_the_same_batch(tiny_models, tiny_model_dirs, tmp_path):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    batcher, store = _batcher(fm, tmp_path, model_dir)
    primary, shadow, other = (
        make_artifact(fm, SENTIMENT, seed=1),
        make_artifact(fm, SENTIMENT, length=7, seed=2),
        make_artifact(fm, SINGLE_TOKEN, seed=3),
    )
    keys = {
        name: stored(store, f"p/{name}", a) for name, a in [("v1", primary), ("v2", shadow), ("o", other)]
    }
    rows = [{"text": t} for t in TEXTS]
    mine = _with_shadow(_request(model_dir, "v1", "p/v1", keys["v1"], rows), "v2", "p/v2", keys["v2"])
    plain = _request(model_dir, "o", "p/o", keys["o"], rows[:1])
    assert mine.rows == 6 and plain.rows == 1  # the batch budget counts the shadow's rows

    shadow_rows = batcher._rows(0, mine.request, mine.request["shadow"])
    assert [r.shadow for r in shadow_rows] == [True] * 3 and {r.version_id for r in shadow_rows} == {"v2"}
    # The sub-batch budgets see the shadow's model rows like any others.
    budget = _batcher(fm, tmp_path, model_dir, max_batch_rows=sum(r.model_rows for r in shadow_rows))[0]
    both = batcher._rows(0, mine.request) + shadow_rows
    assert len(budget.sub_batches(both)) == 2
    replies = batcher.process([mine, plain])
    assert [r["status"] for r in replies] == ["ok", "ok"]
    for row, out, shadow_out in zip(rows, replies[0]["outputs"], replies[0]["shadow_outputs"], strict=True):
        assert same_output(out, engine_output(fm, primary, row))
        assert same_output(shadow_out, engine_output(fm, shadow, row))
    assert "shadow_outputs" not in replies[1]
    # A batch of max_rows=4 takes the plain request beside a 2-row request with a shadow, not more.
    small = _with_shadow(_request(model_dir, "v1", "p/v1", keys["v1"], rows[:2]), "v2", "p/v2", keys["v2"])
    chosen, waiting = fair_pick([small, plain, plain], 4)
    assert len(chosen) == 1 and len(waiting) == 2


def test_a_failing_shadow_never_fails_the_request(tiny_models, tiny_model_dirs, tmp_path, caplog):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    batcher, store = _batcher(fm, tmp_path, model_dir)
    primary = make_artifact(fm, SENTIMENT, seed=1)
    sha = stored(store, "p/v1", primary)
    rows = [{"text": t} for t in TEXTS]
    # The shadow's artifact is missing from storage: the prompt cache cannot load it.
    request = _with_shadow(_request(model_dir, "v1", "p/v1", sha, rows), "gone", "p/gone", "0" * 64)
    reply = batcher.process([request])[0]
    assert reply["status"] == "ok" and "shadow_outputs" not in reply
    for row, out in zip(rows, reply["outputs"], strict=True):
        assert same_output(out, engine_output(fm, primary, row))
    assert "shadow version 2" in caplog.text
