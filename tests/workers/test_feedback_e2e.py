"""Feedback and kept inputs end to end on a real `celery worker -B`: the beat schedule of
workers/celeryconf.py runs TASK_EXPIRE_PREDICTION_INPUTS on the test database (inputs past their prompt's
retention are forgotten, newer ones and every output stay), and a dataset version made from feedback on 50
predictions trains a version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from softserve.prompts.models import TaskPrompt
from softserve.serving.models import Prediction
from tests.prompts.test_registry_api import ready_version
from tests.teams import make_prompt
from tests.workers.conftest import ended_job, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_beat_forgets_inputs_past_retention(acme, workers):
    make_prompt(acme)
    version = ready_version(acme.tenant, "sentiment", 1)
    TaskPrompt.objects.filter(pk=version.prompt_id).update(keep_inputs=True, input_retention_days=3)
    now = timezone.now()
    rows = {}
    for name, age in (("old", 4), ("new", 2)):
        rows[name] = Prediction.objects.create(
            tenant=acme.tenant,
            prompt=version.prompt,
            version=version,
            rows=1,
            outputs=["positive"],
            inputs=[{"text": f"{name} input"}],
        )
        Prediction.objects.filter(pk=rows[name].pk).update(created_at=now - timedelta(days=age))
    workers.env["SOFTSERVE_EXPIRE_INPUTS_EVERY_S"] = "1"
    workers.start()
    wait_for(
        lambda: Prediction.objects.get(pk=rows["old"].pk).inputs is None,
        90,
        "the beat's task to forget the old inputs",
        workers,
    )
    kept = Prediction.objects.get(pk=rows["new"].pk)
    assert kept.inputs == [{"text": "new input"}]
    assert Prediction.objects.get(pk=rows["old"].pk).outputs == ["positive"]


def test_feedback_on_50_predictions_becomes_a_dataset_a_job_trains_on(acme, workers, s3, tiny_model_dirs):
    """The issue's measure: feedback on 50 predictions (inputs kept) becomes a dataset version through the
    API, and a tuning job on it succeeds on a real worker (tiny GPT-2)."""
    make_prompt(acme, base_model=str(tiny_model_dirs["gpt2"]))
    version = ready_version(acme.tenant, "sentiment", 1)
    patched = acme.client.patch("/api/v1/prompts/sentiment", {"keep_inputs": True}, format="json")
    assert patched.status_code == 200, patched.content
    for i in range(50):
        truth = ("negative", "positive")[i % 2]
        prediction = Prediction.objects.create(
            tenant=acme.tenant,
            prompt=version.prompt,
            version=version,
            rows=1,
            outputs=["positive"],
            inputs=[{"text": f"a {'dreadful' if i % 2 == 0 else 'wonderful'} film, take {i}"}],
        )
        answer = acme.client.post(
            f"/api/v1/predictions/{prediction.pk}/feedback", {"label": truth}, format="json"
        )
        assert answer.status_code == 200 and answer.json()["correct"] == (truth == "positive")
    made = acme.client.post("/api/v1/prompts/sentiment/feedback-dataset", {}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["row_count"] == 50
    workers.start()
    job = acme.client.post(
        "/api/v1/jobs",
        {
            "kind": "tune",
            "prompt": "sentiment",
            "dataset_version": made.json()["id"],
            "steps": 4,
            "prompt_length": 4,
        },
        format="json",
    )
    assert job.status_code == 201, job.content

    done = wait_for(
        lambda: ended_job(acme, job.json()["id"]), 180, "the job on the feedback dataset", workers
    )
    assert done["status"] == "succeeded", done["error"]
