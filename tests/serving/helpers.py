"""Prompt artifacts of the right shape (random values: serving does not care what was learned), and
worker processes for the serving tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import ROOT
from workers.engine.artifact import PromptArtifact, artifact_bytes, ensemble_tensors
from workers.engine.base_model import FrozenModel
from workers.engine.task import TaskSpec

REDIS_URL = "redis://127.0.0.1:6379/13"  # db 14 belongs to the jobs tests
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


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
