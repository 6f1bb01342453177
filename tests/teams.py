"""Teams (tenants with an owner and an API key) for the platform tests."""

import pytest
from rest_framework.test import APIClient

from softserve.tenancy.actions import create_tenant


class Team:
    """A tenant with its owner and the owner's API key, and a client that sends it."""

    def __init__(self, name: str):
        self.tenant, self.owner, self.key = create_tenant(name, f"owner@{name}.example")
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")


@pytest.fixture
def acme(db) -> Team:
    return Team("acme")


@pytest.fixture
def globex(db) -> Team:
    return Team("globex")


def make_user(email: str, password: str | None = None):
    """An account of its own (inviting a member never creates one): e-mail as username, as
    `createtenant` makes them; without a password nobody can sign in as it."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=email, email=email, password=password)
    if password is None:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def join(team: Team, email: str, role: str = "member", password: str | None = None):
    """Someone joins `team` the only way there is: invited (by the owner's key), then accepting the
    invitation signed in as themselves. Returns their membership."""
    from softserve.tenancy.models import Membership

    user = make_user(email, password)
    invited = team.client.post("/api/v1/members", {"email": email, "role": role}, format="json")
    assert invited.status_code == 202, invited.content
    person = APIClient()
    person.force_login(user)
    accepted = person.post(f"/api/v1/me/invitations/{invited.json()['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    return Membership.objects.get(tenant=team.tenant, user=user)


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def make_dataset_version(
    tenant, name="sst2", task_type="classification", labels=("negative", "positive"), columns=None
):
    """A dataset version row as an upload leaves it (its storage object is not needed here)."""
    from softserve.datasets.models import Dataset, DatasetVersion

    dataset, _ = Dataset.objects.get_or_create(tenant=tenant, name=name)
    return DatasetVersion.objects.create(
        tenant=tenant,
        dataset=dataset,
        number=dataset.next_version_number(),
        storage_key=f"k/{name}",
        source_format="csv",
        source_filename=f"{name}.csv",
        task_type=task_type,
        columns=columns or {"text": "text"},
        labels=list(labels),
        label_counts={},
        split_counts={"train": 9, "dev": 1},
        row_count=10,
        size_bytes=100,
        checksum="0" * 64,
    )


def make_prompt(team, name="sentiment", **overrides):
    body = {
        "name": name,
        "task_type": "classification",
        "template": "Review: {text}\nSentiment:",
        "labels": ["negative", "positive"],
        **overrides,
    }
    response = team.client.post("/api/v1/prompts", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()
