"""Size limits at the edge: request and upload bytes, line length, listed problems, echoed values, pages."""

from dataclasses import replace

import pytest

from softserve.datasets.models import Dataset
from softserve.prompts.models import TaskPrompt
from tests.datasets.test_datasets_api import upload
from tests.s3 import object_keys
from tests.teams import make_prompt

pytestmark = pytest.mark.django_db


def test_an_upload_over_the_byte_limit_is_413_before_it_is_read(acme, s3, settings):
    settings.LIMITS = replace(settings.LIMITS, upload_max_bytes=10_000)
    response = upload(acme.client, "big", "big.csv", b"text,label\n" + b"abcdefgh,a\n" * 2000)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["status"] == 413 and error["code"] == "too_large" and "10000 bytes" in error["message"]
    assert object_keys(s3) == [] and not Dataset.objects.for_tenant(acme.tenant).exists()


def test_a_json_body_over_the_limit_is_413(acme, settings):
    settings.LIMITS = replace(settings.LIMITS, body_max_bytes=1000)
    body = {"name": "p", "task_type": "classification", "template": "{text}" + "x" * 2000}
    response = acme.client.post("/api/v1/prompts", body, format="json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert not TaskPrompt.objects.for_tenant(acme.tenant).exists()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_line_over_the_limit_is_413(acme, s3, settings, fmt):
    settings.LIMITS = replace(settings.LIMITS, dataset_max_line_chars=1000)
    if fmt == "csv":
        content = b"text,label\nshort,a\n" + b"y" * 5000 + b",b\n"
    else:
        content = b'{"text": "short", "label": "a"}\n{"text": "' + b"y" * 5000 + b'", "label": "b"}\n'
    response = upload(acme.client, "long", f"d.{fmt}", content)
    assert response.status_code == 413, response.content
    assert "longer than 1000 characters" in response.json()["error"]["message"]
    assert object_keys(s3) == []


def test_problems_are_capped_and_values_cut(acme, s3):
    huge_label = "L" * 5000
    rows = "".join(f"text {i},{huge_label}{i}\n" for i in range(500))
    response = upload(acme.client, "bad", "d.csv", f"text,label\n{rows}".encode(), labels="a,b")
    assert response.status_code == 400
    messages = response.json()["error"]["fields"]["file"]
    assert len(messages) == 101 and messages[-1] == "… and 400 more"
    assert all(len(m) < 400 for m in messages), max(len(m) for m in messages)
    assert len(response.content) < 40_000


def test_page_size_is_capped(acme, settings):
    settings.LIMITS = replace(settings.LIMITS, page_max=3)
    for i in range(5):
        make_prompt(acme, name=f"p{i}")
    page = acme.client.get("/api/v1/prompts?limit=1000000").json()
    assert page["count"] == 5 and len(page["results"]) == 3
