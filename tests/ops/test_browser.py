"""/ops/ in Debian's Chromium (Playwright) against the live server: jobs queued, running, stalled and
failed each show where they should, the panel refreshes itself, an operator re-queues a stalled job from
the page, and a non-staff user gets a 404. The screenshot is saved under tests/ops/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from softserve.jobs.models import Job
from tests.ops.fleet import make_fleet

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _signed_in(browser, live_server, user):
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context.new_page()


def test_ops_dashboard_in_chromium(browser, live_server, acme, globex):
    fleet = make_fleet(acme.tenant, globex.tenant)
    operator = get_user_model().objects.create_user("ops@softserve.example", is_staff=True)
    page = _signed_in(browser, live_server, operator)
    response = page.goto(f"{live_server.url}/ops/")
    assert response.status == 200
    for name in ("stalled", "running", "queued", "failed"):
        section = page.locator(f"#ops-{name}")
        for job in fleet.jobs[name]:
            row = section.locator(f'tr[data-job="{job.pk}"]')
            assert row.count() == 1, (name, job.pk)
        assert section.locator("tr[data-job]").count() == len(fleet.jobs[name]), name
    stalled = fleet.jobs["stalled"][0]
    assert "stalled" in page.locator(f'#ops-stalled tr[data-job="{stalled.pk}"] .chip').inner_text()
    assert page.locator('#ops-workers tr[data-state="lost"]').inner_text().startswith("gpu-b")
    assert "out_of_memory" in page.locator("#ops-failure-reasons").inner_text()
    assert page.locator('#ops-now [data-stat="stalled"]').inner_text() == "1"
    page.wait_for_function("() => document.querySelectorAll('canvas[data-points]').length == 2")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ops-dashboard.png"), full_page=True)

    # The panel refreshes itself (htmx, every 5 s).
    with page.expect_response(lambda r: r.url.endswith("/ops/panel"), timeout=8000) as refreshed:
        pass
    assert refreshed.value.status == 200

    # Re-queue the stalled job from the page: it moves to the queued list, audited as the operator.
    page.locator(f'#ops-stalled tr[data-job="{stalled.pk}"] button', has_text="Re-queue").click()
    page.locator(f'#ops-queued tr[data-job="{stalled.pk}"]').wait_for(timeout=10000)
    assert page.locator("#ops-stalled tr[data-job]").count() == 0
    assert Job.objects.get(pk=stalled.pk).status == "queued"
    page.screenshot(path=str(SCREENSHOTS / "ops-after-requeue.png"), full_page=True)

    # A team's owner (not staff) gets a 404, for the page and its JSON.
    member = _signed_in(browser, live_server, acme.owner)
    assert member.goto(f"{live_server.url}/ops/").status == 404
    assert member.goto(f"{live_server.url}/ops/api/summary").status == 404
