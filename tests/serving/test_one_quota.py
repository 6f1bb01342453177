"""Issue 22, finding 5: one requests-per-minute quota for every way to predict. The API's predict, the
OpenAI-style completions and the web UI's playground all count on the team's one counter; the playground
used to skip it (DRF's throttle runs on /api/ only)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from softserve.tenancy.models import Quota

pytestmark = pytest.mark.django_db


def _playground(browser: Client):
    return browser.post("/app/playground", {"prompt": "nothing-here", "ref": "production", "inputs": "x"})


def test_the_playground_counts_on_the_teams_quota(acme):
    cache.clear()
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=3)
    browser = Client()
    browser.force_login(acme.owner)
    # A prompt that does not exist: each way answers its own "not found", and each counts.
    assert [_playground(browser).status_code for _ in range(3)] == [422, 422, 422]
    over = _playground(browser)
    assert over.status_code == 429, "the playground predicted past the team's requests per minute"
    assert int(over["Retry-After"]) >= 1 and "throttled" in over.content.decode()
    # The API's ways count on the same counter: it is spent.
    predict = acme.client.post("/api/v1/prompts/nothing-here:predict", {"inputs": ["x"]}, format="json")
    assert predict.status_code == 429, predict.content
    completion = acme.client.post(
        "/api/v1/completions", {"model": "nothing-here", "prompt": "x"}, format="json"
    )
    assert completion.status_code == 429, completion.content
    cache.clear()


def test_api_predictions_spend_the_quota_the_playground_then_meets(acme, globex):
    cache.clear()
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=2)
    codes = [
        acme.client.post(
            "/api/v1/prompts/nothing-here:predict", {"inputs": ["x"]}, format="json"
        ).status_code,
        acme.client.post(
            "/api/v1/completions", {"model": "nothing-here", "prompt": "x"}, format="json"
        ).status_code,
    ]
    assert codes == [404, 404]
    browser = Client()
    browser.force_login(acme.owner)
    assert _playground(browser).status_code == 429
    # Another team's playground is not charged for it.
    other = Client()
    other.force_login(globex.owner)
    assert _playground(other).status_code == 422
    cache.clear()
