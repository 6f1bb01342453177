"""Jobs end to end: REST upload → Celery worker process → artifact in S3 → a ready version that predicts.

Real Redis broker, real Postgres (the test database, committed: transactional tests), the S3 server,
and `celery worker -B` subprocesses on the tiny GPT-2.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest

from common.contracts import QUEUE_GPU
from softserve.datasets.models import DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts.models import PromptVersion
from tests.datasets.test_datasets_api import sst2_head, upload
from tests.teams import make_prompt
from tests.workers.conftest import HEARTBEAT_S, ended_job, wait_for
from workers.engine.artifacts.artifact import artifact_from_bytes
from workers.engine.base_model import load_base_model
from workers.engine.inference.predict import LoadedPrompt, predict

pytestmark = pytest.mark.django_db(transaction=True)


def _setup(team, tiny_model_dirs, rows: int = 120) -> str:
    make_prompt(team, base_model=str(tiny_model_dirs["gpt2"]))
    response = upload(team.client, "sst2", "train.csv", sst2_head(rows))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _start(team, dataset_version: str, **spec) -> dict:
    body = {
        "prompt": "sentiment",
        "dataset_version": dataset_version,
        "prompt_length": 4,
        "batch_size": 4,
        **spec,
    }
    response = team.client.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _job(team, job_id: str) -> dict:
    return team.client.get(f"/api/v1/jobs/{job_id}").json()


def _predicts(s3, version: PromptVersion, fm) -> list[dict]:
    data = s3.get_object(Bucket=s3.bucket, Key=version.artifact_key)["Body"].read()
    artifact = artifact_from_bytes(data, version.artifact_key)
    artifact.check_fits(fm)
    return predict(fm, LoadedPrompt.from_artifact(fm, artifact), [{"text": "a fine film"}, {"text": "awful"}])


def test_tune_ensemble_and_evaluate_jobs_end_to_end(acme, workers, s3, tiny_model_dirs):
    dataset = _setup(acme, tiny_model_dirs)
    workers.start()
    tune = _start(acme, dataset, kind="tune", steps=12)
    seen_progress = wait_for(lambda: _job(acme, tune["id"])["progress"].get("step"), 120, "progress", workers)
    assert seen_progress >= 1
    done = wait_for(lambda: ended_job(acme, tune["id"]), 180, "the tune job", workers)
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == 12 and done["progress"]["tokens_per_s"] > 0
    assert done["metric_history"] and "accuracy" in done["metric_history"][-1]
    version = PromptVersion.objects.get(pk=Job.objects.get(pk=tune["id"]).prompt_version_id)
    assert version.status == "ready" and version.artifact_key.endswith("/1/prompt.safetensors")
    assert len(version.artifact_sha256) == 64 and "accuracy" in version.metrics["dev"]
    fm = load_base_model(str(tiny_model_dirs["gpt2"]))
    outputs = _predicts(s3, version, fm)
    assert [set(o["scores"]) for o in outputs] == [{"negative", "positive"}] * 2
    _check_version_report(acme, s3, version, fm)

    ensemble = _start(acme, dataset, kind="ensemble", steps=6, members=3)
    done = wait_for(lambda: ended_job(acme, ensemble["id"]), 240, "the ensemble job", workers)
    assert done["status"] == "succeeded", done["error"]
    members = PromptVersion.objects.get(pk=Job.objects.get(pk=ensemble["id"]).prompt_version_id)
    assert members.status == "ready" and members.ensemble_size == 3
    stored = s3.get_object(Bucket=s3.bucket, Key=members.artifact_key)["Body"].read()
    assert artifact_from_bytes(stored).ensemble_size == 3
    # PEFT has no ensembles: no export, and the API says why; the token view shows member 1 of 3.
    assert members.peft_key == "" and members.inspection["members"] == 3
    listed = acme.client.get("/api/v1/prompts/sentiment/versions").json()["results"]
    peft = next(v for v in listed if v["number"] == 2)["downloads"]["peft"]
    assert peft["url"] is None and "PEFT has no ensembles" in peft["unavailable"]
    assert acme.client.get("/api/v1/prompts/sentiment/versions/2/artifact/peft").status_code == 404

    other = upload(acme.client, "sst2-other", "other.csv", sst2_head(60)).json()["id"]
    evaluate = _start(acme, other, kind="evaluate", version=2)
    done = wait_for(lambda: ended_job(acme, evaluate["id"]), 120, "the evaluate job", workers)
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["n"] > 0 and len(done["result"]["members"]) == 3
    members.refresh_from_db()
    assert members.metrics["evaluations"][other]["accuracy"] == done["result"]["accuracy"]
    # An evaluation keeps the same per-label figures and confusion matrix as training's dev score.
    assert set(done["result"]["per_label"]) == {"negative", "positive"}
    assert sum(map(sum, done["result"]["confusion"]["matrix"])) == done["result"]["n"]

    # Prefix tuning: a Softserve file only, and the view says why it has no tokens.
    prefix = _start(acme, dataset, kind="tune", method="prefix", steps=4)
    done = wait_for(lambda: ended_job(acme, prefix["id"]), 120, "the prefix job", workers)
    assert done["status"] == "succeeded", done["error"]
    third = PromptVersion.objects.get(pk=Job.objects.get(pk=prefix["id"]).prompt_version_id)
    assert third.peft_key == "" and third.inspection["applies"] is False
    shown = acme.client.get("/api/v1/prompts/sentiment/versions/3").json()
    assert "Prefix-tuning versions have no PEFT download" in shown["downloads"]["peft"]["unavailable"]
    assert acme.client.get("/api/v1/prompts/sentiment/versions/3/artifact/softserve").status_code == 200
    tokens = acme.client.get(shown["nearest_tokens"]).json()
    assert tokens["state"] == "not_applicable" and "prefix tuning" in tokens["reason"]


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_a_generation_job_with_every_default_trains(acme, workers, s3, tiny_model_dirs):
    """Number to words, started with no init, optimizer or rate: the defaults fit a generation task
    (init vocab, not the labels init it has no label words for), and the job trains to a ready version."""
    make_prompt(
        acme,
        name="numbers",
        task_type="generation",
        labels=[],
        verbalizer={},
        template="Number: {text}\nWords:",
        base_model=str(tiny_model_dirs["gpt2"]),
    )
    rows = "".join(f"{n},{' '.join(DIGITS[int(d)] for d in str(n))}\n" for n in range(40))
    uploaded = upload(acme.client, "numbers", "numbers.csv", ("text,label\n" + rows).encode())
    assert uploaded.status_code == 201 and uploaded.json()["task_type"] == "generation", uploaded.content
    workers.start()
    job = _start(acme, uploaded.json()["id"], prompt="numbers", kind="tune", steps=3)
    assert job["spec"]["init"] == "vocab"
    done = wait_for(lambda: ended_job(acme, job["id"]), 180, "the generation job", workers)
    assert done["status"] == "succeeded", done["error"]
    version = PromptVersion.objects.get(pk=Job.objects.get(pk=job["id"]).prompt_version_id)
    assert version.status == "ready" and "exact_match" in version.metrics["dev"]
    stored = s3.get_object(Bucket=s3.bucket, Key=version.artifact_key)["Body"].read()
    artifact = artifact_from_bytes(stored, version.artifact_key)
    assert artifact.train_config["init"] == "vocab" and artifact.spec.task_type == "generation"


def _check_version_report(team, s3, version: PromptVersion, fm) -> None:
    """What the tuning worker wrote beside the artifact: per-label figures and the confusion matrix in
    the dev metrics, the nearest-token view in the row, the PEFT zip in storage; and how the API serves
    them (both downloads byte for byte from storage)."""
    dev = version.metrics["dev"]
    assert set(dev["per_label"]) == {"negative", "positive"}
    assert dev["confusion"]["labels"] == ["negative", "positive"]
    assert sum(map(sum, dev["confusion"]["matrix"])) == dev["n"]
    assert version.inspection["applies"] and len(version.inspection["positions"]) == 4  # prompt_length
    assert all(len(row["nearest"]) == 5 for row in version.inspection["positions"])
    assert version.peft_key.endswith("/1/peft.zip")
    stored_zip = s3.get_object(Bucket=s3.bucket, Key=version.peft_key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(stored_zip)) as archive:
        assert sorted(archive.namelist()) == ["adapter_config.json", "adapter_model.safetensors"]
        assert json.loads(archive.read("adapter_config.json"))["num_virtual_tokens"] == 4

    base = "/api/v1/prompts/sentiment/versions/1"
    listed = team.client.get(base).json()
    assert listed["metrics"]["dev"]["per_label"] == dev["per_label"]
    assert listed["downloads"]["peft"]["url"] == f"{base}/artifact/peft"
    softserve = team.client.get(listed["downloads"]["softserve"]["url"])
    assert softserve.status_code == 200 and softserve["Content-Type"] == "application/octet-stream"
    assert 'filename="sentiment-v1.safetensors"' in softserve["Content-Disposition"]
    artifact = s3.get_object(Bucket=s3.bucket, Key=version.artifact_key)["Body"].read()
    assert b"".join(softserve.streaming_content) == artifact
    peft = team.client.get(f"{base}/artifact/peft")
    assert peft.status_code == 200 and peft["Content-Type"] == "application/zip"
    assert b"".join(peft.streaming_content) == stored_zip
    tokens = team.client.get(listed["nearest_tokens"]).json()
    assert tokens["state"] == "computed" and tokens["positions"] == version.inspection["positions"]


def test_bad_data_or_an_unloadable_base_model_fails_at_once_with_a_readable_message(
    acme, workers, s3, settings, tmp_path, tiny_model_dirs
):
    dataset = _setup(acme, tiny_model_dirs, rows=40)
    missing_model = str(tmp_path / "no-such-model")
    settings.SOFTSERVE_BASE_MODELS = [*settings.SOFTSERVE_BASE_MODELS, missing_model]
    make_prompt(acme, name="unloadable", base_model=missing_model)
    workers.start()
    no_model = _start(acme, dataset, kind="tune", steps=5, prompt="unloadable")
    done = wait_for(lambda: ended_job(acme, no_model["id"]), 120, "the job on a missing model", workers)
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "base model" in done["error"] and "no-such-model" in done["error"], done["error"]

    s3.delete_object(Bucket=s3.bucket, Key=DatasetVersion.objects.get(pk=dataset).storage_key)
    no_rows = _start(acme, dataset, kind="tune", steps=5)
    done = wait_for(lambda: ended_job(acme, no_rows["id"]), 120, "the job without its rows", workers)
    assert done["status"] == "failed" and "stored rows are missing" in done["error"], done["error"]
    version = PromptVersion.objects.get(pk=Job.objects.get(pk=no_rows["id"]).prompt_version_id)
    assert version.status == "failed" and not version.artifact_key


def test_cancel_stops_a_running_job_within_two_heartbeats_of_steps(acme, workers, s3, tiny_model_dirs):
    """The worker learns of a cancel at its next heartbeat (SOFTSERVE_HEARTBEAT_S) and stops at the next
    step boundary; the step the test saw lags the true one by up to a heartbeat too. So the steps run
    after the request are bounded by the job's own measured rate times two heartbeats, not by a fixed
    count that would pass whatever the speed."""
    dataset = _setup(acme, tiny_model_dirs, rows=60)
    workers.start()
    job = _start(acme, dataset, kind="tune", steps=100_000)
    step_at_cancel = wait_for(
        lambda: (_job(acme, job["id"])["progress"].get("step") or 0) > 10, 120, "steps", workers
    )
    assert step_at_cancel
    # The job's own pace, measured over a second of its progress just before the cancel.
    first, first_at = _job(acme, job["id"])["progress"]["step"], time.monotonic()
    time.sleep(1.0)
    step_at_cancel, at = _job(acme, job["id"])["progress"]["step"], time.monotonic()
    rate = (step_at_cancel - first) / (at - first_at)
    assert acme.client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    done = wait_for(lambda: ended_job(acme, job["id"]), 60, "the cancelled job", workers)
    assert done["status"] == "cancelled"
    stopped = done["result"]["stopped_at_step"]
    # Two heartbeats of steps at the measured pace, doubled for the pace changing on a loaded machine,
    # plus the step in flight on each side.
    bound = 2 * rate * 2 * HEARTBEAT_S + 2
    print(f"cancel: at step ~{step_at_cancel} ({rate:.0f} steps/s), stopped at {stopped} (bound {bound:.0f})")
    assert stopped - step_at_cancel <= bound, (stopped, step_at_cancel, rate)
    version = PromptVersion.objects.get(pk=Job.objects.get(pk=job["id"]).prompt_version_id)
    assert version.status == "cancelled" and not version.artifact_key
    checkpoint = f"tenants/{acme.tenant.id}/prompts/{version.prompt_id}/1/checkpoint.safetensors"
    assert s3.head_object(Bucket=s3.bucket, Key=checkpoint)["ContentLength"] > 0


def test_a_lost_broker_message_is_sent_again_by_the_reconciler(acme, workers, broker, tiny_model_dirs):
    dataset = _setup(acme, tiny_model_dirs, rows=40)
    job = _start(acme, dataset, kind="tune", steps=4)
    messages = broker.lrange(QUEUE_GPU, 0, -1)
    assert [json.loads(m)["headers"]["task"] for m in messages] == ["softserve.jobs.tune"]
    broker.delete(QUEUE_GPU)  # the message is lost before any worker took it
    workers.start()
    done = wait_for(lambda: ended_job(acme, job["id"]), 180, "the re-sent job", workers)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
