"""Prompt artifacts of the right shape (random values: serving does not care what was learned), and
worker processes for the serving tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
import redis
import torch

from common.task import TaskSpec
from tests.conftest import ROOT
from tests.net import redis_db_url
from workers.engine.artifacts.artifact import PromptArtifact, artifact_bytes, ensemble_tensors
from workers.engine.base_model import FrozenModel
from workers.storage import S3Store

REDIS_URL = redis_db_url(13)  # db 14 belongs to the jobs tests
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SENTIMENT = TaskSpec(
    "classification",
    "Review: {text}\nSentiment:",
    ["negative", "positive"],
    {"negative": "bad", "positive": "good movie"},  # one multi-token verbalizer: the general path
)
SINGLE_TOKEN = TaskSpec("classification", "{text}\nAnswer:", ["no", "yes"])
PAIR = TaskSpec("classification", "{text_a}\n{text_b}\nSame?", ["no", "yes"])
ANSWER = TaskSpec("generation", "Question: {text}\nAnswer:")


def make_artifact(
    fm: FrozenModel,
    spec: TaskSpec = SENTIMENT,
    method: str = "prompt",
    length: int = 5,
    members: int = 1,
    seed: int = 0,
) -> PromptArtifact:
    generator = torch.Generator().manual_seed(seed)
    if method == "prefix":
        layers, kv_heads, head_dim = fm.kv_geometry()
        shape: tuple[int, ...] = (layers, fm.prefix_slots, kv_heads, length, head_dim)
    else:
        shape = (length, fm.embed_dim)
    tensors = [torch.randn(shape, generator=generator) for _ in range(members)]
    return PromptArtifact(
        tensors=ensemble_tensors(tensors),
        method=method,
        base_model=fm.model_id,
        fingerprint=fm.fingerprint,
        spec=spec,
    )


def stored(store, key: str, artifact: PromptArtifact) -> str:
    """Put the artifact's bytes under `key`; returns their sha256."""
    data = artifact_bytes(artifact)
    store.put_bytes(key, data)
    return hashlib.sha256(data).hexdigest()


def worker_env(model_dir: Path | str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "SERVING_REDIS_URL": REDIS_URL,
        "SERVING_BASE_MODEL": str(model_dir),
        "SERVING_MAX_WAIT_MS": "5",
        "PYTHONUNBUFFERED": "1",
        # One torch thread per worker: on a shared CPU, a forward pass whose threads wait on each other at
        # every barrier while one is descheduled took 0.1-1.3 s instead of ~5 ms (tiny model, load 10).
        "SERVING_TORCH_THREADS": "1",
        **(extra or {}),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A real `python -m workers.serving` process; returns once it says it is ready (or fails loudly)."""
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.serving"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if "serving worker ready" in log_path.read_text():
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"serving worker exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"serving worker not ready in 180 s:\n{log_path.read_text()[-3000:]}")


def fresh_serving_redis() -> redis.Redis:
    """The serving tests' Redis database, flushed; the test fails loudly (never skips) when it is down."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL}: {exc}")
    client.flushdb()
    return client


@contextmanager
def serving_pool(
    model_dir: Path | str, s3_endpoint: str, log_dir: Path, metrics_ports: tuple[int | None, ...] = (None,)
) -> Iterator[S3Store]:
    """One real serving worker per entry of `metrics_ports` (its /metrics port, or None) for `model_dir`,
    on a fresh bucket of the S3 server and the serving Redis database (flushed before and after, and
    failing loudly when Redis is down); yields the bucket's store."""
    client = fresh_serving_redis()
    for name, value in S3_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    bucket = f"serve-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    env = worker_env(model_dir, {**S3_CREDENTIALS, "S3_ENDPOINT_URL": s3_endpoint, "S3_BUCKET": bucket})
    workers: list[subprocess.Popen] = []
    try:
        for i, port in enumerate(metrics_ports):
            metrics = {"SERVING_METRICS_PORT": str(port)} if port else {}
            workers.append(start_worker({**env, **metrics}, log_dir / f"worker{i}.log"))
        yield S3Store(bucket, s3_endpoint, "us-east-1")
    finally:
        for worker in workers:
            stop_worker(worker)
        client.flushdb()


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def consumer_of(log_path: Path) -> str:
    """The consumer name a worker printed when it became ready."""
    for line in log_path.read_text().splitlines():
        if line.startswith("serving worker ready: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no ready line in {log_path}")


def publish(
    store,
    tenant,
    name: str,
    artifact: PromptArtifact,
    base_model: str,
    number: int = 1,
    alias: str | None = "production",
):
    """A READY version of `name` (created if new) whose artifact is in `store`; the alias moved to it."""
    from softserve.prompts.models import Alias, PromptVersion, TaskPrompt

    spec = artifact.spec
    prompt, _ = TaskPrompt.objects.get_or_create(
        tenant=tenant,
        name=name,
        defaults={
            "task_type": spec.task_type,
            "template": spec.template,
            "labels": spec.labels,
            "verbalizer": spec.verbalizer,
            "base_model": base_model,
        },
    )
    key = f"tenants/{tenant.pk}/prompts/{prompt.pk}/{number}/prompt.safetensors"
    sha = stored(store, key, artifact)
    version = PromptVersion.objects.create(
        tenant=tenant,
        prompt=prompt,
        number=number,
        method=artifact.method,
        status="ready",
        ensemble_size=artifact.ensemble_size,
        artifact_key=key,
        artifact_sha256=sha,
    )
    if alias:
        Alias.objects.update_or_create(
            tenant=tenant, prompt=prompt, name=alias, defaults={"version": version}
        )
    return version


def engine_output(fm: FrozenModel, artifact: PromptArtifact, row: dict[str, str]) -> dict:
    """What the engine alone says for one row (no serving path, no KV cache), in the public shape."""
    from workers.engine.inference.predict import LoadedPrompt, predict_mixed

    out = predict_mixed(fm, [(LoadedPrompt.from_artifact(fm, artifact), row)])[0]
    return {k: out[k] for k in ("label", "scores", "votes", "text", "finish_reason") if k in out}


TOKEN_COUNTS = ("prompt_tokens", "completion_tokens")


def public(output: dict) -> dict:
    """A worker's output without its token counts (the platform moves those into usage figures)."""
    return {k: v for k, v in output.items() if k not in TOKEN_COUNTS}


def same_output(a: dict, b: dict, tol: float = 1e-4) -> bool:
    a, b = public(a), public(b)
    if "text" in a or "text" in b:
        return a == b
    return a["label"] == b["label"] and all(abs(a["scores"][k] - b["scores"][k]) < tol for k in b["scores"])
