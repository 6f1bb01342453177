"""Schemathesis against /api/schema/: generated requests to every operation, then stateful sequences
(links Schemathesis infers from the schema), all authenticated by an auth hook with a real API key.

Every check Schemathesis has runs but one: `positive_data_acceptance` expects any schema-valid request
to succeed, while a request naming a prompt or dataset that does not exist is schema-valid and rightly a
400/404. Server errors must be 0. `make reliability` runs ≥ 5,000 cases; `make test` a few hundred.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from softserve.wsgi import application

from tests.reliability.figures import record_figures, scaled
from tests.teams import make_dataset_version, make_prompt

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
OPERATIONS = sum(1 for _ in schema.get_all_operations())
EXAMPLES_PER_OPERATION = scaled(8, 170)  # ~30 operations: a few hundred cases in CI, > 5,000 in full
STATEFUL_SEQUENCES = scaled(10, 200)
EXCLUDED = [positive_data_acceptance]
_run = {"cases": 0, "stateful_steps": 0}
_current = {"key": ""}  # the running test's tenant key (each test has its own tenant)


@schema.auth(refresh_interval=None)
class TenantKey:
    """The auth hook: every generated request carries a real, live API key of the seeded tenant."""

    def get(self, case, context) -> str:
        return _current["key"]

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@contextmanager
def connection_kept():
    """As Django's test client does: a request must not close the test transaction's connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(acme, tmp_path, settings):
    """Some data to find: a prompt and a dataset version; storage in a scratch folder; no rate limit."""
    from softserve.tenancy.models import Quota

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=1_000_000)
    make_prompt(acme)
    make_dataset_version(acme.tenant)
    _current["key"] = acme.key
    return acme


def _record() -> None:
    record_figures(
        "schema_fuzz",
        "Schemathesis over /api/schema/",
        {
            "operations": OPERATIONS,
            "cases": _run["cases"],
            "stateful_steps": _run["stateful_steps"],
            "server_errors": 0,  # any would have failed the run before this line
            "checks_excluded": [c.__name__ for c in EXCLUDED],
        },
    )


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case, seeded):
    with connection_kept():
        case.call_and_validate(excluded_checks=EXCLUDED)
    _run["cases"] += 1
    _record()


def test_stateful_sequences(seeded):
    base = schema.as_state_machine()

    class Workflow(base):  # type: ignore[misc, valid-type]
        def validate_response(self, response, case, **kwargs) -> None:
            _run["stateful_steps"] += 1
            case.validate_response(response, excluded_checks=EXCLUDED)

    with connection_kept():
        Workflow.run(
            settings=settings(
                max_examples=STATEFUL_SEQUENCES,
                deadline=None,
                stateful_step_count=6,
                suppress_health_check=list(HealthCheck),
            )
        )
    assert _run["stateful_steps"] > 0
    _record()
