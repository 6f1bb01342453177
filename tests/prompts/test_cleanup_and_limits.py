"""Prompt deletion removes its stored objects; the list costs the same queries for 5 or 50 prompts; the
registry's caps on labels, verbalizers and templates."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from softserve.prompts.models import Alias, TaskPrompt
from softserve.tenancy.models import AuditEvent
from tests.prompts.test_registry_api import ready_version
from tests.s3 import object_keys
from tests.teams import make_prompt

pytestmark = pytest.mark.django_db


def test_deleting_a_prompt_deletes_its_artifacts_and_checkpoints(
    acme, globex, s3, django_capture_on_commit_callbacks
):
    make_prompt(acme)
    make_prompt(globex)
    mine = TaskPrompt.objects.get(tenant=acme.tenant)
    theirs = TaskPrompt.objects.get(tenant=globex.tenant)
    keys = [
        f"tenants/{acme.tenant.id}/prompts/{mine.id}/{n}/{name}"
        for n in (1, 2)
        for name in ("prompt.safetensors", "checkpoint.safetensors")
    ]
    kept = f"tenants/{globex.tenant.id}/prompts/{theirs.id}/1/prompt.safetensors"
    for key in [*keys, kept]:
        s3.put_object(Bucket=s3.bucket, Key=key, Body=b"tensor bytes")
    ready_version(acme.tenant, "sentiment", 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert acme.client.delete("/api/v1/prompts/sentiment").status_code == 204
    assert object_keys(s3) == [kept]
    assert AuditEvent.objects.for_tenant(acme.tenant).filter(action="prompt.delete").count() == 1


def _list_queries(team, count: int) -> int:
    for i in range(count):
        make_prompt(team, name=f"p{i:03d}")
        version = ready_version(team.tenant, f"p{i:03d}", 1)
        for alias in ("production", "staging"):
            Alias.objects.create(tenant=team.tenant, prompt=version.prompt, name=alias, version=version)
    with CaptureQueriesContext(connection) as queries:
        response = team.client.get("/api/v1/prompts?limit=100")
    assert response.status_code == 200 and len(response.json()["results"]) == count
    assert all(p["aliases"] == {"production": 1, "staging": 1} for p in response.json()["results"])
    return len(queries)


def test_prompt_list_queries_do_not_grow_with_the_prompts(acme, globex, django_assert_max_num_queries):
    few = _list_queries(acme, 5)
    many = _list_queries(globex, 50)
    assert few == many, (few, many)
    with django_assert_max_num_queries(few):
        acme.client.get("/api/v1/prompts")


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"labels": [f"l{i}" for i in range(1001)]}, "labels"),
        ({"labels": ["a" * 101, "b"]}, "labels"),
        ({"labels": [{"a": 1}, "b"]}, "labels"),
        ({"verbalizer": {"negative": " ".join(["bad"] * 9)}}, "verbalizer"),
        ({"verbalizer": {"negative": "b" * 101}}, "verbalizer"),
        ({"verbalizer": ["negative"]}, "verbalizer"),
        ({"verbalizer": {"negative": 5}}, "verbalizer"),
        ({"template": "{text}" + "x" * 4000}, "template"),
    ],
    ids=[
        "1001 labels",
        "long label",
        "label not a string",
        "9 verbalizer words",
        "long verbalizer",
        "verbalizer a list",
        "verbalizer word a number",
        "long template",
    ],
)
def test_prompt_caps_are_field_errors(acme, overrides, field):
    body = {
        "name": "capped",
        "task_type": "classification",
        "template": "{text}",
        "labels": ["negative", "positive"],
        **overrides,
    }
    response = acme.client.post("/api/v1/prompts", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    message = " ".join(response.json()["error"]["fields"][field])
    assert len(message) < 300  # never the tenant's whole value echoed back
    assert not TaskPrompt.objects.for_tenant(acme.tenant).exists()
