"""The default model's cache folder when several processes start together on a fresh machine.

A benchmark's children once failed with "no file named model.safetensors" in the cache: each converted
the GGUF itself and replaced the folder, removing it under a process that was loading from it. The
conversion is replaced here by a fake that takes a moment (the real one takes ~20 s of CPU)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from workers.engine import base_model
from workers.engine.base_model import DEFAULT_MODEL_ID, default_model_dir

WORKERS = 4


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SOFTSERVE_MODEL_CACHE", str(tmp_path))
    return tmp_path


def _slow_fake_conversion(monkeypatch, calls: list[float], fail: bool = False) -> None:
    def convert(folder: Path) -> None:
        calls.append(time.monotonic())
        (folder / "model.safetensors").write_bytes(b"weights")
        time.sleep(0.3)  # the window in which a second converter used to start
        if fail:
            raise RuntimeError("conversion failed")
        (folder / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(base_model, "convert_default_model", convert)


def test_processes_starting_together_convert_once_and_never_see_a_partial_folder(cache, monkeypatch):
    calls: list[float] = []
    _slow_fake_conversion(monkeypatch, calls)
    seen_incomplete = []
    stop = threading.Event()
    target = cache / DEFAULT_MODEL_ID

    def reader() -> None:  # a process loading from the folder once it exists
        while not stop.is_set():
            if target.exists() and not (target / "tokenizer.json").is_file():
                seen_incomplete.append(time.monotonic())
            time.sleep(0.005)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        with ThreadPoolExecutor(WORKERS) as pool:  # each call opens the lock file: its own lock
            folders = list(pool.map(lambda _: default_model_dir(), range(WORKERS)))
    finally:
        stop.set()
        watcher.join()
    assert folders == [target] * WORKERS
    assert len(calls) == 1, f"{len(calls)} conversions"
    assert not seen_incomplete, "the folder was visible half-written or removed while in use"
    assert sorted(p.name for p in cache.iterdir()) == [f".{DEFAULT_MODEL_ID}.lock", DEFAULT_MODEL_ID]


def test_a_failed_conversion_leaves_nothing_behind_and_the_next_one_succeeds(cache, monkeypatch):
    calls: list[float] = []
    _slow_fake_conversion(monkeypatch, calls, fail=True)
    with pytest.raises(RuntimeError, match="conversion failed"):
        default_model_dir()
    assert [p.name for p in cache.iterdir()] == [f".{DEFAULT_MODEL_ID}.lock"]  # no staging, no target
    _slow_fake_conversion(monkeypatch, calls)
    assert (default_model_dir() / "tokenizer.json").is_file()


def test_an_incomplete_folder_from_before_is_replaced(cache, monkeypatch):
    calls: list[float] = []
    _slow_fake_conversion(monkeypatch, calls)
    (cache / DEFAULT_MODEL_ID).mkdir()
    (cache / DEFAULT_MODEL_ID / "model.safetensors").write_bytes(b"half")
    folder = default_model_dir()
    assert (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").read_bytes() == b"weights"
    assert len(calls) == 1
