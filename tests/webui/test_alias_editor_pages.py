"""The alias editor and the compare page through Django's test client: the verdict before the move, a
refused save kept as typed with each message beside its field, overrides, roles, another team's 404."""

from __future__ import annotations

import pytest
from django.test import Client

from softserve.prompts.models import Alias
from softserve.tenancy.models import AuditEvent
from tests.prompts.test_alias_gates_api import POLICY, scored  # noqa: F401 - the fixture
from tests.teams import join

pytestmark = pytest.mark.django_db

PAGE = "/app/prompts/sentiment"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def editor_post(client: Client, **fields):
    return client.post(PAGE + "/aliases", {"editor": "1", "alias": "production", **fields})


def test_prompt_page_shows_an_editor_per_alias_and_a_new_one(acme, scored):  # noqa: F811
    owner = signed_in(acme.owner)
    assert (
        editor_post(owner, weight_1="100", metric="accuracy", min="0.8", max_regression="0.01").status_code
        == 302
    )
    html = owner.get(PAGE).content.decode()
    assert 'id="editor-production"' in html and 'id="editor-new"' in html
    assert 'name="weight_1" value="100"' in html and 'name="min" value="0.8"' in html
    assert "protected</span>" in html and 'name="protected" value="1" checked' in html
    assert 'id="compare-link"' in html
    alias = Alias.objects.for_tenant(acme.tenant).get(name="production")
    assert alias.policy == POLICY and alias.protected and alias.version.number == 1


def test_verdict_before_the_move(acme, scored):  # noqa: F811
    owner = signed_in(acme.owner)
    editor_post(owner, weight_1="100", metric="accuracy", min="0.8", max_regression="0.01")
    verdict = owner.get(
        PAGE + "/aliases/verdict",
        {
            "alias": "production",
            "weight_1": "90",
            "add_version": "2",
            "add_weight": "10",
            "metric": "accuracy",
            "min": "0.8",
            "max_regression": "0.01",
        },
    )
    html = verdict.content.decode()
    assert verdict.status_code == 200 and "the gate refuses" in html and "10 / 2, p = 0.0386" in html
    assert 'name="override_reason"' in html  # an owner may override
    better = owner.get(
        PAGE + "/aliases/verdict",
        {
            "alias": "production",
            "weight_1": "0",
            "add_version": "3",
            "add_weight": "100",
            "metric": "accuracy",
            "min": "0.8",
        },
    )
    assert "the gate passes" in better.content.decode()
    wrong = owner.get(
        PAGE + "/aliases/verdict",
        {"alias": "production", "weight_1": "50", "add_version": "3", "add_weight": "20"},
    )
    assert "sum to 70" in wrong.content.decode()
    assert Alias.objects.for_tenant(acme.tenant).get(name="production").version.number == 1


def test_refused_save_keeps_the_form_and_an_override_goes_through(acme, scored):  # noqa: F811
    owner = signed_in(acme.owner)
    editor_post(owner, weight_1="100", metric="accuracy", min="0.8", max_regression="0.01")
    fields = {
        "weight_1": "0",
        "add_version": "2",
        "add_weight": "100",
        "metric": "accuracy",
        "min": "0.8",
        "max_regression": "0.01",
        "window_s": "300",
    }
    refused = editor_post(owner, **fields)
    html = refused.content.decode()
    assert refused.status_code == 422 and "The gate refused v2" in html
    assert "the gate refuses" in html and 'name="override_reason"' in html
    assert 'name="window_s" value="300"' in html and '<option value="2" selected>' in html
    bad = editor_post(owner, weight_1="90", add_version="3", add_weight="x", min="2", metric="accuracy")
    html = bad.content.decode()
    assert bad.status_code == 422 and 'id="editor-production-addw-error"' in html
    bad = editor_post(owner, weight_1="90", add_version="3", add_weight="10", min="2", metric="accuracy")
    assert 'id="editor-production-min-error"' in bad.content.decode()
    done = editor_post(owner, **fields, override_reason="known regression, fixed in v6")
    assert done.status_code == 302
    move = AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.move").latest("created_at")
    assert move.after["override_reason"] == "known regression, fixed in v6" and move.after["version"] == 2


def test_members_edit_unprotected_aliases_and_see_protected_ones_read_only(acme, scored):  # noqa: F811
    owner = signed_in(acme.owner)
    editor_post(owner, weight_1="100")
    member = signed_in(join(acme, "member@acme.example", "member").user)
    html = member.get(PAGE).content.decode()
    assert "Protected: only owners and admins change production" in html
    refused = editor_post(member, weight_1="100", shadow="3")
    assert refused.status_code == 422 and "protected alias" in refused.content.decode()
    created = member.post(
        PAGE + "/aliases",
        {"editor": "1", "alias": "staging", "add_version": "1", "add_weight": "90", "weight_3": "10"},
    )
    assert created.status_code == 302
    staging = Alias.objects.for_tenant(acme.tenant).get(name="staging")
    assert staging.version.number == 1 and staging.split[1] == {"version": 3, "weight": 10}
    assert not staging.protected and staging.policy == {}  # a member's form sends no policy


def test_compare_page(acme, globex, scored):  # noqa: F811
    owner = signed_in(acme.owner)
    page = owner.get(PAGE + "/compare?a=1&b=2")
    html = page.content.decode()
    assert page.status_code == 200 and 'id="compare-rows"' in html
    assert html.count("review number") == 12 and "<strong>10</strong> rows only v1" in html
    assert 'id="compare-per-label"' in html
    assert "has no score" in owner.get(PAGE + "/compare?a=1&b=4").content.decode()
    assert owner.get(PAGE + "/compare?a=1&b=99").status_code == 422
    assert owner.get(PAGE + "/compare").status_code == 200  # the form alone
    assert signed_in(globex.owner).get(PAGE + "/compare?a=1&b=2").status_code == 404
    assert signed_in(globex.owner).get(PAGE + "/aliases/verdict?alias=production").status_code == 404
