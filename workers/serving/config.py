"""The serving workers' configuration: one object read from the declarations in common/settings.py (the
SERVING_* variables, each with its default; see .env.example)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common import settings as decl
from common.defaults import PRECISIONS
from common.settings import DEFAULT_MODEL_ID as DEFAULT_MODEL_ID
from common.settings import read_settings, setting


@dataclass
class ServingConfig:
    base_model: str = DEFAULT_MODEL_ID
    # Empty: no Redis; the platform runs the batching loop in its own process (embedded default).
    redis_url: str = ""
    # A batch closes at this many model rows (an ensemble input takes K rows) or after max_wait_ms.
    max_batch_rows: int = setting(decl.SERVING_MAX_BATCH_ROWS)
    # One forward pass holds at most this many (rows × padded length) positions; longer batches split.
    max_batch_tokens: int = setting(decl.SERVING_MAX_BATCH_TOKENS)
    max_wait_ms: float = setting(decl.SERVING_MAX_WAIT_MS)
    # Requests queued or in flight per base model; above it the platform answers 503.
    queue_max: int = setting(decl.SERVING_QUEUE_MAX)
    # Prompts ready on the device (with their key/value states), and parsed artifacts kept in host memory.
    device_cache_prompts: int = setting(decl.SERVING_DEVICE_CACHE_PROMPTS)
    host_cache_prompts: int = setting(decl.SERVING_HOST_CACHE_PROMPTS)
    kv_cache: bool = setting(decl.SERVING_KV_CACHE)
    # A request held this long by a consumer that stopped (no ack) is taken over by another.
    claim_idle_ms: int = setting(decl.SERVING_CLAIM_IDLE_MS)
    # A request whose workers stopped this many times (it may be what kills them) is answered with an
    # error instead of being handed to yet another worker.
    max_deliveries: int = setting(decl.SERVING_MAX_DELIVERIES)
    # Prometheus metrics on this port (0: not served); worker i of a pool uses port + i.
    metrics_port: int = setting(decl.SERVING_METRICS_PORT)
    workers: int = setting(decl.SERVING_WORKERS)
    max_new_tokens: int = setting(decl.SERVING_MAX_NEW_TOKENS)
    device: str = setting(decl.SERVING_DEVICE)
    # Threads of each worker's torch ops (torch.set_num_threads at start); 0: torch's own default, one per
    # core. On a CPU shared with the web server and other workers, every worker taking all cores makes them
    # fight over the same cores (and spin), so the latency of everything on the machine swings: give each
    # worker its share (e.g. 1 per worker on a small box).
    torch_threads: int = setting(decl.SERVING_TORCH_THREADS)
    # The PEFT-style baseline of benchmarks/serving.py: one forward pass per distinct prompt.
    group_by_prompt: bool = setting(decl.SERVING_GROUP_BY_PROMPT)
    # Training's precision policy (workers/engine/precision.py): auto is bf16 autocast where the device
    # runs bf16 natively, so a prompt is served as it was trained and dev-scored.
    precision: str = setting(decl.SERVING_PRECISION)

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
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServingConfig:
        """`env`: the process environment when None. The base model falls back to SOFTSERVE_BASE_MODEL and
        the Redis URL to REDIS_URL, as the platform's do."""
        values: dict[str, Any] = {
            "base_model": decl.SERVING_BASE_MODEL.read(env) or decl.BASE_MODEL.read(env),
            "redis_url": decl.serving_redis_url(env),
        }
        values.update(overrides)
        return read_settings(cls, env, **values)
