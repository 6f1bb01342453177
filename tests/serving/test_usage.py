"""Usage counts under concurrent predictions: exact, one row per tenant, prompt and day (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from softserve.serving.models import Usage
from tests.teams import Team

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_counts_are_exact_and_share_one_row():
    acme, globex = Team("acme"), Team("globex")
    start = threading.Barrier(6)

    def count(team: Team) -> None:
        start.wait()
        try:
            for _ in range(10):
                Usage.count(team.tenant, "sentiment", 2)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=count, args=(t,)) for t in (acme, acme, acme, acme, acme, globex)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [row] = Usage.objects.for_tenant(acme.tenant)
    assert (row.prompt_name, row.requests, row.inputs) == ("sentiment", 50, 100)
    [other] = Usage.objects.for_tenant(globex.tenant)
    assert (other.requests, other.inputs) == (10, 20)
