"""The platform's side of serving: put a request on its base model's queue, wait for the one reply.

With SERVING_REDIS_URL (or REDIS_URL) set, the queue is the model's Redis stream and the reply comes
back on a per-request list. Without it (the embedded default) the request goes to a batching loop in
this process, imported on first use only: the web app never loads torch at import time.

Every Redis call here is bounded in time: a Redis that is down, or accepts connections and never answers,
costs a web thread at most SERVING_REDIS_TIMEOUT_S (plus one reply poll), then the caller gets Unavailable.
"""

from __future__ import annotations

import json
import logging
import math
import time
from functools import cache

import redis
from django.conf import settings

from common.contracts import (
    ServeReply,
    ServeRequest,
    ServingMode,
    serving_reply_key,
    serving_stream,
    serving_tenant_key,
)

log = logging.getLogger(__name__)

# KEYS: the model's stream, the tenant's set.
# ARGV: queue max, body, tenant max, now, the entry lapses at, request id, the set's time to live (s).
# Refuses ('tenant' or 'full') when the tenant's share or the stream is full; else adds the request to
# both. One script, so concurrent web processes cannot overshoot either bound together.
ENQUEUE_BOUNDED = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'tenant' end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 'full' end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[7]) then redis.call('EXPIRE', KEYS[2], ARGV[7]) end
return redis.call('XADD', KEYS[1], '*', 'body', ARGV[2])
"""
# Beyond the deadline, how long to wait for the worker's own "expired" answer before giving up.
REPLY_GRACE_S = 0.5
# The reply is awaited in blocking pops of at most this long, each under a socket timeout: a Redis that
# stops answering is noticed within one poll plus SERVING_REDIS_TIMEOUT_S.
REPLY_POLL_S = 1.0


class Overloaded(Exception):
    """The model's queue is full."""


class TenantOverloaded(Overloaded):
    """This tenant has its whole share of the model's queue (SERVING_TENANT_QUEUE_MAX) waiting."""


class NoReply(Exception):
    """No reply came before the deadline."""


class Unavailable(Exception):
    """Redis (the serving queue) cannot be reached, or did not answer in time."""


@cache
def _redis(url: str, blocking: bool = False) -> redis.Redis:
    timeout = settings.SERVING_REDIS_TIMEOUT_S
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        # A blocking pop legitimately waits REPLY_POLL_S on the server before answering.
        socket_timeout=timeout + (REPLY_POLL_S if blocking else 0),
        health_check_interval=30,
    )


@cache
def _enqueue_script(url: str):
    return _redis(url).register_script(ENQUEUE_BOUNDED)


def serving_mode() -> ServingMode:
    """SERVING_MODE when set; otherwise redis when a serving Redis URL is configured, else embedded."""
    if settings.SERVING_MODE:
        return ServingMode(settings.SERVING_MODE)
    return ServingMode.REDIS if settings.SERVING_REDIS_URL else ServingMode.EMBEDDED


def submit(request: ServeRequest, timeout_s: float) -> ServeReply:
    """The worker's reply. Raises Overloaded / TenantOverloaded (queue or the tenant's share full),
    NoReply (deadline passed) or Unavailable (Redis down or hanging)."""
    if serving_mode() == ServingMode.EMBEDDED:
        return _submit_embedded(request, timeout_s)
    url = settings.SERVING_REDIS_URL
    tenant_key = serving_tenant_key(request["base_model"], request["tenant_id"])
    try:
        added = _enqueue_script(url)(
            keys=[serving_stream(request["base_model"]), tenant_key],
            args=[
                settings.SERVING_QUEUE_MAX,
                json.dumps(request),
                settings.SERVING_TENANT_QUEUE_MAX,
                time.time(),
                time.time() + timeout_s + 1,
                request["request_id"],
                math.ceil(timeout_s) + 60,
            ],
        )
    except redis.RedisError as exc:
        log.warning("serving queue unavailable for request %s: %r", request["request_id"], exc)
        raise Unavailable from exc
    if added in (b"tenant", "tenant"):
        raise TenantOverloaded
    if added in (b"full", "full"):
        raise Overloaded
    try:
        return _await_reply(url, request["request_id"], timeout_s)
    finally:
        try:
            _redis(url).zrem(tenant_key, request["request_id"])
        except redis.RedisError:  # the entry lapses by itself at its deadline
            log.warning("could not release request %s from its tenant's share", request["request_id"])


def _await_reply(url: str, request_id: str, timeout_s: float) -> ServeReply:
    client = _redis(url, blocking=True)
    ends = time.monotonic() + timeout_s
    while (left := ends - time.monotonic()) > 0:
        try:
            # Never 0: BLPOP's 0 means "wait forever".
            popped = client.blpop([serving_reply_key(request_id)], timeout=max(0.01, min(left, REPLY_POLL_S)))
        except redis.RedisError as exc:
            log.warning("serving queue unavailable while awaiting request %s: %r", request_id, exc)
            raise Unavailable from exc
        if popped is not None:
            return json.loads(popped[1])
    raise NoReply


def _submit_embedded(request: ServeRequest, timeout_s: float) -> ServeReply:
    from workers.serving import local

    try:
        reply = local.submit(request, timeout_s, tenant_max=settings.SERVING_TENANT_QUEUE_MAX)
    except local.TenantQueueFull:
        raise TenantOverloaded from None
    except local.QueueFull:
        raise Overloaded from None
    if reply is None:
        raise NoReply
    return reply
