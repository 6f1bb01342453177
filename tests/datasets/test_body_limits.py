"""Issue 22, finding 6: only the dataset upload (API and web UI, with credentials) takes a large body;
every other path, the sign-in page included, refuses a multipart body over BODY_MAX_BYTES before reading
it, and large uploads spool to a folder of their own, a bounded number at once."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from django.test import Client

from softserve.api.middleware import upload_slots
from softserve.datasets.models import Dataset
from tests.datasets.test_datasets_api import sst2_head, upload

pytestmark = pytest.mark.django_db

MiB = 2**20


def _multipart(client: Client, path: str, size: int, **extra):
    """A multipart form whose file field is `size` bytes: what a stranger may send anywhere."""
    blob = io.BytesIO(b"x" * size)
    blob.name = "blob.bin"
    return client.post(path, {"username": "a@b.example", "password": "x", "file": blob}, **extra)


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/accounts/logout/", "/app/datasets/upload", "/app/jobs/new", "/api/v1/keys"]
)
def test_a_large_multipart_body_is_refused_off_the_upload_path(path, settings):
    settings.LIMITS = replace(settings.LIMITS, body_max_bytes=1 * MiB)
    response = _multipart(Client(), path, 3 * MiB)  # anonymous: not even the upload page takes it
    assert response.status_code == 413, (path, response.status_code)
    error = response.json()["error"]
    assert error["code"] == "too_large" and f"at most {1 * MiB} bytes" in error["message"]
    # A small body still reaches the page (the sign-in page answers its form).
    assert _multipart(Client(), path, 1000).status_code != 413


def test_a_made_up_authorization_header_opens_only_the_api_upload_not_the_page(settings):
    """The page's CSRF check reads the body before its login check: a header alone (any text) must not
    let a stranger's large body through there. The API checks a key before it reads the body."""
    settings.LIMITS = replace(settings.LIMITS, body_max_bytes=1 * MiB)
    header = {"HTTP_AUTHORIZATION": "Bearer not-a-key"}
    assert _multipart(Client(), "/app/datasets/upload", 3 * MiB, **header).status_code == 413
    assert _multipart(Client(), "/api/v1/datasets", 3 * MiB, **header).status_code == 401


def test_the_dataset_upload_takes_large_bodies_with_credentials(acme, s3, settings):
    settings.LIMITS = replace(settings.LIMITS, body_max_bytes=64 * 1024)
    content = sst2_head(2000)
    assert len(content) > 64 * 1024
    response = upload(acme.client, "big", "train.csv", content)  # an API key
    assert response.status_code == 201, response.content
    # The web UI's upload page, signed in (CSRF is not enforced by Django's test client).
    browser = Client()
    browser.force_login(acme.owner)
    blob = io.BytesIO(content)
    blob.name = "train.csv"
    page = browser.post("/app/datasets/upload", {"name": "big-ui", "file": blob})
    assert page.status_code == 303, page.status_code
    assert Dataset.objects.for_tenant(acme.tenant).count() == 2


def test_large_uploads_spool_to_their_own_folder_a_bounded_number_at_once(acme, s3, settings):
    settings.LIMITS = replace(settings.LIMITS, body_max_bytes=64 * 1024, upload_max_concurrent=1)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # above it an upload spools to disk
    assert Path(settings.FILE_UPLOAD_TEMP_DIR).is_dir()
    assert Path(settings.FILE_UPLOAD_TEMP_DIR).resolve() != Path("/tmp")
    content = sst2_head(2000)
    slots = upload_slots(1)
    assert slots.acquire(blocking=False)  # another upload is being read
    try:
        busy = upload(acme.client, "busy", "train.csv", content)
    finally:
        slots.release()
    assert busy.status_code == 503 and busy["Retry-After"], busy.content
    assert busy.json()["error"]["code"] == "busy"
    assert upload(acme.client, "busy", "train.csv", content).status_code == 201
    # Small uploads (read into memory) take no place.
    assert slots.acquire(blocking=False)
    try:
        assert upload(acme.client, "small", "train.csv", sst2_head(50)).status_code == 201
    finally:
        slots.release()
