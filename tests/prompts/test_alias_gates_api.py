"""Alias PUT with splits, shadows, policies and gates; protected aliases; the gate and compare endpoints."""

from __future__ import annotations

import pytest

from common.contracts import ParityStatus, VersionStatus, WebhookEvent
from softserve.prompts.models import Alias, TaskPrompt
from softserve.tenancy.models import ApiKey, AuditEvent
from softserve.webhooks.models import Webhook, WebhookDelivery
from tests.prompts.evaluated import eval_set, evaluated_version, gold_labels
from tests.teams import bearer, make_prompt

pytestmark = pytest.mark.django_db

PROD = "/api/v1/prompts/sentiment/aliases/production"
STAGING = "/api/v1/prompts/sentiment/aliases/staging"
POLICY = {"metric": "accuracy", "min": 0.8, "max_regression": 0.01}


@pytest.fixture
def scored(acme, tmp_path, settings):
    """sentiment with an evaluation set (stored rows) and versions: v1 (0.9), v2 worse (0.7; b=10, c=2
    against v1), v3 better (0.95), v4 not scored yet (pending), v5 still training (pending)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    make_prompt(acme)
    prompt = TaskPrompt.objects.for_tenant(acme.tenant).get(name="sentiment")
    gold = gold_labels(40)
    dataset = eval_set(acme.tenant, prompt, gold, store=True)
    made = {
        1: evaluated_version(acme.tenant, prompt, 1, dataset, gold, {0, 1, 2, 3}),
        2: evaluated_version(acme.tenant, prompt, 2, dataset, gold, {2, 3, *range(4, 14)}),
        3: evaluated_version(acme.tenant, prompt, 3, dataset, gold, {3, 4}),
        4: evaluated_version(acme.tenant, prompt, 4, parity=ParityStatus.PENDING),
        5: evaluated_version(acme.tenant, prompt, 5, status=VersionStatus.PENDING),
    }
    Webhook.objects.create(
        tenant=acme.tenant,
        url="https://hooks.example/x",
        events=[WebhookEvent.ALIAS_MOVED, WebhookEvent.GATE_FAILED],
        secret="s",
    )
    return {"prompt": prompt, "versions": made, "dataset": dataset}


def member(team, role="member"):
    _, key = ApiKey.mint(team.tenant, role, ["read", "write"], role=role, created_by=team.owner)
    return bearer(key)


def deliveries(team, event) -> list[dict]:
    rows = WebhookDelivery.objects.for_tenant(team.tenant).filter(event=event).order_by("created_at")
    return [d.payload["data"] for d in rows]


def put(client, path, body):
    return client.put(path, body, format="json")


@pytest.mark.parametrize(
    "body, field, words",
    [
        (
            {"versions": [{"version": 1, "weight": 90}, {"version": 3, "weight": 20}]},
            "versions",
            "sum to 110",
        ),
        (
            {"versions": [{"version": 1, "weight": 50}, {"version": 1, "weight": 50}]},
            "versions",
            "more than once",
        ),
        ({"versions": [{"version": 1, "weight": 90}, {"version": 5, "weight": 10}]}, "versions", "not ready"),
        (
            {"versions": [{"version": 1, "weight": 90}, {"version": 9, "weight": 10}]},
            "versions",
            "no version 9",
        ),
        ({"versions": [{"version": 1, "weight": 101}]}, "versions", "0 to 100"),
        ({"versions": [{"version": 1, "weight": 99.5}, {"version": 3, "weight": 0.5}]}, "versions", "whole"),
        ({"versions": [{"version": n, "weight": 20} for n in range(1, 6)]}, "versions", "at most 4"),
        ({"versions": [{"version": 1}]}, "versions", "exactly `version` and `weight`"),
        ({"versions": []}, "versions", "at least one"),
        ({"versions": {"version": 1}}, "versions", "A list"),
        ({"version": 1, "versions": [{"version": 1, "weight": 100}]}, "versions", "not both"),
        ({"version": 1, "shadow": 1}, "shadow", "takes traffic"),
        (
            {"versions": [{"version": 1, "weight": 90}, {"version": 3, "weight": 10}], "shadow": 3},
            "shadow",
            "",
        ),
        ({"version": 1, "shadow": 5}, "shadow", "not ready"),
        ({"version": 1, "policy": {"metric": "f2"}}, "policy.metric", "accuracy, macro_f1"),
        ({"version": 1, "policy": {"min": 1.5}}, "policy.min", "From 0 to 1"),
        ({"version": 1, "policy": {"alpha": 0}}, "policy.alpha", "above 0"),
        ({"version": 1, "policy": {"window_s": 2.5}}, "policy.window_s", "whole number"),
        ({"version": 1, "policy": {"max_p95_ms": True}}, "policy.max_p95_ms", "whole number"),
        ({"version": 1, "policy": {"gate": 1}}, "policy.gate", "Unknown policy key"),
        ({"version": 1, "policy": [1]}, "policy", "An object"),
        ({"version": 1, "override_reason": ""}, "override_reason", "blank"),
        ({"version": 1, "override_reason": "x" * 501}, "override_reason", "500"),
        ({}, "version", "needs a `version`"),
    ],
)
def test_bad_alias_bodies_get_field_errors(acme, scored, body, field, words):
    response = put(acme.client, PROD, body)
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert field in fields and words in " ".join(fields[field]), fields
    assert not Alias.objects.for_tenant(acme.tenant).exists()


def test_split_shadow_and_policy_are_stored_shown_and_announced(acme, scored):
    split = [{"version": 3, "weight": 10}, {"version": 1, "weight": 90}]
    policy = {**POLICY, "alpha": 0.05, "max_error_rate": 0.05, "max_p95_ms": 2000, "window_s": 300}
    moved = put(acme.client, PROD, {"versions": split, "shadow": 2, "policy": {**policy, "min_requests": 20}})
    assert moved.status_code == 200, moved.content
    alias = acme.client.get(PROD).json()
    assert alias["version"] == 1 and alias["shadow"] == 2 and alias["protected"] is True
    assert alias["split"] == [{"version": 1, "weight": 90}, {"version": 3, "weight": 10}]
    assert alias["policy"] == {**policy, "min_requests": 20}
    row = Alias.objects.for_tenant(acme.tenant).get(name="production")
    assert row.split == alias["split"] and row.shadow.number == 2  # as the traffic router reads them
    # Omitted fields are kept; a plain version clears the split; the shadow stays unless named.
    assert put(acme.client, PROD, {"version": 3}).json()["split"] == []
    alias = acme.client.get(PROD).json()
    assert (alias["version"], alias["shadow"], alias["policy"]["min"]) == (3, 2, 0.8)
    assert put(acme.client, PROD, {"shadow": None, "policy": {}}).json()["policy"] == {}
    alias = acme.client.get(PROD).json()
    assert alias["shadow"] is None and alias["version"] == 3
    assert [(h["from"], h["to"]) for h in alias["history"]] == [(None, 1), (1, 3), (3, 3)]
    assert alias["history"][0]["split"] == [{"version": 1, "weight": 90}, {"version": 3, "weight": 10}]
    events = AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.move").order_by("created_at")
    first = events[0]
    assert first.before is None and first.after["shadow"] == 2 and first.after["policy"]["min"] == 0.8
    # Three moves, each its own audit row and alias.moved delivery; a policy-only change is neither.
    assert put(acme.client, PROD, {"policy": POLICY}).status_code == 200
    assert events.count() == 3
    assert AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.update").count() == 1
    announced = deliveries(acme, WebhookEvent.ALIAS_MOVED)
    assert [(d["version"], d["shadow"]) for d in announced] == [(1, 2), (3, 2), (3, None)]
    assert announced[1]["before"]["split"][1] == {"version": 3, "weight": 10}


def test_primary_is_the_heaviest_then_the_current_then_the_lowest(acme, scored):
    assert put(acme.client, STAGING, {"version": 3}).status_code == 200
    even = [{"version": 1, "weight": 50}, {"version": 3, "weight": 50}]
    assert put(acme.client, STAGING, {"versions": even}).json()["version"] == 3  # the tie keeps v3
    assert put(acme.client, "/api/v1/prompts/sentiment/aliases/b", {"versions": even}).json()["version"] == 1
    one = put(acme.client, STAGING, {"versions": [{"version": 1, "weight": 100}]}).json()
    assert one["version"] == 1 and one["split"] == []  # a split of one version is a plain move
    zero = [{"version": 3, "weight": 100}, {"version": 1, "weight": 0}]
    assert put(acme.client, STAGING, {"versions": zero}).json()["split"] == zero  # kept, no traffic


def test_gate_refuses_a_worse_version_with_the_figures(acme, scored):
    assert put(acme.client, PROD, {"version": 1, "policy": POLICY}).status_code == 200
    refused = put(acme.client, PROD, {"version": 2})
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "gate_failed" and error["status"] == 409 and error["fields"] == {}
    gate = error["gate"]
    assert (gate["version"], gate["against"], gate["metric"]) == (2, 1, "accuracy")
    assert gate["candidate"] == pytest.approx(0.7) and gate["current"] == pytest.approx(0.9)
    assert gate["regression"] == pytest.approx(-0.2)
    assert gate["mcnemar"]["b"] == 10 and gate["mcnemar"]["c"] == 2
    assert gate["mcnemar"]["p_value"] == pytest.approx(0.0386, abs=1e-4)
    assert len(gate["reasons"]) == 3 and not gate["passed"]
    assert "v2" in error["message"] and "override_reason" in error["message"]
    assert acme.client.get(PROD).json()["version"] == 1  # unchanged
    # A canary of the worse version is new traffic too; a zero-weight entry is not.
    canary = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    assert put(acme.client, PROD, {"versions": canary}).status_code == 409
    parked = [{"version": 1, "weight": 100}, {"version": 2, "weight": 0}]
    assert put(acme.client, PROD, {"versions": parked}).status_code == 200
    assert put(acme.client, PROD, {"shadow": 2}).status_code == 200  # a shadow serves nobody
    refusals = AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.gate_failed")
    assert refusals.count() == 2 and refusals.first().after["gate"][0]["version"] == 2
    failed = deliveries(acme, WebhookEvent.GATE_FAILED)
    assert len(failed) == 2 and failed[0]["gate"]["mcnemar"]["b"] == 10
    assert failed[0]["overridden"] is False
    # The better version passes; its figures are in the audit row of the move.
    assert put(acme.client, PROD, {"version": 3}).status_code == 200
    last = AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.move").latest("created_at")
    assert last.after["gate"][0]["passed"] is True and "override_reason" not in last.after


def test_a_gate_without_scores_refuses_and_an_owner_overrides_with_a_reason(acme, scored):
    assert put(acme.client, PROD, {"version": 1, "policy": POLICY}).status_code == 200
    pending = put(acme.client, PROD, {"version": 4})
    assert pending.status_code == 409
    assert "still being scored" in pending.json()["error"]["gate"]["reasons"][0]
    admin = member(acme, "admin")
    overridden = put(admin, PROD, {"version": 2, "override_reason": "  hotfix for the outage  "})
    assert overridden.status_code == 200 and overridden.json()["version"] == 2
    move = AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.move").latest("created_at")
    assert move.after["override_reason"] == "hotfix for the outage"
    assert move.after["gate"][0]["passed"] is False and move.after["gate"][0]["mcnemar"]["b"] == 10
    assert deliveries(acme, WebhookEvent.GATE_FAILED)[-1]["overridden"] is True


def test_members_move_unprotected_aliases_only(acme, scored):
    someone = member(acme)
    assert put(someone, STAGING, {"version": 1}).status_code == 200  # not protected: a member moves it
    assert (
        put(
            someone, STAGING, {"versions": [{"version": 1, "weight": 80}, {"version": 3, "weight": 20}]}
        ).status_code
        == 200
    )
    refused = put(someone, PROD, {"version": 1})  # a new `production` is protected
    assert refused.status_code == 403
    assert "protected alias" in refused.json()["error"]["message"]
    assert put(acme.client, PROD, {"version": 1}).status_code == 200
    for body in (
        {"version": 3},
        {"shadow": 3},
        {"versions": [{"version": 1, "weight": 50}, {"version": 3, "weight": 50}]},
    ):
        assert put(someone, PROD, body).status_code == 403, body
    assert someone.delete(PROD).status_code == 403
    for body, words in (
        ({"version": 1, "protected": True}, "protect"),
        ({"version": 1, "policy": POLICY}, "policy"),
        ({"version": 1, "override_reason": "trust me"}, "override"),
    ):
        answer = put(someone, STAGING, body)
        assert answer.status_code == 403 and words in answer.json()["error"]["message"], body
    assert member(acme, "viewer").put(STAGING, {"version": 3}, format="json").status_code == 403
    # The owner lifts the protection: then a member may move it (and delete it).
    assert put(acme.client, PROD, {"protected": False}).json()["protected"] is False
    assert put(someone, PROD, {"version": 3}).status_code == 200
    assert someone.delete(PROD).status_code == 204
    assert acme.client.get(STAGING).json()["version"] == 1


def test_gate_endpoint_gives_the_verdict_without_moving(acme, scored):
    put(acme.client, PROD, {"version": 1, "policy": POLICY})
    verdict = acme.client.get(PROD + "/gate?version=2").json()
    assert verdict["alias"] == "production" and verdict["gated"] is True and verdict["passed"] is False
    assert verdict["mcnemar"] == {"b": 10, "c": 2, "p_value": pytest.approx(0.0386, abs=1e-4)}
    assert acme.client.get(PROD + "/gate?version=3").json()["passed"] is True
    same = acme.client.get(PROD + "/gate?version=1").json()
    assert same["gated"] is False  # no new traffic: a move there is not checked
    assert acme.client.get(PROD).json()["version"] == 1
    viewer = member(acme, "viewer")
    assert viewer.get(PROD + "/gate?version=2").status_code == 200
    for query, field in (
        ("", "version"),
        ("?version=x", "version"),
        ("?version=9", "version"),
        ("?version=5", "version"),
    ):
        bad = acme.client.get(PROD + "/gate" + query)
        assert bad.status_code == 400 and field in bad.json()["error"]["fields"], query
    assert acme.client.get(STAGING + "/gate?version=1").status_code == 404


def test_compare_shows_scores_per_label_mcnemar_and_disagreeing_rows(acme, scored):
    answer = acme.client.get("/api/v1/prompts/sentiment/compare?a=1&b=2")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["paired"] is True and body["a"]["accuracy"] == pytest.approx(0.9)
    assert body["b"]["accuracy"] == pytest.approx(0.7)
    assert [r["label"] for r in body["per_label"]] == ["negative", "positive"]
    assert body["per_label"][0]["delta_f1"] < 0
    assert body["mcnemar"]["b"] == 10 and body["mcnemar"]["c"] == 2
    # v1 is wrong on 0-3, v2 on 2-13: their outputs differ on 0, 1 and 4-13.
    assert body["disagreements"] == 12 and [r["index"] for r in body["rows"]] == [0, 1, *range(4, 14)]
    first = body["rows"][0]
    assert first == {
        "index": 0,
        "input": {"text": "review number 0"},
        "gold": "negative",
        "a": "positive",
        "b": "negative",
    }
    unscored = acme.client.get("/api/v1/prompts/sentiment/compare?a=1&b=4").json()
    assert unscored["paired"] is False and "v4 has no score" in unscored["reason"]
    for query, fields in (("?a=1", {"b"}), ("?a=x&b=2", {"a"}), ("?a=1&b=9", {"b"}), ("", {"a", "b"})):
        bad = acme.client.get("/api/v1/prompts/sentiment/compare" + query)
        assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == fields, query


def test_compare_shows_at_most_100_rows(acme, scored):
    prompt = scored["prompt"]
    gold = gold_labels(300)
    dataset = eval_set(acme.tenant, prompt, gold, store=True)
    evaluated_version(acme.tenant, prompt, 6, dataset, gold, set(range(0, 300, 2)))
    evaluated_version(acme.tenant, prompt, 7, dataset, gold, set())
    body = acme.client.get("/api/v1/prompts/sentiment/compare?a=6&b=7").json()
    assert body["disagreements"] == 150 and body["rows_shown"] == 100 and len(body["rows"]) == 100
    assert body["rows"][-1]["index"] == 198 and body["rows"][-1]["input"] == {"text": "review number 198"}


def test_another_team_finds_no_alias_gate_or_compare(acme, globex, scored):
    put(acme.client, PROD, {"version": 1, "policy": POLICY})
    make_prompt(globex)  # a prompt of the same name in the other team: still none of acme's
    for path in (PROD + "/gate?version=2", "/api/v1/prompts/sentiment/compare?a=1&b=2"):
        answer = globex.client.get(path)
        assert answer.status_code in (400, 404), path
        assert "review number" not in answer.content.decode()
    other = TaskPrompt.objects.for_tenant(globex.tenant).get(name="sentiment")
    assert globex.client.get(PROD + "/gate?version=1").status_code == 404  # no alias there
    assert globex.client.get("/api/v1/prompts/sentiment/compare?a=1&b=2").status_code == 400  # its own
    assert other.versions.count() == 0
    other.delete()
    assert globex.client.get(PROD + "/gate?version=2").status_code == 404
    assert globex.client.get("/api/v1/prompts/sentiment/compare?a=1&b=2").status_code == 404
    assert put(globex.client, PROD, {"version": 1, "override_reason": "x"}).status_code == 404
    assert acme.client.get(PROD).json()["version"] == 1
