"""Prometheus metrics of the serving pool (one set per process, in prometheus-client's default registry)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from prometheus_client import Counter, Histogram

from common import settings as decl

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

QUEUE_WAIT = Histogram(
    "softserve_serving_queue_wait_seconds", "Time from enqueue to the start of the batch", buckets=_FAST
)
BATCH_ROWS = Histogram("softserve_serving_batch_rows", "Model rows in one batch", buckets=_COUNTS)
BATCH_PROMPTS = Histogram(
    "softserve_serving_batch_prompts", "Distinct prompt versions in one batch", buckets=_COUNTS
)
FORWARD = Histogram("softserve_serving_forward_seconds", "Time in the model per sub-batch", buckets=_FAST)
CACHE_HITS = Counter("softserve_serving_prompt_cache_hits", "Prompt cache hits", ["tier"])
for _tier in ("device", "host"):
    CACHE_HITS.labels(_tier)  # both tiers exported from the start (0), so a hit rate is defined
CACHE_MISSES = Counter("softserve_serving_prompt_cache_misses", "Prompts loaded from object storage")
REQUESTS = Counter(
    "softserve_serving_requests", "Requests answered, by outcome", ["tenant", "prompt", "status"]
)
LATENCY = Histogram(
    "softserve_serving_request_latency_seconds",
    "Enqueue to reply, per prompt",
    ["tenant", "prompt"],
    buckets=_FAST,
)
DUPLICATES = Counter(
    "softserve_serving_duplicate_replies_suppressed", "Re-delivered requests answered already"
)
ISOLATION_RETRIES = Counter(
    "softserve_serving_isolation_retries",
    "Sub-batches that failed and were run again in halves to isolate the failing request",
)
SHADOW_FAILURES = Counter(
    "softserve_serving_shadow_failures", "Requests whose shadow version failed (answered without it)"
)
RECLAIMED = Counter("softserve_serving_reclaimed", "Requests taken over from a stopped consumer")
GIVEN_UP = Counter(
    "softserve_serving_given_up", "Requests answered with an error after too many workers stopped on them"
)


# Per-prompt series for the first this many (tenant, prompt) pairs a worker answers; `other` after that,
# so a tenant making thousands of prompts cannot grow Prometheus' series without bound.
READY_TIMEOUT_S = decl.READY_TIMEOUT_S.read()
TOP_PROMPTS = decl.SERVING_METRICS_TOP_PROMPTS.read()
_labelled: set[tuple[str, str]] = set()
_labelled_lock = threading.Lock()


def prompt_labels(tenant: str, prompt: str) -> tuple[str, str]:
    """(tenant, prompt) for a labelled pair, ("other", "other") once TOP_PROMPTS pairs have series."""
    pair = (tenant, prompt)
    with _labelled_lock:
        if pair in _labelled:
            return pair
        if len(_labelled) < TOP_PROMPTS:
            _labelled.add(pair)
            return pair
    return ("other", "other")


def serve_metrics(port: int, checks: Callable[[], Mapping[str, Callable[[], None]]] | None = None) -> None:
    """Expose /metrics (and /healthz, /readyz running `checks`) on `port` from daemon threads (0: nothing)."""
    if not port:
        return
    from prometheus_client import REGISTRY, generate_latest

    from workers.health import serve_http

    serve_http(port, lambda: generate_latest(REGISTRY), checks or dict, READY_TIMEOUT_S)
