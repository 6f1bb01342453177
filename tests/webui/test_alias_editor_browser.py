"""The alias editor and the compare page in Chromium: the gate's verdict appears as the weights change,
before anything moves; an owner overrides a refusal with a reason; two versions side by side."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from softserve.prompts.models import Alias, TaskPrompt
from softserve.tenancy.actions import create_tenant
from softserve.tenancy.models import AuditEvent
from tests.prompts.evaluated import eval_set, evaluated_version, gold_labels
from tests.webui.conftest import look, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"
POLICY = {"metric": "accuracy", "min": 0.8, "max_regression": 0.01}


def scored_prompt(tenant) -> TaskPrompt:
    """sentiment on its evaluation set (stored rows): v1 0.9 (production, gated), v2 0.7, v3 0.95."""
    prompt = TaskPrompt.objects.create(
        tenant=tenant,
        name="sentiment",
        task_type="classification",
        template="Review: {text}\nSentiment:",
        labels=["negative", "positive"],
        base_model="smollm2-135m-instruct",
    )
    gold = gold_labels(40)
    dataset = eval_set(tenant, prompt, gold, store=True)
    v1 = evaluated_version(tenant, prompt, 1, dataset, gold, {0, 1, 2, 3})
    evaluated_version(tenant, prompt, 2, dataset, gold, {2, 3, *range(4, 14)})
    evaluated_version(tenant, prompt, 3, dataset, gold, {3, 4})
    Alias.objects.create(
        tenant=tenant, prompt=prompt, name="production", version=v1, policy=POLICY, protected=True
    )
    return prompt


def test_alias_editor_shows_the_verdict_before_the_move_and_compare_page(page, stack):
    tenant, user, _ = create_tenant("acme", "owner@acme.example", PASSWORD)
    scored_prompt(tenant)
    sign_in(page, user.username, PASSWORD)
    page.goto("/app/prompts/sentiment")
    editor = page.locator("#editor-production")
    expect(editor.locator("h3")).to_contain_text("production")
    expect(editor.get_by_label("Minimum score")).to_have_value("0.8")
    # A 90/10 canary of the worse v2: the verdict comes in as the fields change, nothing moves yet.
    editor.get_by_label("v1 weight").fill("90")
    editor.get_by_label("Add a version").select_option("2")
    editor.get_by_label("Its weight").fill("10")
    editor.get_by_label("Its weight").press("Tab")
    verdict = page.locator("#verdict-production")
    expect(verdict).to_contain_text("the gate refuses", timeout=10_000)
    expect(verdict).to_contain_text("10 / 2, p = 0.0386")
    expect(verdict.locator("ul.reasons li")).to_have_count(3)
    look(page, "alias-editor-verdict-refused")
    assert Alias.objects.get(tenant=tenant, name="production").split == []
    # The better v3 instead: the verdict passes, still before any move.
    editor.get_by_label("Add a version").select_option("3")
    expect(verdict).to_contain_text("the gate passes", timeout=10_000)
    editor.get_by_label("Add a version").select_option("2")
    expect(verdict).to_contain_text("the gate refuses", timeout=10_000)
    # The owner overrides with a reason: the canary goes in, audited with the verdict.
    verdict.get_by_label("Override reason").fill("hotfix canary, watched by the on-call")
    editor.get_by_role("button", name="Save production").click()
    expect(page.locator(".messages")).to_contain_text("production saved.")
    alias = Alias.objects.get(tenant=tenant, name="production")
    assert alias.version.number == 1 and alias.split == [
        {"version": 1, "weight": 90},
        {"version": 2, "weight": 10},
    ]
    move = AuditEvent.objects.filter(tenant=tenant, action="alias.move").latest("created_at")
    assert move.after["override_reason"] == "hotfix canary, watched by the on-call"
    expect(page.locator("#editor-production").get_by_label("v2 weight")).to_have_value("10")
    # A refused save comes back filled, the message beside its field.
    page.locator("#editor-production").get_by_label("v2 weight").fill("30")
    page.locator("#editor-production").get_by_role("button", name="Save production").click()
    expect(page.locator("#editor-production-versions-error")).to_contain_text("sum to 120")
    expect(page.locator("#editor-production").get_by_label("v2 weight")).to_have_value("30")
    page.locator("#editor-production").scroll_into_view_if_needed()
    look(page, "alias-editor-refused-kept")

    page.get_by_role("link", name="Compare versions on the evaluation set").click()
    page.get_by_label("Baseline").select_option("1")
    page.get_by_label("Compared with").select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#compare-rows tbody tr")).to_have_count(12)
    expect(page.locator("#compare-per-label tbody tr")).to_have_count(2)
    expect(page.locator("#compare-mcnemar")).to_contain_text("p = 0.0386")
    expect(page.locator("#compare-rows tbody tr").first).to_contain_text("review number 0")
    look(page, "compare-versions")
