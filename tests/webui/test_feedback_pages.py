"""The prompt page's feedback section through Django's test client: figures and chart data, who sees the
forms, the posts (settings, dataset from feedback) refused to other teams and to lower roles."""

from __future__ import annotations

import pytest
from django.test import Client

from softserve.prompts.models import TaskPrompt
from softserve.serving.models import Feedback, Prediction
from tests.prompts.test_registry_api import ready_version
from tests.teams import join, make_prompt
from tests.webui.test_pages import chart_data

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def with_feedback(acme):
    make_prompt(acme)
    version = ready_version(acme.tenant, "sentiment", 1)
    for right in (True, True, False, True):
        prediction = Prediction.objects.create(
            tenant=acme.tenant, prompt=version.prompt, version=version, rows=1, outputs=["positive"]
        )
        Feedback.objects.create(
            tenant=acme.tenant,
            prediction=prediction,
            label="positive" if right else "negative",
            correct=right,
        )
    return version


def test_figures_chart_and_forms_by_role(acme, with_feedback):
    page = signed_in(acme.owner).get("/app/prompts/sentiment")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="feedback-accuracy"' in html
    assert "0.750" in html
    chart = chart_data(html, "feedback-chart-v1")
    assert len(chart["labels"]) == 30 and chart["datasets"][0]["data"][-1] == 0.75
    assert chart["yMin"] == 0 and chart["yMax"] == 1
    assert 'id="feedback-settings"' in html and 'id="feedback-dataset"' in html
    viewer = join(acme, "viewer@acme.example", "viewer").user
    seen = signed_in(viewer).get("/app/prompts/sentiment").content.decode()
    assert 'id="feedback-accuracy"' in seen
    assert 'id="feedback-settings"' not in seen and 'id="feedback-dataset"' not in seen
    refused = signed_in(viewer).post(
        "/app/prompts/sentiment/feedback-settings", {"input_retention_days": "9"}
    )
    assert refused.status_code == 403
    assert TaskPrompt.objects.get(tenant=acme.tenant).input_retention_days == 30


def test_settings_form_and_errors(acme, with_feedback):
    client = signed_in(acme.owner)
    saved = client.post(
        "/app/prompts/sentiment/feedback-settings", {"keep_inputs": "on", "input_retention_days": "9"}
    )
    assert saved.status_code == 302 and saved["Location"].endswith("/app/prompts/sentiment#feedback-h")
    prompt = TaskPrompt.objects.get(tenant=acme.tenant)
    assert prompt.keep_inputs and prompt.input_retention_days == 9
    bad = client.post(
        "/app/prompts/sentiment/feedback-settings",
        {"keep_inputs": "on", "input_retention_days": "400"},
        follow=True,
    )
    assert "input retention days: " in bad.content.decode()
    assert TaskPrompt.objects.get(tenant=acme.tenant).input_retention_days == 9
    # Feedback without kept inputs: the dataset is refused with the reason, on the prompt's page.
    made = client.post("/app/prompts/sentiment/feedback-dataset", follow=True)
    assert made.status_code == 200 and "still has its input" in made.content.decode()


def test_another_teams_prompt_is_not_found(acme, globex, with_feedback):
    client = signed_in(globex.owner)
    assert client.post("/app/prompts/sentiment/feedback-settings", {"keep_inputs": "on"}).status_code == 404
    assert client.post("/app/prompts/sentiment/feedback-dataset").status_code == 404
    assert not TaskPrompt.objects.get(tenant=acme.tenant).keep_inputs
