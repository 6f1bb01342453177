"""Feedback on predictions over REST (Postgres; S3 for datasets made from feedback): record and replace,
bad answers, other teams' predictions, accuracy per version over days, a dataset version from feedback
that a tuning job accepts, input retention (the PATCH, the periodic task) and deletion with the prompt.

Prediction rows are made here directly (`predicted`): the predict action writes them in production."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from common.contracts import TASK_EXPIRE_PREDICTION_INPUTS, TASK_TUNE
from softserve.datasets.models import DatasetVersion
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.serving.models import Feedback, Prediction
from softserve.tenancy.models import AuditEvent, Quota
from tests.jobs.test_jobs_api import broker, post_job  # noqa: F401 - the broker fixture
from tests.prompts.test_registry_api import ready_version
from tests.teams import make_prompt
from workers.config import sqlalchemy_url
from workers.retention import expire_prediction_inputs

pytestmark = pytest.mark.django_db


def predicted(version: PromptVersion, outputs: list[str], inputs: list[str] | None = None, **fields):
    """A prediction of `version` as the predict action logs it (inputs only where given)."""
    return Prediction.objects.create(
        tenant=version.tenant,
        prompt=version.prompt,
        version=version,
        alias="production",
        rows=len(outputs),
        outputs=outputs,
        inputs=[{"text": text} for text in inputs] if inputs is not None else None,
        **fields,
    )


@pytest.fixture
def sentiment(acme) -> PromptVersion:
    make_prompt(acme)
    return ready_version(acme.tenant, "sentiment", 1)


def settings_patch(team, **body):
    return team.client.patch("/api/v1/prompts/sentiment", body, format="json")


def feedback(team, prediction, **body):
    return team.client.post(f"/api/v1/predictions/{prediction.pk}/feedback", body, format="json")


def test_feedback_is_recorded_then_replaced(acme, sentiment):
    prediction = predicted(sentiment, ["positive", "negative"])
    first = feedback(acme, prediction, label="positive")
    assert first.status_code == 200, first.content
    assert first.json()["correct"] is True and first.json()["index"] == 0
    assert first.json()["prediction_id"] == str(prediction.pk)
    # The newest word counts: one row per output, replaced.
    again = feedback(acme, prediction, label="negative")
    assert again.status_code == 200 and again.json()["correct"] is False
    second = feedback(acme, prediction, label="negative", index=1)
    assert second.json()["correct"] is True
    rows = sorted(Feedback.objects.filter(prediction=prediction).values_list("index", "label", "correct"))
    assert rows == [(0, "negative", False), (1, "negative", True)]
    # High volume: no audit row per feedback.
    assert not AuditEvent.objects.filter(action__startswith="feedback").exists()


def test_bad_feedback_is_a_field_error(acme, sentiment):
    prediction = predicted(sentiment, ["positive"])
    cases = [
        ({"label": "neutral"}, "label"),
        ({"index": 1, "label": "positive"}, "index"),
        ({"index": -1, "label": "positive"}, "index"),
        ({}, "label"),
        ({"label": "positive", "target": "x"}, "label"),
        ({"target": "good"}, "target"),  # a classification takes a label
        ({"label": ["positive"]}, "label"),
    ]
    for body, field in cases:
        answer = feedback(acme, prediction, **body)
        assert answer.status_code == 400, (body, answer.content)
        assert field in answer.json()["error"]["fields"], (body, answer.json())
    assert not Feedback.objects.exists()


def test_generation_feedback_takes_a_bounded_target(acme, settings):
    make_prompt(acme, name="answer", task_type="generation", template="Q: {text}\nA:", labels=[])
    version = ready_version(acme.tenant, "answer", 1)
    prediction = predicted(version, ["Paris"])
    assert feedback(acme, prediction, target="Paris").json()["correct"] is True
    assert feedback(acme, prediction, target="Lyon").json()["correct"] is False
    assert feedback(acme, prediction, label="Paris").status_code == 400
    too_long = feedback(acme, prediction, target="x" * (settings.LIMITS.dataset_max_target_chars + 1))
    assert too_long.status_code == 400 and "target" in too_long.json()["error"]["fields"]


def test_another_teams_or_an_unknown_prediction_is_not_found(acme, globex, sentiment):
    prediction = predicted(sentiment, ["positive"])
    assert feedback(globex, prediction, label="positive").status_code == 404
    # Not found comes before the body is read: nothing says the prediction exists.
    assert feedback(globex, prediction, label="nope").status_code == 404
    unknown = acme.client.post(
        "/api/v1/predictions/00000000-0000-0000-0000-000000000000/feedback", {"label": "x"}, format="json"
    )
    assert unknown.status_code == 404
    assert acme.client.post("/api/v1/predictions/not-a-uuid/feedback", {}, format="json").status_code == 404
    assert globex.client.get("/api/v1/prompts/sentiment/feedback").status_code == 404
    assert not Feedback.objects.exists()


def test_accuracy_per_version_and_day(acme, globex, sentiment):
    v2 = ready_version(acme.tenant, "sentiment", 2)
    now = timezone.now()
    for i, (version, out, truth, ago) in enumerate(
        [
            (sentiment, "positive", "positive", 2),
            (sentiment, "positive", "negative", 2),
            (sentiment, "negative", "negative", 0),
            (v2, "positive", "positive", 0),
            (v2, "positive", "positive", 1),
            (sentiment, "positive", "positive", 40),  # outside the window
        ]
    ):
        prediction = predicted(version, [out])
        Prediction.objects.filter(pk=prediction.pk).update(created_at=now - timedelta(days=ago, minutes=i))
        assert feedback(acme, prediction, label=truth).status_code == 200
    body = acme.client.get("/api/v1/prompts/sentiment/feedback?days=30").json()
    assert body["days"] == 30 and [v["version"] for v in body["versions"]] == [2, 1]
    v2_figures, v1_figures = body["versions"]
    assert (v1_figures["count"], v1_figures["correct"], v1_figures["accuracy"]) == (3, 2, 0.6667)
    assert (v2_figures["count"], v2_figures["correct"], v2_figures["accuracy"]) == (2, 2, 1.0)
    assert [(d["count"], d["correct"]) for d in v1_figures["days"]] == [(2, 1), (1, 1)]
    assert v1_figures["days"][0]["accuracy"] == 0.5
    wider = acme.client.get("/api/v1/prompts/sentiment/feedback?days=60").json()
    assert wider["versions"][1]["count"] == 4
    for bad in ("0", "366", "x"):
        answer = acme.client.get(f"/api/v1/prompts/sentiment/feedback?days={bad}")
        assert answer.status_code == 400 and "days" in answer.json()["error"]["fields"]
    # Scoped to the team: another team's prompt of the same name knows nothing of these.
    make_prompt(globex)
    assert globex.client.get("/api/v1/prompts/sentiment/feedback").json()["versions"] == []


TEXTS = [f"review number {i} of a film" for i in range(30)]


def _collect(team, version, with_inputs: bool = True) -> None:
    """30 predictions with feedback: the truth alternates labels; half the outputs were wrong."""
    for i, text in enumerate(TEXTS):
        truth = ("negative", "positive")[i % 2]
        out = truth if i % 4 < 2 else ("positive" if truth == "negative" else "negative")
        prediction = predicted(version, [out], [text] if with_inputs else None)
        assert feedback(team, prediction, label=truth).status_code == 200


@pytest.fixture
def job_messages(broker):  # noqa: F811 - the jobs tests' fixture, imported above
    """The Celery messages on the jobs tests' real Redis broker."""
    return broker


def test_dataset_from_feedback_is_ready_for_a_job(
    acme, sentiment, s3, job_messages, django_capture_on_commit_callbacks
):
    refused = acme.client.post("/api/v1/prompts/sentiment/feedback-dataset", {}, format="json")
    assert refused.status_code == 400 and "prompt" in refused.json()["error"]["fields"]
    assert "keep_inputs" in refused.json()["error"]["fields"]["prompt"][0]
    assert (
        acme.client.patch("/api/v1/prompts/sentiment", {"keep_inputs": True}, format="json").status_code
        == 200
    )
    empty = acme.client.post("/api/v1/prompts/sentiment/feedback-dataset", {}, format="json")
    assert empty.status_code == 400 and "no feedback" in empty.json()["error"]["fields"]["feedback"][0]
    _collect(acme, sentiment, with_inputs=False)  # kept nothing: feedback, but no input
    none_kept = acme.client.post("/api/v1/prompts/sentiment/feedback-dataset", {}, format="json")
    assert none_kept.status_code == 400
    assert "still has its input" in none_kept.json()["error"]["fields"]["feedback"][0]
    _collect(acme, sentiment)
    # The same input corrected twice: one row, the newer answer.
    again = predicted(sentiment, ["positive"], [TEXTS[0]])
    feedback(acme, again, label="positive")
    made = acme.client.post("/api/v1/prompts/sentiment/feedback-dataset", {}, format="json")
    assert made.status_code == 201, made.content
    version = made.json()
    assert version["dataset"] == "sentiment-feedback" and version["number"] == 1
    assert version["row_count"] == 30 and version["task_type"] == "classification"
    assert version["columns"] == {"text": "text"} and version["labels"] == ["negative", "positive"]
    assert version["label_counts"] == {"negative": 14, "positive": 16}
    assert version["split_counts"]["dev"] >= 1
    dataset_id = DatasetVersion.objects.get(pk=version["id"]).dataset_id
    preview = acme.client.get(f"/api/v1/datasets/{dataset_id}/versions/1/preview?limit=100")
    rows = preview.json()["rows"]
    assert {r["text"]: r["label"] for r in rows}[TEXTS[0]] == "positive"
    event = AuditEvent.objects.get(action="feedback.dataset")
    assert event.after["rows"] == 30 and event.after["prompt"] == "sentiment"
    # Named dataset, `since`: a second version of another dataset, with the rows corrected since then.
    named = acme.client.post(
        "/api/v1/prompts/sentiment/feedback-dataset",
        {"dataset": "corrections", "since": (timezone.now() + timedelta(days=1)).isoformat()},
        format="json",
    )
    assert named.status_code == 400  # nothing since tomorrow
    bad = acme.client.post(
        "/api/v1/prompts/sentiment/feedback-dataset", {"dataset": "no spaces"}, format="json"
    )
    assert bad.status_code == 400 and "dataset" in bad.json()["error"]["fields"]
    # A tuning job on it is accepted (the prompt's template and labels fit the version).
    job = post_job(
        acme,
        django_capture_on_commit_callbacks,
        kind="tune",
        prompt="sentiment",
        dataset_version=version["id"],
        steps=5,
    )
    assert job.status_code == 201, job.content
    assert job_messages()[0]["task"] == TASK_TUNE


def test_keep_inputs_and_retention_settings(acme, globex, sentiment):
    kept = predicted(sentiment, ["positive"], ["kept text"])
    answer = acme.client.patch(
        "/api/v1/prompts/sentiment", {"keep_inputs": True, "input_retention_days": 7}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["keep_inputs"] is True and answer.json()["input_retention_days"] == 7
    event = AuditEvent.objects.filter(action="prompt.update").latest("created_at")
    assert event.before == {"keep_inputs": False, "input_retention_days": 30}
    for body, field in [
        ({"input_retention_days": 0}, "input_retention_days"),
        ({"input_retention_days": 366}, "input_retention_days"),
        ({"keep_inputs": "maybe"}, "keep_inputs"),
        ({}, "non_field_errors"),
    ]:
        refused = acme.client.patch("/api/v1/prompts/sentiment", body, format="json")
        assert refused.status_code == 400 and field in refused.json()["error"]["fields"], refused.json()
    assert (
        globex.client.patch("/api/v1/prompts/sentiment", {"keep_inputs": False}, format="json").status_code
        == 404
    )
    kept.refresh_from_db()
    assert kept.inputs == [{"text": "kept text"}]
    # Turning it off forgets the kept inputs at once.
    off = acme.client.patch("/api/v1/prompts/sentiment", {"keep_inputs": False}, format="json")
    assert off.status_code == 200
    kept.refresh_from_db()
    assert kept.inputs is None and kept.outputs == ["positive"]
    assert (
        AuditEvent.objects.filter(action="prompt.update").latest("created_at").after["inputs_forgotten"] == 1
    )


@pytest.mark.django_db(transaction=True)
def test_the_periodic_task_forgets_inputs_past_retention(acme, globex, sentiment):
    """The Celery task's SQL on its own connection (SQLAlchemy, as the worker runs it): committed rows."""
    TaskPrompt.objects.filter(pk=sentiment.prompt_id).update(keep_inputs=True, input_retention_days=7)
    make_prompt(globex, name="other")
    other = ready_version(globex.tenant, "other", 1)
    TaskPrompt.objects.filter(pk=other.prompt_id).update(keep_inputs=True, input_retention_days=30)
    now = timezone.now()
    old = predicted(sentiment, ["positive"], ["old"])
    fresh = predicted(sentiment, ["positive"], ["fresh"])
    other_old = predicted(other, ["negative"], ["kept longer"])
    Prediction.objects.filter(pk__in=[old.pk, other_old.pk]).update(created_at=now - timedelta(days=8))
    Prediction.objects.filter(pk=fresh.pk).update(created_at=now - timedelta(days=6))
    engine = sa.create_engine(_sqlalchemy_url())
    try:
        assert expire_prediction_inputs(engine) == 1
        assert expire_prediction_inputs(engine) == 0  # idempotent
    finally:
        engine.dispose()
    for row, inputs in [(old, None), (fresh, [{"text": "fresh"}]), (other_old, [{"text": "kept longer"}])]:
        row.refresh_from_db()
        assert row.inputs == inputs


def test_the_task_is_registered_and_scheduled():
    import workers.tasks  # noqa: F401 - registers the tasks
    from workers.celeryconf import app

    assert TASK_EXPIRE_PREDICTION_INPUTS in app.tasks
    schedule = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert TASK_EXPIRE_PREDICTION_INPUTS in schedule


def _sqlalchemy_url() -> str:
    db = connection.settings_dict
    return sqlalchemy_url(f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")


def test_predictions_and_feedback_go_with_the_prompt(acme, sentiment):
    prediction = predicted(sentiment, ["positive"], ["text"])
    feedback(acme, prediction, label="positive")
    assert acme.client.delete("/api/v1/prompts/sentiment").status_code == 204
    assert not Prediction.objects.exists() and not Feedback.objects.exists()


def test_feedback_counts_on_the_teams_requests_per_minute(acme, sentiment):
    """Feedback is a write like any other: the team's one requests-per-minute counter (429 past it)."""
    cache.clear()
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=3)
    prediction = predicted(sentiment, ["positive"])
    codes = [feedback(acme, prediction, label="positive").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    cache.clear()
