"""Bad uploads and bodies: each a clear 4xx (413 where it is size) in the API's error shape, within
bounded memory, with nothing half-written in the database or storage.

Requests go through Django's full handler with the body read from a file on disk (as a WSGI server
hands it over), so the traced peak is the server side's own memory, not the test's copy of the body.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import tempfile
import tracemalloc
import zipfile
from dataclasses import dataclass, field, replace

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, ClientHandler, RequestFactory, encode_multipart

from softserve.datasets.models import Dataset, DatasetVersion
from softserve.prompts.models import TaskPrompt
from softserve.tenancy.models import AuditEvent
from tests.reliability.figures import record_figures, scaled
from tests.s3 import object_keys

pytestmark = pytest.mark.django_db

MiB = 2**20
TEST_LIMITS = {
    "upload_max_bytes": 4 * MiB,
    "body_max_bytes": 64 * 1024,
    "dataset_max_line_chars": 10_000,
    "dataset_max_text_chars": 2_000,
    "dataset_max_target_chars": 200,
    "dataset_max_rows": scaled(20_000, 500_000),
}
TINY_ROWS = scaled(30_000, 1_000_000)  # "a million tiny rows" at full scale; over the row limit either way
PEAK_BOUND = 64 * MiB  # server-side traced memory per request, whatever the input's size
GOOD_ROWS = "".join(f"review number {i},{'ab'[i % 2]}\n" for i in range(40))


@dataclass
class Case:
    id: str
    status: int
    content: bytes | None = None  # the uploaded file (None: `body` is a JSON request)
    filename: str = "d.csv"
    fields: dict = field(default_factory=dict)
    body: bytes | None = None  # a raw JSON-ish request body to /api/v1/prompts
    content_type: str = "application/json"


def csv(text: str) -> bytes:
    return text.encode()


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("d.csv", b"0" * (64 * MiB))
    return buffer.getvalue()


def _nested(depth: int) -> bytes:
    return b'{"name": "p", "template": ' + b"[" * depth + b"]" * depth + b"}"


PROMPT = {"name": "p", "task_type": "classification", "template": "{text}", "labels": ["a", "b"]}
CASES = [
    # --- files that are not UTF-8 CSV/TSV/JSONL text -------------------------------------------------
    Case("empty file", 400, b""),
    Case("header only", 400, b"text,label\n"),
    Case("only blank lines", 400, b"\n\n\n\n"),
    Case("binary noise", 400, os.urandom(4096) + b"\xff\xfe"),
    Case("png named csv", 400, b"\x89PNG\r\n\x1a\n" + os.urandom(512)),
    Case("latin-1 text", 400, "text,label\ncafé crème,a\n".encode("latin-1") + csv(GOOD_ROWS)),
    Case("utf-16 with BOM", 400, ("text,label\n" + GOOD_ROWS).encode("utf-16")),
    Case("utf-16 without BOM", 400, ("text,label\n" + GOOD_ROWS).encode("utf-16-le")),
    Case("utf-32 with BOM", 400, ("text,label\n" + GOOD_ROWS).encode("utf-32")),
    Case("utf-8 BOM then noise", 400, b"\xef\xbb\xbf" + os.urandom(2048) + b"\xff"),
    Case("surrogate bytes", 400, b"text,label\n\xed\xa0\x80 bad,a\n" + csv(GOOD_ROWS)),
    Case("overlong utf-8", 400, b"text,label\n\xc0\xaf slash,a\n" + csv(GOOD_ROWS)),
    # --- compressed input is not accepted, so nothing is ever inflated --------------------------------
    Case("gzip named csv.gz", 400, gzip.compress(b"0" * MiB), filename="d.csv.gz"),
    Case("gzip bomb named csv", 400, gzip.compress(b"0" * (64 * MiB))),
    Case("zip bomb named zip", 400, _zip_bomb(), filename="d.zip"),
    Case("zip bomb named csv", 400, _zip_bomb()),
    Case("bzip2 named csv", 400, bz2.compress(b"text,label\n" * 10_000)),
    # --- shape -------------------------------------------------------------------------------------
    Case("ragged rows", 400, csv("text,label\n" + GOOD_ROWS + "one,a,extra,cells\n")),
    Case("short rows", 400, csv("text,label\n" + GOOD_ROWS + "no label here\n")),
    Case("duplicate headers", 400, csv("text,text,label\n" + "x,y,a\n" * 5)),
    Case("500 columns", 400, csv(",".join(f"c{i}" for i in range(500)) + ",text,label\n")),
    Case("mixed newlines", 400, b"text,label\r\nfirst,a\rsecond\r,b\n" + csv(GOOD_ROWS)),
    Case("csv as tsv", 400, csv("text,label\n" + GOOD_ROWS), filename="d.tsv"),
    Case("unknown extension", 400, csv("text,label\n" + GOOD_ROWS), filename="d.xlsx"),
    Case("all duplicates", 400, csv("text,label\n" + "same,a\n" * 50)),
    Case("unknown labels", 400, csv("text,label\n" + GOOD_ROWS), fields={"labels": "x,y"}),
    Case("missing text column", 400, csv("body,label\n" + GOOD_ROWS)),
    # --- size (413) --------------------------------------------------------------------------------
    Case("huge line", 413, b"text,label\n" + b"x" * 50_000 + b",a\n"),
    Case("huge jsonl line", 413, b'{"text": "' + b"y" * 50_000 + b'", "label": "a"}\n', filename="d.jsonl"),
    Case("upload over the byte limit", 413, b"text,label\n" + b"row,a\n" * (5 * MiB // 6)),
    Case(
        "a million tiny rows",
        413,
        b"text,label\n" + b"".join(b"r%d,%s\n" % (i, b"ab"[i % 2 : i % 2 + 1]) for i in range(TINY_ROWS)),
    ),
    # --- huge or hostile values --------------------------------------------------------------------
    Case("huge field", 400, csv("text,label\n" + GOOD_ROWS + "x" * 5_000 + ",a\n")),
    Case("huge label", 400, csv("text,label\n" + GOOD_ROWS + "fine text," + "L" * 500 + "\n")),
    Case("NUL in a cell", 400, b"text,label\n" + csv(GOOD_ROWS) + b"nul\x00here,a\n"),
    Case("NUL in the header", 400, b"te\x00xt,label\n" + csv(GOOD_ROWS)),
    Case("script in the name", 400, csv("text,label\n" + GOOD_ROWS), fields={"name": "<script>x</script>"}),
    Case("script as label column", 400, csv("text,label\n" + GOOD_ROWS), fields={"label_column": "<script>"}),
    Case("path trick ../", 400, csv("text,label\n" + GOOD_ROWS), filename="../../etc/passwd"),
    Case("path trick backslash", 400, csv("text,label\n" + GOOD_ROWS), filename="..\\..\\boot.ini"),
    Case("NUL in the file name", 400, csv("text,label\n" + GOOD_ROWS), filename="d.csv\x00.exe"),
    Case("name too long", 400, csv("text,label\n" + GOOD_ROWS), fields={"name": "n" * 500}),
    Case("dev fraction nan", 400, csv("text,label\n" + GOOD_ROWS), fields={"dev_fraction": "nan"}),
    Case("jsonl not objects", 400, b'["a", "b"]\n[1, 2]\n', filename="d.jsonl"),
    Case("jsonl broken", 400, b'{"text": "a", "label": "b"\n', filename="d.jsonl"),
    Case("jsonl deep nesting", 400, b'{"text": ' + b"[" * 3000 + b"]" * 3000 + b"}\n", filename="d.jsonl"),
    Case("jsonl huge integer", 400, b'{"text": ' + b"9" * 6000 + b', "label": "a"}\n', filename="d.jsonl"),
    Case("no file at all", 400, None, fields={"file": "just text"}, content_type=MULTIPART_CONTENT),
    # --- JSON bodies -------------------------------------------------------------------------------
    Case("json over the body limit", 413, body=json.dumps({**PROMPT, "template": "x" * 100_000}).encode()),
    Case("json nested deep", 400, body=_nested(20_000)),
    Case("json NUL in a string", 400, body=json.dumps({**PROMPT, "template": "{text}\x00"}).encode()),
    Case("json NUL in a key", 400, body=json.dumps({**PROMPT, "verbalizer": {"a\x00": "w"}}).encode()),
    Case("json broken", 400, body=b'{"name": "p", '),
    Case("json huge integer", 400, body=b'{"name": ' + b"9" * 6000 + b"}"),
    Case("json not an object", 400, body=b'["p"]'),
    Case("json as text/plain", 415, body=json.dumps(PROMPT).encode(), content_type="text/plain"),
    Case(
        "json 2000 labels",
        400,
        body=json.dumps({**PROMPT, "labels": [f"l{i}" for i in range(2000)]}).encode(),
    ),
]


def _request(case: Case, key: str, scratch: str) -> tuple[int, dict | None, int, int]:
    """(status, error body, response bytes, traced peak bytes) of one request through Django's handler."""
    if case.body is not None:
        payload, path, content_type = case.body, "/api/v1/prompts", case.content_type
    else:
        values = {"name": "bad", **case.fields}
        if case.content is not None:
            upload = io.BytesIO(case.content)
            upload.name = case.filename
            values["file"] = upload
        payload, path, content_type = (
            encode_multipart(BOUNDARY, values),
            "/api/v1/datasets",
            MULTIPART_CONTENT,
        )
    with open(scratch, "wb") as handle:
        handle.write(payload)
    size = len(payload)
    del payload
    environ = RequestFactory()._base_environ(
        PATH_INFO=path,
        REQUEST_METHOD="POST",
        CONTENT_TYPE=content_type,
        CONTENT_LENGTH=str(size),
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    with open(scratch, "rb") as body:
        environ["wsgi.input"] = body
        tracemalloc.start()
        try:
            response = ClientHandler(enforce_csrf_checks=False)(environ)
            content = response.content
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    return response.status_code, error, len(content), peak


def _stored(tenant, s3) -> tuple:
    return (
        Dataset.objects.for_tenant(tenant).count(),
        DatasetVersion.objects.for_tenant(tenant).count(),
        TaskPrompt.objects.for_tenant(tenant).count(),
        AuditEvent.objects.for_tenant(tenant).count(),
        len(object_keys(s3)),
    )


_peaks: dict[str, int] = {}
_as_documented: dict[str, bool] = {}
_half_written: dict[str, bool] = {}


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as folder:
        yield os.path.join(folder, "body")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clear_4xx_and_leaves_nothing(acme, s3, settings, scratch, case):
    settings.LIMITS = replace(settings.LIMITS, **TEST_LIMITS)
    before = _stored(acme.tenant, s3)
    status, error, size, peak = _request(case, acme.key, scratch)
    after = _stored(acme.tenant, s3)
    # Counted before the checks: the figures say what was seen, even when a check fails the run.
    _peaks[case.id] = peak
    _as_documented[case.id] = status == case.status and error is not None and error["status"] == status
    _half_written[case.id] = after != before
    _record()
    assert status == case.status, (status, error)
    assert error is not None and error["status"] == status and error["message"], error
    assert size < 64 * 1024, f"a {size}-byte error answer"
    assert peak < PEAK_BOUND, f"traced peak {peak / MiB:.1f} MiB"
    assert after == before  # nothing half-written


def _record() -> None:
    """The figures so far (rewritten after each case, so a full run leaves all of them)."""
    worst = max(_peaks, key=_peaks.get)
    record_figures(
        "bad_inputs",
        "Bad uploads and bodies",
        {
            "kinds": len(CASES),
            "answered_as_documented": sum(_as_documented.values()),
            "half_written": sum(_half_written.values()),
            "tiny_rows_sent": TINY_ROWS,
            "peak_traced_mib_max": round(_peaks[worst] / MiB, 2),
            "peak_case": worst,
            "peak_bound_mib": PEAK_BOUND // MiB,
        },
    )
