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


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client
