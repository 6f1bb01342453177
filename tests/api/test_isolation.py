"""Every endpoint that names an object, tried by another tenant's signed-in user and by an expired key."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from softserve.jobs.models import Job
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.tenancy.models import ApiKey, Membership
from tests.teams import bearer, make_dataset_version, make_prompt

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_objects(acme):
    make_prompt(acme)
    prompt = TaskPrompt.objects.get(tenant=acme.tenant, name="sentiment")
    version = PromptVersion.objects.create(
        tenant=acme.tenant, prompt=prompt, number=1, method="prompt", status="ready"
    )
    Alias.objects.create(tenant=acme.tenant, prompt=prompt, name="production", version=version)
    dataset = make_dataset_version(acme.tenant)
    job = Job.objects.create(
        tenant=acme.tenant, kind="tune", spec={}, prompt_version=version, dataset_version=dataset
    )
    key = ApiKey.objects.filter(tenant=acme.tenant).first()
    member = Membership.objects.filter(tenant=acme.tenant).first()
    d = dataset.dataset_id
    return [
        ("get", f"/api/v1/datasets/{d}"),
        ("delete", f"/api/v1/datasets/{d}"),
        ("get", f"/api/v1/datasets/{d}/versions/1"),
        ("get", f"/api/v1/datasets/{d}/versions/1/preview"),
        ("get", "/api/v1/prompts/sentiment"),
        ("delete", "/api/v1/prompts/sentiment"),
        ("get", "/api/v1/prompts/sentiment/versions"),
        ("get", "/api/v1/prompts/sentiment/versions/1"),
        ("get", "/api/v1/prompts/sentiment/versions/1/artifact/softserve"),
        ("get", "/api/v1/prompts/sentiment/versions/1/artifact/peft"),
        ("get", "/api/v1/prompts/sentiment/versions/1/nearest-tokens"),
        ("get", "/api/v1/prompts/sentiment/aliases/production"),
        ("put", "/api/v1/prompts/sentiment/aliases/production"),
        ("delete", "/api/v1/prompts/sentiment/aliases/production"),
        ("get", f"/api/v1/jobs/{job.id}"),
        ("post", f"/api/v1/jobs/{job.id}/cancel"),
        ("post", f"/api/v1/jobs/{job.id}/retry"),
        ("get", f"/api/v1/keys/{key.id}"),
        ("delete", f"/api/v1/keys/{key.id}"),
        ("get", f"/api/v1/members/{member.id}"),
        ("patch", f"/api/v1/members/{member.id}"),
        ("delete", f"/api/v1/members/{member.id}"),
    ]


def test_another_tenants_signed_in_user_gets_404_everywhere(acme, globex, acme_objects):
    browser = APIClient()
    browser.force_login(globex.owner)
    for method, path in acme_objects:
        response = getattr(browser, method)(path, {"version": 1, "role": "viewer"}, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    assert Job.objects.get(tenant=acme.tenant).status == "queued"
    assert TaskPrompt.objects.filter(tenant=acme.tenant).count() == 1


LISTS = [
    "/api/v1/datasets",
    "/api/v1/prompts",
    "/api/v1/jobs",
    "/api/v1/keys",
    "/api/v1/members",
    "/api/v1/audit",
]


def test_another_tenants_lists_hold_none_of_ours(acme, globex, acme_objects):
    browser = APIClient()
    browser.force_login(globex.owner)
    for path in LISTS:
        body = browser.get(path).content.decode()
        assert str(acme.tenant.id) not in body and "owner@acme" not in body and "sentiment" not in body, path


def test_an_expired_key_gets_401_everywhere(acme, acme_objects):
    key, plaintext = ApiKey.mint(
        acme.tenant,
        "late",
        ["read", "write", "predict"],
        role="owner",
        expires_at=timezone.now() + timedelta(hours=1),
        created_by=acme.owner,
    )
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = bearer(plaintext)
    for method, path in [*acme_objects, *(("get", p) for p in LISTS), ("post", "/api/v1/jobs")]:
        assert getattr(client, method)(path, {}, format="json").status_code == 401, (method, path)
