"""The prompt page's feedback section in Chromium: accuracy per version (a chart each, drawn by app.js
under the CSP), the kept-input settings, and a dataset version made from feedback, opened at once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.serving.models import Feedback, Prediction
from softserve.tenancy.actions import create_tenant
from tests.webui.conftest import look, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"


def _feedback_history(tenant) -> TaskPrompt:
    """Two versions of `sentiment`, with predictions over the last days and feedback on each: v1 right
    about half the time, v2 mostly right; the inputs kept."""
    prompt = TaskPrompt.objects.create(
        tenant=tenant,
        name="sentiment",
        task_type="classification",
        template="Review: {text}\nSentiment:",
        labels=["negative", "positive"],
        base_model="smollm2-135m-instruct",
        keep_inputs=True,
    )
    versions = [
        PromptVersion.objects.create(
            tenant=tenant, prompt=prompt, number=n, method="prompt", status="ready", artifact_key=f"a/{n}"
        )
        for n in (1, 2)
    ]
    now = timezone.now()
    for i in range(60):
        version = versions[i % 2]
        truth = ("negative", "positive")[(i // 2) % 2]
        right = (i % 5 != 0) if version.number == 2 else (i % 4 < 2 or i % 12 == 1)
        out = truth if right else ("positive" if truth == "negative" else "negative")
        prediction = Prediction.objects.create(
            tenant=tenant,
            prompt=prompt,
            version=version,
            rows=1,
            outputs=[out],
            inputs=[{"text": f"film review number {i}"}],
        )
        Prediction.objects.filter(pk=prediction.pk).update(created_at=now - timedelta(days=i % 12, hours=1))
        Feedback.objects.create(tenant=tenant, prediction=prediction, label=truth, correct=right)
    return prompt


def test_feedback_accuracy_settings_and_dataset_from_feedback(page, stack):
    tenant, user, _ = create_tenant("acme", "owner@acme.example", PASSWORD)
    _feedback_history(tenant)
    sign_in(page, user.username, PASSWORD)
    page.goto("/app/prompts/sentiment")
    table = page.locator("#feedback-accuracy")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("v2")
    expect(table.locator("tbody tr").first).to_contain_text("30")
    # One chart per version, drawn from its data island (30 days each).
    for number in (1, 2):
        expect(page.locator(f"#feedback-chart-v{number}")).to_have_attribute("data-points", "30")
    page.locator("#feedback").scroll_into_view_if_needed()
    look(page, "prompt-feedback")

    # Retention: a bad value is refused by the browser's own check first; a good one is saved.
    page.get_by_label("Forget them after (days)").fill("14")
    page.get_by_role("button", name="Save input settings").click()
    expect(page.locator("body")).to_contain_text("Inputs kept for 14 days.")
    assert TaskPrompt.objects.get(tenant=tenant).input_retention_days == 14

    page.get_by_role("button", name="Make a dataset version from feedback").click()
    page.wait_for_url(re.compile(r"/app/datasets/[0-9a-f-]+/versions/1$"))
    expect(page.locator("body")).to_contain_text("sentiment-feedback v1: 60 rows from feedback")
    look(page, "dataset-from-feedback")

    # Turning inputs off forgets them: a second dataset is refused with the reason.
    page.goto("/app/prompts/sentiment")
    page.get_by_label("Keep prediction inputs").uncheck()
    page.get_by_role("button", name="Save input settings").click()
    expect(page.locator("body")).to_contain_text("The inputs kept so far are forgotten.")
    assert not Prediction.objects.filter(tenant=tenant, inputs__isnull=False).exists()
    page.get_by_role("button", name="Make a dataset version from feedback").click()
    expect(page.locator("body")).to_contain_text("does not keep prediction inputs")
    look(page, "prompt-feedback-refused")
