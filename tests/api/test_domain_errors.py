"""The platform's domain errors answer in the API's one error shape, with the status, code, fields,
extra figures and Retry-After the DRF exceptions they replaced gave."""

from __future__ import annotations

import pytest

from softserve import errors
from softserve.api.errors import exception_handler
from softserve.jobs.actions import QuotaExceeded
from softserve.serving import actions as serving
from webui.forms import FORM, errors_of


@pytest.mark.parametrize(
    ("exc", "status", "code", "retry_after"),
    [
        (errors.NotFound("No prompt named 'x'."), 404, "not_found", None),
        (errors.Forbidden("Only owners and admins."), 403, "permission_denied", None),
        (serving.NotReady("Version 2 of x is pending, not ready to serve."), 409, "not_ready", None),
        (
            errors.TooLarge("Line 3 is too long.", fields={"file": ["Line 3 is too long."]}),
            413,
            "too_large",
            None,
        ),
        (QuotaExceeded("This tenant may have 2 jobs queued."), 429, "throttled", None),
        (serving.TooManyConcurrent(), 429, "too_many_concurrent", "1"),
        (serving.TenantOverloaded(), 429, "tenant_queue_full", "1"),
        (
            serving.ServingFailed("The prompt is unavailable.", code="prompt_unavailable"),
            502,
            "prompt_unavailable",
            None,
        ),
        (serving.Overloaded(), 503, "overloaded", "1"),
        (serving.ServingUnavailable(), 503, "serving_unavailable", "2"),
        (serving.DeadlineExceeded(), 504, "deadline_exceeded", None),
    ],
)
def test_a_domain_error_answers_its_status_code_and_message(exc, status, code, retry_after):
    response = exception_handler(exc, {})
    assert response.status_code == status
    assert response.data["error"] == {
        "status": status,
        "code": code,
        "message": exc.text,
        "fields": exc.fields,
    }
    assert response.headers.get("Retry-After") == retry_after


def test_invalid_answers_400_with_its_fields_and_extra_figures_join_the_body():
    response = exception_handler(errors.Invalid({"inputs[0].text": ["Must not be empty."]}), {})
    assert response.status_code == 400
    assert response.data["error"] == {
        "status": 400,
        "code": "invalid",
        "message": "The request has invalid fields.",
        "fields": {"inputs[0].text": ["Must not be empty."]},
    }
    gate = errors.Conflict("The gate refused v2.", code="gate_failed", extra={"gate": {"version": 2}})
    body = exception_handler(gate, {}).data["error"]
    assert body["status"] == 409 and body["code"] == "gate_failed" and body["gate"] == {"version": 2}


def test_pages_show_fields_beside_their_inputs_and_other_refusals_for_the_whole_form():
    assert errors_of(errors.Invalid({"name": ["Taken."], "non_field_errors": ["No."]})) == {
        "name": ["Taken."],
        FORM: ["No."],
    }
    assert errors_of(errors.TooLarge("Too big.", fields={"file": ["Too big."]})) == {FORM: ["Too big."]}
    assert errors_of(serving.Overloaded()) == {FORM: [serving.Overloaded.message]}
