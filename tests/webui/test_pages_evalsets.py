"""The evaluation set on the team pages (Django's test client): pin and unpin from the prompt page, each
version's score and parity badge, a re-run, and the job form's held-out refusal with its checkbox."""

from __future__ import annotations

import pytest

from common.contracts import ParityStatus
from softserve.prompts import actions
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.datasets.test_datasets_api import sst2_head, upload
from tests.teams import make_dataset_version, make_prompt
from tests.webui.test_pages import browser

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(actions, "send", lambda *a, **kw: None)


def _ready(team, number: int, **fields) -> PromptVersion:
    return PromptVersion.objects.create(
        tenant=team.tenant,
        prompt=TaskPrompt.objects.get(tenant=team.tenant, name="sentiment"),
        number=number,
        method="prompt",
        status="ready",
        artifact_key=f"k/{number}",
        artifact_sha256="0" * 64,
        metrics={"dev": {"accuracy": 0.8, "n": 10}},
        **fields,
    )


def test_pin_show_rerun_and_unpin_from_the_prompt_page(acme, globex):
    make_prompt(acme)
    held_out = make_dataset_version(acme.tenant, "sst2-eval")
    _ready(
        acme,
        1,
        parity=ParityStatus.PASSED,
        evaluation={
            "dataset_version": str(held_out.pk),
            "metrics": {"accuracy": 0.75, "macro_f1": 0.7},
            "dev_metrics": {"accuracy": 0.8},
            "serving_dev_metrics": {"accuracy": 0.8},
            "gap": 0.0,
            "tolerance": 0.02,
            "gap_basis": "dev_rows",
        },
    )
    _ready(
        acme,
        2,
        parity=ParityStatus.FAILED,
        evaluation={
            "dataset_version": str(held_out.pk),
            "metrics": {"accuracy": 0.5},
            "dev_metrics": {"accuracy": 0.8},
            "serving_dev_metrics": {"accuracy": 0.5},
            "gap": 0.3,
            "tolerance": 0.02,
        },
    )
    client = browser(acme)
    page = client.get("/app/prompts/sentiment").content.decode()
    assert "No evaluation set pinned." in page and "sst2-eval v1 (10 rows)" in page  # offered in the menu
    response = client.post("/app/prompts/sentiment/eval-set", {"eval_dataset_version": str(held_out.pk)})
    assert response.status_code == 302
    assert TaskPrompt.objects.get(tenant=acme.tenant).eval_dataset_version_id == held_out.pk
    page = client.get("/app/prompts/sentiment").content.decode()
    assert "is sentiment&#x27;s evaluation set" in page
    assert 'id="eval-set-pinned">Pinned: <a' in page
    row1 = page.split('id="eval-v1"')[1].split("</tr>")[0]
    # Pinning queued both ready versions again: pending, the last figures still shown.
    assert "pending" in row1 and "accuracy 0.750" in row1 and "macro F1 0.700" in row1
    PromptVersion.objects.filter(number=2).update(parity=ParityStatus.FAILED)
    page = client.get("/app/prompts/sentiment").content.decode()
    row2 = page.split('id="eval-v2"')[1].split("</tr>")[0]
    assert "parity failed" in row2 and "gap 0.300 (tolerance 0.020)" in row2

    assert client.post("/app/prompts/sentiment/versions/2/evaluate").status_code == 302
    assert PromptVersion.objects.get(number=2).parity == ParityStatus.PENDING

    # Another team's prompt: 404 for both forms, nothing changes.
    other = browser(globex)
    assert other.post("/app/prompts/sentiment/eval-set", {"unpin": "1"}).status_code == 404
    assert other.post("/app/prompts/sentiment/versions/2/evaluate").status_code == 404

    misfit = make_dataset_version(acme.tenant, "moods", labels=("negative", "positive", "meh"))
    client.post("/app/prompts/sentiment/eval-set", {"eval_dataset_version": str(misfit.pk)})
    page = client.get("/app/prompts/sentiment").content.decode()
    assert "that the label set" in page
    assert TaskPrompt.objects.get(tenant=acme.tenant).eval_dataset_version_id == held_out.pk

    assert client.post("/app/prompts/sentiment/eval-set", {"unpin": "1"}).status_code == 302
    assert TaskPrompt.objects.get(tenant=acme.tenant).eval_dataset_version_id is None
    page = client.get("/app/prompts/sentiment").content.decode()
    assert "No evaluation set pinned." in page and "Re-run v1" not in page


def test_the_job_form_refuses_overlap_beside_the_field_and_the_checkbox_allows_it(acme, s3):
    make_prompt(acme)
    lines = sst2_head(140).splitlines(keepends=True)
    held_out = upload(acme.client, "held-out", "e.csv", lines[0] + b"".join(lines[101:141])).json()["id"]
    train = upload(acme.client, "reviews", "t.csv", b"".join(lines[:111])).json()["id"]
    assert (
        acme.client.patch(
            "/api/v1/prompts/sentiment", {"eval_dataset_version": held_out}, format="json"
        ).status_code
        == 200
    )
    client = browser(acme)
    form = {"kind": "tune", "prompt": "sentiment", "dataset_version": train, "steps": "7", "batch_size": "4"}
    response = client.post("/app/jobs/new", form)
    assert response.status_code == 422
    page = response.content.decode()
    error = page.split('id="id_dataset_version-error">')[1].split("</p>")[0]
    assert error.startswith("10 of the 110 rows of reviews v1 are also in sentiment")
    assert 'name="steps" value="7"' in page or 'value="7"' in page  # the form kept what was typed
    assert "checked" not in page.split('id="id_allow_eval_overlap"')[1].split(">")[0]
    fresh = client.get("/app/jobs/new?prompt=sentiment").content.decode()  # unticked until ticked
    assert "checked" not in fresh.split('id="id_allow_eval_overlap"')[1].split(">")[0]
    response = client.post("/app/jobs/new", {**form, "allow_eval_overlap": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PromptVersion.objects.get(prompt__name="sentiment").hyperparameters["allow_eval_overlap"] is True
