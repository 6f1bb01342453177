"""The prompt registry over REST: prompts, versions, aliases with audited history, isolation."""

import pytest
from rest_framework.test import APIClient

from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.tenancy.models import ApiKey, AuditEvent
from tests.teams import bearer, make_prompt

pytestmark = pytest.mark.django_db


def ready_version(tenant, prompt_name: str, number: int) -> PromptVersion:
    prompt = TaskPrompt.objects.for_tenant(tenant).get(name=prompt_name)
    return PromptVersion.objects.create(
        tenant=tenant,
        prompt=prompt,
        number=number,
        method="prompt",
        status="ready",
        artifact_key=f"a/{number}",
    )


def test_create_and_read_prompt(acme):
    created = make_prompt(acme, verbalizer={"negative": "bad"})
    assert created["base_model"] == "smollm2-135m-instruct" and created["aliases"] == {}
    assert acme.client.get("/api/v1/prompts/sentiment").json()["verbalizer"] == {"negative": "bad"}
    assert [p["name"] for p in acme.client.get("/api/v1/prompts").json()["results"]] == ["sentiment"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "bad name!"}, "name"),
        ({"template": "no fields"}, "template"),
        ({"template": "{text"}, "template"),
        ({"labels": ["only"]}, "labels"),
        ({"labels": ["a", "a"]}, "labels"),
        ({"verbalizer": {"neutral": "meh"}}, "verbalizer"),
        ({"verbalizer": {"negative": "same", "positive": "same"}}, "verbalizer"),
        ({"task_type": "generation"}, "labels"),
        ({"task_type": "regression"}, "task_type"),
        ({"base_model": "gpt-5"}, "base_model"),
    ],
)
def test_bad_prompts_get_field_errors(acme, body, field):
    payload = {
        "name": "p",
        "task_type": "classification",
        "template": "{text}",
        "labels": ["negative", "positive"],
        **body,
    }
    response = acme.client.post("/api/v1/prompts", payload, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"], response.content
    assert not TaskPrompt.objects.for_tenant(acme.tenant).exists()


def test_duplicate_name_is_refused(acme):
    make_prompt(acme)
    response = acme.client.post(
        "/api/v1/prompts",
        {"name": "sentiment", "task_type": "generation", "template": "{text}"},
        format="json",
    )
    assert response.status_code == 400 and "exists" in response.json()["error"]["fields"]["name"][0]


def test_alias_moves_are_audited_with_history_and_rollback(acme):
    make_prompt(acme)
    ready_version(acme.tenant, "sentiment", 1)
    ready_version(acme.tenant, "sentiment", 2)
    pending = PromptVersion.objects.create(
        tenant=acme.tenant, prompt=TaskPrompt.objects.get(name="sentiment"), number=3, method="prompt"
    )
    path = "/api/v1/prompts/sentiment/aliases/production"
    assert acme.client.put(path, {"version": pending.number}, format="json").status_code == 400
    assert acme.client.put(path, {"version": 9}, format="json").status_code == 400
    assert acme.client.put(path, {"version": 1}, format="json").json()["version"] == 1
    assert acme.client.put(path, {"version": 2}, format="json").json()["version"] == 2
    assert acme.client.put(path, {"version": 1}, format="json").json()["version"] == 1  # rollback
    alias = acme.client.get(path).json()
    assert alias["version"] == 1
    assert [(h["from"], h["to"]) for h in alias["history"]] == [(None, 1), (1, 2), (2, 1)]
    assert acme.client.get("/api/v1/prompts/sentiment").json()["aliases"] == {"production": 1}
    assert AuditEvent.objects.for_tenant(acme.tenant).filter(action="alias.move").count() == 3
    _, member = ApiKey.mint(acme.tenant, "m", ["read", "write"], role="member", created_by=acme.owner)
    assert bearer(member).put(path, {"version": 2}, format="json").status_code == 403
    assert (
        acme.client.put(
            "/api/v1/prompts/sentiment/aliases/bad alias!", {"version": 1}, format="json"
        ).status_code
        == 400
    )
    assert acme.client.delete(path).status_code == 204
    assert acme.client.get(path).status_code == 404


def test_another_tenant_sees_no_prompt(acme, globex):
    make_prompt(acme)
    ready_version(acme.tenant, "sentiment", 1)
    acme.client.put("/api/v1/prompts/sentiment/aliases/production", {"version": 1}, format="json")
    make_prompt(globex, name="other")
    paths = [
        "/api/v1/prompts/sentiment",
        "/api/v1/prompts/sentiment/versions",
        "/api/v1/prompts/sentiment/aliases/production",
    ]
    for path in paths:
        assert globex.client.get(path).status_code == 404, path
    assert globex.client.put(paths[2], {"version": 1}, format="json").status_code == 404
    assert globex.client.delete(paths[2]).status_code == 404
    assert globex.client.delete(paths[0]).status_code == 404
    assert [p["name"] for p in globex.client.get("/api/v1/prompts").json()["results"]] == ["other"]
    key, plaintext = ApiKey.mint(acme.tenant, "old", ["read", "write"], role="owner", created_by=acme.owner)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at="2000-01-01T00:00:00Z")
    for client in (bearer(plaintext), APIClient()):
        for path in [*paths, "/api/v1/prompts"]:
            assert client.get(path).status_code == 401
    assert TaskPrompt.objects.for_tenant(acme.tenant).count() == 1


def test_delete_prompt_is_audited(acme):
    make_prompt(acme)
    assert acme.client.delete("/api/v1/prompts/sentiment").status_code == 204
    assert AuditEvent.objects.for_tenant(acme.tenant).filter(action="prompt.delete").count() == 1
