"""The prompt page's live traffic panel in Debian's Chromium: per-version charts and figures from the
prediction log, refreshed by htmx while the page stays open. Passes axe-core and leaves a screenshot."""

from __future__ import annotations

import os
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from common.contracts import PredictionOutcome
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.serving.models import Prediction
from softserve.tenancy.actions import create_tenant
from tests.webui.conftest import CHROMIUM, look, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def chromium():
    """No worker stack here: the panel reads the prediction log only, written below as predictions do."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are still synchronous.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


def _log(tenant, prompt, version, n: int, minutes: int, shadow=None, errors: float = 0.0, seed: int = 0):
    rng = random.Random(seed)
    now = timezone.now()
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        failed = rng.random() < errors
        mirror = label if rng.random() < 0.8 else ("negative" if label == "positive" else "positive")
        rows.append(
            Prediction(
                tenant=tenant,
                prompt=prompt,
                version=version,
                alias="production",
                outcome=PredictionOutcome.ERROR if failed else PredictionOutcome.OK,
                error_code="prompt_unavailable" if failed else "",
                latency_ms=rng.uniform(8, 40) * (3 if version.number == 2 else 1),
                rows=1,
                outputs=[] if failed else [label],
                shadow_version=None if failed else shadow,
                shadow_outputs=None if failed or shadow is None else [mirror],
                shadow_agreement=None if failed or shadow is None else float(mirror == label),
                created_at=now - timedelta(seconds=rng.uniform(0, 60 * minutes)),
            )
        )
    Prediction.objects.bulk_create(rows)


def test_live_traffic_charts_per_version(page, live_server):
    tenant, user, _ = create_tenant("acme", "owner@acme.example", PASSWORD)
    prompt = TaskPrompt.objects.create(
        tenant=tenant,
        name="sentiment",
        task_type="classification",
        template="Review: {text}\nSentiment:",
        labels=["negative", "positive"],
        base_model="tiny",
    )
    versions = [
        PromptVersion.objects.create(
            tenant=tenant, prompt=prompt, number=n, method="prompt", status="ready", artifact_key=f"k/{n}"
        )
        for n in (1, 2, 3)
    ]
    Alias.objects.create(
        tenant=tenant,
        prompt=prompt,
        name="production",
        version=versions[0],
        split=[{"version": 1, "weight": 80}, {"version": 2, "weight": 20}],
        shadow=versions[2],
        policy={"max_error_rate": 0.5, "window_s": 300, "min_requests": 20},
    )
    _log(tenant, prompt, versions[0], 160, 12, shadow=versions[2], seed=1)
    _log(tenant, prompt, versions[1], 40, 12, shadow=versions[2], errors=0.1, seed=2)
    sign_in(page, user.username, PASSWORD)
    page.goto("/app/prompts/sentiment")
    table = page.locator("#traffic-table")
    expect(table).to_be_visible()
    expect(page.locator("#traffic-v1")).to_contain_text("primary of production")
    expect(page.locator("#traffic-v1")).to_contain_text("160")
    expect(page.locator("#traffic-v2")).to_contain_text("canary of production (20%)")
    expect(page.locator("#traffic-v3")).to_contain_text("shadow of production")
    for chart in ("requests", "errors", "latency", "agreement"):
        expect(page.locator(f"#traffic-{chart}-chart")).to_have_attribute(
            "data-points", re.compile(r"^[1-9][0-9]*$")
        )
    look(page, "prompt-traffic")
    # New predictions show without reloading the page (htmx asks every 5 s).
    _log(tenant, prompt, versions[0], 40, 1, shadow=versions[2], seed=3)
    expect(page.locator("#traffic-v1")).to_contain_text("200", timeout=12_000)
