"""The evaluation set in Debian's Chromium against the live server and a real Celery worker (tiny GPT-2,
embedded serving in the worker): pin a held-out set on the prompt page, have the job form refuse training
data that overlaps it (and allow it when ticked), then watch the new version scored through the serving
pool with its parity badge; a version whose recorded dev score was tampered with fails parity."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from softserve.datasets.models import DatasetVersion
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.datasets.test_datasets_api import sst2_head
from tests.webui.conftest import look, sign_in
from tests.webui.test_browser import PASSWORD, team, upload

pytestmark = pytest.mark.django_db(transaction=True)


def _until(page, selector: str, text: str, seconds: float = 240) -> None:
    """Reload the page until `selector` shows `text` (the worker writes the rows in its own time)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if text in (page.locator(selector).text_content() or ""):
            return
        time.sleep(1)
        page.reload()
    expect(page.locator(selector)).to_contain_text(text)


def test_pin_refuse_overlap_and_see_parity(page, stack):
    tenant, email = team("acme")
    sign_in(page, email, PASSWORD)
    lines = sst2_head(160).splitlines(keepends=True)
    upload(page, "reviews", b"".join(lines[:121]))  # rows 0-119
    page.wait_for_url(re.compile(r"/versions/1$"))
    upload(page, "held-out", lines[0] + b"".join(lines[101:161]))  # rows 100-159: 20 in common
    page.wait_for_url(re.compile(r"/versions/1$"))
    TaskPrompt.objects.create(
        tenant=tenant,
        name="sentiment",
        task_type="classification",
        template="Review: {text}\nSentiment:",
        labels=["negative", "positive"],
        base_model=stack["tiny"],
    )
    held_out = DatasetVersion.objects.get(tenant=tenant, dataset__name="held-out")

    page.goto("/app/prompts/sentiment")
    expect(page.locator("#eval-set-pinned")).to_have_text("No evaluation set pinned.")
    page.get_by_label("Evaluation dataset version").select_option(str(held_out.pk))
    page.get_by_role("button", name="Pin as evaluation set").click()
    expect(page.locator("#eval-set-pinned")).to_contain_text("held-out v1 (60 rows)")

    page.goto("/app/jobs/new?prompt=sentiment")
    page.get_by_label("Dataset version").select_option(label="reviews v1 (120 rows)")
    page.get_by_label("Steps").fill("6")
    page.get_by_label("Prompt length").fill("4")
    page.get_by_label("Batch size").fill("4")
    page.get_by_role("button", name="Start job").click()
    error = page.locator("#id_dataset_version-error")
    expect(error).to_contain_text("20 of the 120 rows of reviews v1 are also in sentiment's evaluation set")
    expect(page.get_by_label("Steps")).to_have_value("6")  # the form kept what was typed
    look(page, "job-new-eval-overlap")
    page.get_by_label("Train even on rows of the prompt's evaluation set").check()
    page.get_by_role("button", name="Start job").click()
    page.wait_for_url(re.compile(r"/app/jobs/[0-9a-f-]+$"))

    page.goto("/app/prompts/sentiment")
    _until(page, "#eval-v1", "parity passed")
    expect(page.locator("#eval-v1")).to_contain_text("accuracy")

    # The same prompt recorded with a dev score 0.3 off what it serves: parity fails, with the gap.
    first = PromptVersion.objects.get(prompt__name="sentiment", number=1)
    dev = dict(first.metrics["dev"])
    dev["accuracy"] = round(dev["accuracy"] + (0.3 if dev["accuracy"] <= 0.7 else -0.3), 4)
    PromptVersion.objects.create(
        tenant=tenant,
        prompt=first.prompt,
        number=2,
        method=first.method,
        hyperparameters=first.hyperparameters,
        dataset_version=first.dataset_version,
        status="ready",
        metrics={**first.metrics, "dev": dev},
        artifact_key=first.artifact_key,
        artifact_sha256=first.artifact_sha256,
    )
    page.reload()
    expect(page.locator("#eval-v2")).to_contain_text("not scored")
    page.get_by_role("button", name="Re-run v2").click()
    expect(page.locator("#eval-v2")).to_contain_text("pending")
    _until(page, "#eval-v2", "parity failed")
    expect(page.locator("#eval-v2")).to_contain_text("gap 0.300")
    look(page, "prompt-eval-set")
