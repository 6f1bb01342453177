"""Prometheus metrics of the serving pool (one set per process, in prometheus-client's default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

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
RECLAIMED = Counter("softserve_serving_reclaimed", "Requests taken over from a stopped consumer")
GIVEN_UP = Counter(
    "softserve_serving_given_up", "Requests answered with an error after too many workers stopped on them"
)


def serve_metrics(port: int) -> None:
    """Expose /metrics on `port` from a daemon thread (0: do nothing)."""
    if port:
        start_http_server(port)
