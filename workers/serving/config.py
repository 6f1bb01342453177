"""Serving configuration from environment variables, each with an embedded default (see .env.example)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from common.defaults import DEFAULT_PRECISION, PRECISIONS

# The engine's DEFAULT_MODEL_ID, spelled out: importing the engine here would load torch in the web process.
DEFAULT_MODEL_ID = "smollm2-135m-instruct"


@dataclass
class ServingConfig:
    base_model: str = DEFAULT_MODEL_ID
    # Empty: no Redis; the platform runs the batching loop in its own process (embedded default).
    redis_url: str = ""
    # A batch closes at this many model rows (an ensemble input takes K rows) or after max_wait_ms.
    max_batch_rows: int = 32
    # One forward pass holds at most this many (rows × padded length) positions; longer batches split.
    max_batch_tokens: int = 4096
    max_wait_ms: float = 2.0
    # Requests queued or in flight per base model; above it the platform answers 503.
    queue_max: int = 1000
    # Prompts ready on the device (with their key/value states), and parsed artifacts kept in host memory.
    device_cache_prompts: int = 256
    host_cache_prompts: int = 4096
    kv_cache: bool = True
    # A request held this long by a consumer that stopped (no ack) is taken over by another.
    claim_idle_ms: int = 15000
    # A request whose workers stopped this many times (it may be what kills them) is answered with an
    # error instead of being handed to yet another worker.
    max_deliveries: int = 3
    # Prometheus metrics on this port (0: not served); worker i of a pool uses port + i.
    metrics_port: int = 0
    workers: int = 1
    max_new_tokens: int = 32
    device: str = ""
    # Threads of each worker's torch ops (torch.set_num_threads at start); 0: torch's own default, one per
    # core. On a CPU shared with the web server and other workers, every worker taking all cores makes them
    # fight over the same cores (and spin), so the latency of everything on the machine swings: give each
    # worker its share (e.g. 1 per worker on a small box).
    torch_threads: int = 0
    # The PEFT-style baseline of benchmarks/serving.py: one forward pass per distinct prompt.
    group_by_prompt: bool = False
    # Training's precision policy (workers/engine/precision.py): auto is bf16 autocast where the device
    # runs bf16 natively, so a prompt is served as it was trained and dev-scored.
    precision: str = DEFAULT_PRECISION

    def __post_init__(self) -> None:
        for name in (
            *("max_batch_rows", "max_batch_tokens", "queue_max", "workers", "max_new_tokens"),
            "max_deliveries",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("device_cache_prompts", "host_cache_prompts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if self.host_cache_prompts < self.device_cache_prompts:
            raise ValueError("The host cache must hold at least as many prompts as the device cache.")
        if (
            self.max_wait_ms < 0
            or self.claim_idle_ms < 100
            or self.metrics_port < 0
            or self.torch_threads < 0
        ):
            raise ValueError(
                "max_wait_ms ≥ 0, claim_idle_ms ≥ 100, metrics_port ≥ 0 and torch_threads ≥ 0 are required."
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ServingConfig:
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(f"SERVING_{f.name.upper()}", "")
            if f.name == "redis_url" and not raw:
                raw = env.get("REDIS_URL", "")
            if f.name == "base_model" and not raw:
                raw = env.get("SOFTSERVE_BASE_MODEL", "")
            if raw == "":
                continue
            kind = type(f.default)
            values[f.name] = raw.lower() in ("1", "true", "yes", "on") if kind is bool else kind(raw)
        values.update(overrides)
        return cls(**values)
