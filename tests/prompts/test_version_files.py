"""A version's downloads (Softserve safetensors, PEFT zip), its nearest-token view and its per-label
figures over REST: served from storage, scoped to the team, and saying why where there is none."""

import pytest

from common.formats import nearest_tokens_unavailable, peft_unavailable
from softserve.prompts.downloads import NOT_COMPUTED, NOT_EXPORTED, NOT_TRAINED
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.tenancy.models import ApiKey
from tests.teams import bearer, make_prompt

pytestmark = pytest.mark.django_db

BASE = "/api/v1/prompts/sentiment/versions"
REPORT = {
    "accuracy": 0.5,
    "macro_f1": 0.5,
    "n": 4,
    "per_label": {
        "negative": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "positive": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
    },
    "confusion": {"labels": ["negative", "positive"], "matrix": [[1, 1], [1, 1]], "folded": 0},
}
TOKENS = {
    "applies": True,
    "member": 1,
    "members": 1,
    "top_k": 5,
    "norms": {"min": 1.0, "mean": 1.0, "max": 1.0, "vocab_mean": 1.0},
    "positions": [{"position": 0, "norm": 1.0, "nearest": [{"token": "Ġgood", "id": 1, "cosine": 0.9}] * 5}],
}


def version(team, number: int, s3=None, **fields) -> PromptVersion:
    prompt = TaskPrompt.objects.for_tenant(team.tenant).get(name="sentiment")
    key = f"tenants/{team.tenant.pk}/prompts/{prompt.pk}/{number}"
    values = {
        "method": "prompt",
        "status": "ready",
        "artifact_key": f"{key}/prompt.safetensors",
        "peft_key": f"{key}/peft.zip",
        "metrics": {"dev": REPORT},
        "inspection": TOKENS,
        **fields,
    }
    made = PromptVersion.objects.create(tenant=team.tenant, prompt=prompt, number=number, **values)
    if s3 is not None:
        s3.put_object(Bucket=s3.bucket, Key=values["artifact_key"], Body=b"softserve-bytes-%d" % number)
        if values["peft_key"]:
            s3.put_object(Bucket=s3.bucket, Key=values["peft_key"], Body=b"PK-peft-zip-%d" % number)
    return made


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_both_formats_download_from_storage(acme, s3):
    make_prompt(acme)
    version(acme, 1, s3)
    listed = acme.client.get(BASE).json()["results"][0]
    assert listed["downloads"] == {
        "softserve": {"url": f"{BASE}/1/artifact/softserve", "unavailable": None},
        "peft": {"url": f"{BASE}/1/artifact/peft", "unavailable": None},
    }
    assert listed["nearest_tokens"] == f"{BASE}/1/nearest-tokens"
    assert "inspection" not in listed  # the token view has its own endpoint
    softserve = acme.client.get(f"{BASE}/1/artifact/softserve")
    assert softserve.status_code == 200 and body(softserve) == b"softserve-bytes-1"
    assert softserve["Content-Disposition"] == 'attachment; filename="sentiment-v1.safetensors"'
    peft = acme.client.get(f"{BASE}/1/artifact/peft")
    assert peft.status_code == 200 and body(peft) == b"PK-peft-zip-1"
    assert peft["Content-Type"] == "application/zip"
    assert 'filename="sentiment-v1.peft.zip"' in peft["Content-Disposition"]
    # A read-only key may download: it is a read.
    _, reader = ApiKey.mint(acme.tenant, "ro", ["read"], role="viewer", created_by=acme.owner)
    assert bearer(reader).get(f"{BASE}/1/artifact/peft").status_code == 200


def test_per_label_figures_and_confusion_matrix_are_in_the_version(acme):
    make_prompt(acme)
    version(acme, 1)
    detail = acme.client.get(f"{BASE}/1").json()
    assert detail["metrics"]["dev"]["per_label"] == REPORT["per_label"]
    assert detail["metrics"]["dev"]["confusion"] == REPORT["confusion"]


def test_another_teams_version_answers_404_for_downloads_and_tokens(acme, globex, s3):
    make_prompt(acme)
    version(acme, 1, s3)
    make_prompt(globex)  # same prompt name in the other team: still not acme's version
    for path in (
        f"{BASE}/1",
        f"{BASE}/1/artifact/softserve",
        f"{BASE}/1/artifact/peft",
        f"{BASE}/1/nearest-tokens",
    ):
        assert acme.client.get(path).status_code == 200, path
        response = globex.client.get(path)
        assert response.status_code == 404, path
        assert b"softserve-bytes" not in response.content and b"PK-peft" not in response.content


def test_prefix_versions_have_no_peft_download_and_say_why(acme, s3):
    make_prompt(acme)
    version(acme, 1, s3, method="prefix", peft_key="", inspection={"applies": False, "reason": "x"})
    reason = peft_unavailable("prefix", 1)
    listed = acme.client.get(f"{BASE}/1").json()["downloads"]
    assert listed["peft"] == {"url": None, "unavailable": reason}
    assert listed["softserve"]["url"] == f"{BASE}/1/artifact/softserve"
    refused = acme.client.get(f"{BASE}/1/artifact/peft")
    assert refused.status_code == 404 and refused.json()["error"]["message"] == reason
    assert acme.client.get(f"{BASE}/1/artifact/softserve").status_code == 200
    tokens = acme.client.get(f"{BASE}/1/nearest-tokens").json()
    assert tokens == {
        "version": 1,
        "method": "prefix",
        "state": "not_applicable",
        "reason": nearest_tokens_unavailable("prefix"),
    }


def test_older_and_unfinished_versions_say_not_computed(acme, s3):
    make_prompt(acme)
    version(acme, 1, s3, peft_key="", inspection={}, metrics={"dev": {"accuracy": 0.5}})
    version(acme, 2, artifact_key="", peft_key="", inspection={}, status="pending", metrics={})
    old = acme.client.get(f"{BASE}/1").json()
    assert old["downloads"]["peft"] == {"url": None, "unavailable": NOT_EXPORTED}
    assert acme.client.get(f"{BASE}/1/artifact/peft").json()["error"]["message"] == NOT_EXPORTED
    tokens = acme.client.get(f"{BASE}/1/nearest-tokens").json()
    assert tokens["state"] == "not_computed" and tokens["reason"] == NOT_COMPUTED
    pending = acme.client.get(f"{BASE}/2").json()["downloads"]
    assert pending["softserve"] == {"url": None, "unavailable": NOT_TRAINED} == pending["peft"]
    assert acme.client.get(f"{BASE}/2/artifact/softserve").status_code == 404
    assert acme.client.get(f"{BASE}/2/nearest-tokens").json()["reason"] == NOT_TRAINED


def test_unknown_format_and_missing_objects_are_404(acme, s3):
    make_prompt(acme)
    version(acme, 1)  # rows only: nothing in storage
    unknown = acme.client.get(f"{BASE}/1/artifact/onnx")
    assert unknown.status_code == 404 and "softserve" in unknown.json()["error"]["message"]
    missing = acme.client.get(f"{BASE}/1/artifact/softserve")
    assert missing.status_code == 404 and "missing" in missing.json()["error"]["message"]
    assert acme.client.get(f"{BASE}/9/artifact/softserve").status_code == 404


def test_the_version_list_reads_a_bounded_number_of_queries(acme, django_assert_max_num_queries):
    make_prompt(acme)
    for number in range(1, 30):
        version(acme, number)
    with django_assert_max_num_queries(12):
        assert len(acme.client.get(f"{BASE}?limit=50").json()["results"]) == 29
