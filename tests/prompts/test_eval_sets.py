"""Evaluation sets through the API: pinning (fit, size, tenancy, audit), the evaluations it queues, the
re-run endpoint, what versions show, and the held-out rule on training jobs. Real Postgres and S3."""

from __future__ import annotations

import pytest

from common.contracts import TASK_EVALUATE_VERSION, ParityStatus
from softserve.prompts import actions
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.tenancy.models import AuditEvent
from tests.datasets.test_datasets_api import sst2_head, upload
from tests.teams import make_dataset_version, make_prompt

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    """Tasks the platform sends (the broker is not under test here)."""
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(actions, "send", lambda name, queue, **kw: calls.append((name, kw)))
    return calls


def _csv(lines: list[bytes]) -> bytes:
    return b"text,label\n" + b"".join(lines)


def _sst2_lines(start: int, stop: int) -> list[bytes]:
    return sst2_head(stop).splitlines(keepends=True)[1 + start : 1 + stop]


def _upload(team, name: str, lines: list[bytes]) -> str:
    response = upload(team.client, name, f"{name}.csv", _csv(lines))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _fields(response) -> dict[str, list[str]]:
    return response.json()["error"]["fields"]


def _pin(team, value, prompt: str = "sentiment"):
    return team.client.patch(f"/api/v1/prompts/{prompt}", {"eval_dataset_version": value}, format="json")


def _ready(team, prompt_name: str, number: int, **fields) -> PromptVersion:
    prompt = TaskPrompt.objects.get(tenant=team.tenant, name=prompt_name)
    return PromptVersion.objects.create(
        tenant=team.tenant,
        prompt=prompt,
        number=number,
        method="prompt",
        status="ready",
        artifact_key=f"k/{number}",
        artifact_sha256="0" * 64,
        **fields,
    )


def test_pin_shows_on_the_prompt_is_audited_and_unpins(acme, s3, sent, django_capture_on_commit_callbacks):
    make_prompt(acme)
    held_out = _upload(acme, "sst2-eval", _sst2_lines(0, 40))
    assert acme.client.get("/api/v1/prompts/sentiment").json()["eval_dataset_version"] is None
    with django_capture_on_commit_callbacks(execute=True):
        response = _pin(acme, held_out)
    assert response.status_code == 200, response.content
    assert response.json()["eval_dataset_version"] == held_out
    assert acme.client.get("/api/v1/prompts/sentiment").json()["eval_dataset_version"] == held_out
    assert acme.client.get("/api/v1/prompts").json()["results"][0]["eval_dataset_version"] == held_out
    event = AuditEvent.objects.get(tenant=acme.tenant, action="prompt.eval_set")
    assert event.before == {"eval_dataset_version": None}
    assert event.after == {"eval_dataset_version": held_out}
    assert sent == []  # no ready versions yet: nothing to score
    response = _pin(acme, None)
    assert response.status_code == 200 and response.json()["eval_dataset_version"] is None
    assert AuditEvent.objects.filter(tenant=acme.tenant, action="prompt.eval_set").count() == 2


def test_a_set_that_does_not_fit_the_prompt_is_refused_beside_the_field(acme, settings):
    make_prompt(acme)
    other_labels = make_dataset_version(acme.tenant, "moods", labels=("negative", "positive", "meh"))
    response = _pin(acme, str(other_labels.pk))
    assert response.status_code == 400
    assert "label set" in _fields(response)["eval_dataset_version"][0]
    pairs = make_dataset_version(acme.tenant, "pairs", columns={"question": "q", "passage": "p"})
    response = _pin(acme, str(pairs.pk))
    assert response.status_code == 400 and "{text}" in _fields(response)["eval_dataset_version"][0]
    generation = make_dataset_version(acme.tenant, "answers", task_type="generation", labels=())
    assert _pin(acme, str(generation.pk)).status_code == 400
    settings.EVAL_SET_MAX_ROWS = 5
    fits = make_dataset_version(acme.tenant, "sst2-small")
    response = _pin(acme, str(fits.pk))
    assert response.status_code == 400
    assert "10 rows; an evaluation set has at most 5" in _fields(response)["eval_dataset_version"][0]
    assert _pin(acme, "not-a-uuid").status_code == 400
    empty = acme.client.patch("/api/v1/prompts/sentiment", {}, format="json")
    assert empty.status_code == 400 and "at least one setting" in str(_fields(empty))
    assert TaskPrompt.objects.get(tenant=acme.tenant).eval_dataset_version is None


def test_another_teams_dataset_version_or_prompt_never_leaks(acme, globex):
    make_prompt(acme)
    make_prompt(globex)
    theirs = make_dataset_version(globex.tenant, "sst2")
    response = _pin(acme, str(theirs.pk))
    assert response.status_code == 400
    assert _fields(response)["eval_dataset_version"] == ["No such dataset version."]
    mine = make_dataset_version(acme.tenant, "sst2")
    # globex names acme's prompt: 404, and acme's prompt is unchanged.
    assert (
        globex.client.patch(
            "/api/v1/prompts/nope", {"eval_dataset_version": str(mine.pk)}, format="json"
        ).status_code
        == 404
    )
    assert _pin(globex, str(mine.pk)).status_code == 400
    _ready(acme, "sentiment", 1)
    # globex's own "sentiment" has no version 1: acme's is not reachable through it.
    assert globex.client.post("/api/v1/prompts/sentiment/versions/1/evaluate").status_code == 404
    assert TaskPrompt.objects.get(tenant=acme.tenant).eval_dataset_version is None


def test_pinning_queues_the_newest_ready_versions_and_evaluate_reruns_one(
    acme, sent, django_capture_on_commit_callbacks
):
    make_prompt(acme)
    for number in range(1, 13):
        _ready(acme, "sentiment", number)
    failed = _ready(acme, "sentiment", 13)
    PromptVersion.objects.filter(pk=failed.pk).update(status="failed", artifact_key="")
    held_out = make_dataset_version(acme.tenant, "sst2-eval")
    with django_capture_on_commit_callbacks(execute=True):
        assert _pin(acme, str(held_out.pk)).status_code == 200
    pending = PromptVersion.objects.filter(prompt__name="sentiment", parity=ParityStatus.PENDING)
    assert sorted(pending.values_list("number", flat=True)) == list(range(3, 13))
    assert {name for name, _ in sent} == {TASK_EVALUATE_VERSION}
    assert {kw["version_id"] for _, kw in sent} == {str(pk) for pk in pending.values_list("pk", flat=True)}

    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = acme.client.post("/api/v1/prompts/sentiment/versions/1/evaluate")
    assert response.status_code == 202, response.content
    assert response.json()["parity"] == ParityStatus.PENDING
    assert sent == [(TASK_EVALUATE_VERSION, {"version_id": response.json()["id"]})]
    assert AuditEvent.objects.filter(tenant=acme.tenant, action="version.evaluate").count() == 1
    refused = acme.client.post("/api/v1/prompts/sentiment/versions/13/evaluate")
    assert refused.status_code == 400 and "not ready" in _fields(refused)["version"][0]
    assert acme.client.post("/api/v1/prompts/sentiment/versions/99/evaluate").status_code == 404

    # Unpinned: what is still pending ends (nothing will score it), and a re-run says to pin first.
    assert _pin(acme, None).status_code == 200
    assert not PromptVersion.objects.filter(prompt__name="sentiment", parity=ParityStatus.PENDING).exists()
    refused = acme.client.post("/api/v1/prompts/sentiment/versions/1/evaluate")
    assert refused.status_code == 400 and "pin one first" in _fields(refused)["eval_dataset_version"][0]


def test_versions_show_parity_and_evaluation_the_list_without_per_row_lists(acme):
    make_prompt(acme)
    evaluation = {
        "dataset_version": "x",
        "rows": 2,
        "metrics": {"accuracy": 0.5},
        "dev_metrics": {"accuracy": 0.5},
        "gap": 0.0,
        "tolerance": 0.02,
        "predictions": ["negative", "negative"],
        "gold": ["negative", "positive"],
        "evaluated_at": "2026-12-07T09:00:00+00:00",
    }
    _ready(acme, "sentiment", 1, evaluation=evaluation, parity=ParityStatus.PASSED)
    listed = acme.client.get("/api/v1/prompts/sentiment/versions").json()["results"][0]
    assert listed["parity"] == "passed" and listed["evaluation"]["metrics"] == {"accuracy": 0.5}
    assert "predictions" not in listed["evaluation"] and "gold" not in listed["evaluation"]
    detail = acme.client.get("/api/v1/prompts/sentiment/versions/1").json()
    assert detail["evaluation"] == evaluation


def test_a_training_job_overlapping_the_evaluation_set_is_refused_unless_allowed(acme, s3, sent):
    make_prompt(acme)
    # The evaluation set: rows 0-39. The training data: rows 30-149, 10 of them held out (with spacing
    # changed on one: rows compare with whitespace normalised).
    held_out = _upload(acme, "sst2-eval", _sst2_lines(0, 40))
    lines = _sst2_lines(30, 150)
    lines[0] = b"  " + lines[0].replace(b" ", b"   ", 3)
    overlapping = _upload(acme, "sst2-train", lines)
    clean = _upload(acme, "sst2-clean", _sst2_lines(40, 160))
    assert _pin(acme, held_out).status_code == 200
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": overlapping, "steps": 2}
    refused = acme.client.post("/api/v1/jobs", body, format="json")
    assert refused.status_code == 400, refused.content
    message = _fields(refused)["dataset_version"][0]
    assert message.startswith("10 of the 120 rows of sst2-train v1 are also in sentiment's evaluation set")
    assert "sst2-eval v1" in message and "allow_eval_overlap" in message
    assert (
        acme.client.post(
            "/api/v1/jobs", {**body, "kind": "ensemble", "members": 2}, format="json"
        ).status_code
        == 400
    )
    # The set itself, as training data: every row overlaps.
    itself = acme.client.post("/api/v1/jobs", {**body, "dataset_version": held_out}, format="json")
    assert _fields(itself)["dataset_version"][0].startswith("40 of the 40 rows")
    allowed = acme.client.post("/api/v1/jobs", {**body, "allow_eval_overlap": True}, format="json")
    assert allowed.status_code == 201, allowed.content
    assert allowed.json()["spec"]["allow_eval_overlap"] is True
    other = acme.client.post("/api/v1/jobs", {**body, "dataset_version": clean}, format="json")
    assert other.status_code == 201
    # Evaluate jobs only score: the rule is for training.
    _ready(acme, "sentiment", 9)
    evaluate = {"kind": "evaluate", "prompt": "sentiment", "dataset_version": held_out, "version": 9}
    assert acme.client.post("/api/v1/jobs", evaluate, format="json").status_code == 201
