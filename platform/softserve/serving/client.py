"""The platform's side of serving: put a request on its base model's queue, wait for the one reply.

With SERVING_REDIS_URL (or REDIS_URL) set, the queue is the model's Redis stream and the reply comes
back on a per-request list. Without it (the embedded default) the request goes to a batching loop in
this process, imported on first use only: the web app never loads torch at import time.
"""

from __future__ import annotations

import json
from functools import cache

import redis
from django.conf import settings

from workers.contracts import ServeReply, ServeRequest, serving_reply_key, serving_stream

# Refuse (nil) when the stream already holds `limit` requests, queued or in flight; else add it.
# One script, so concurrent web processes cannot overshoot the bound together.
ENQUEUE_BOUNDED = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'body', ARGV[2])
"""
# Beyond the deadline, how long to wait for the worker's own "expired" answer before giving up.
REPLY_GRACE_S = 0.5


class Overloaded(Exception):
    """The model's queue is full."""


class NoReply(Exception):
    """No reply came before the deadline."""


@cache
def _redis(url: str) -> redis.Redis:
    # No read timeout: BLPOP carries the request's own deadline (redis-py's default would cut it short).
    return redis.Redis.from_url(url, health_check_interval=30, socket_timeout=None, socket_connect_timeout=5)


@cache
def _enqueue_script(url: str):
    return _redis(url).register_script(ENQUEUE_BOUNDED)


def serving_mode() -> str:
    """SERVING_MODE when set, else redis with a serving Redis URL and embedded without one."""
    return settings.SERVING_MODE or ("redis" if settings.SERVING_REDIS_URL else "embedded")


def submit(request: ServeRequest, timeout_s: float) -> ServeReply:
    """The worker's reply. Raises Overloaded (queue full) or NoReply (deadline passed)."""
    if serving_mode() == "embedded":
        return _submit_embedded(request, timeout_s)
    url = settings.SERVING_REDIS_URL
    client = _redis(url)
    added = _enqueue_script(url)(
        keys=[serving_stream(request["base_model"])], args=[settings.SERVING_QUEUE_MAX, json.dumps(request)]
    )
    if added is None:
        raise Overloaded
    popped = client.blpop([serving_reply_key(request["request_id"])], timeout=max(0.01, timeout_s))
    if popped is None:
        raise NoReply
    return json.loads(popped[1])


def _submit_embedded(request: ServeRequest, timeout_s: float) -> ServeReply:
    from workers.serving import local

    try:
        reply = local.submit(request, timeout_s)
    except local.QueueFull:
        raise Overloaded from None
    if reply is None:
        raise NoReply
    return reply
