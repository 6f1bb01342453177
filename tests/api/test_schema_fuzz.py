"""Schemathesis against /api/schema/: generated requests to every operation, with a real tenant's key.

No response may be a server error, and every documented response must match its schema.
"""

from contextlib import contextmanager

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from softserve.wsgi import application

from tests.teams import make_dataset_version, make_prompt

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
EXAMPLES_PER_OPERATION = 25


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
    """Some data to find: a prompt and a dataset version; storage in a scratch folder."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    make_prompt(acme)
    make_dataset_version(acme.tenant)
    return acme


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case, seeded):
    with connection_kept():
        case.call_and_validate(
            headers={"Authorization": f"Bearer {seeded.key}"},
            checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        )
