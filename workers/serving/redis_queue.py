"""The pool's transport: one Redis stream per base model, read by a consumer group (at-least-once).

Every worker of a model reads the same stream in the group `serving`. An entry stays pending until its
reply is sent; an entry whose consumer stopped (killed, machine lost) is taken over (XPENDING IDLE, then
XCLAIM) once it has been idle for `claim_idle_ms`. Replying is one Lua script: mark the request replied
(SET NX), push the reply only if that mark is new, then acknowledge and delete the entry. So a request handled
twice (its first worker died after computing, before replying) is still answered exactly once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, cast

import redis

from common.contracts import (
    SERVING_GROUP,
    SERVING_REPLY_TTL_S,
    ServeReply,
    ServeRequest,
    serving_replied_key,
    serving_reply_key,
    serving_stream,
)
from workers.serving import metrics
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending, error_reply, fair_pick

log = logging.getLogger(__name__)

# KEYS: replied marker, reply list, stream. ARGV: worker, reply JSON, ttl, group, entry id.
REPLY_ONCE = """
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3])
if fresh then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[5])
redis.call('XDEL', KEYS[3], ARGV[5])
if fresh then return 1 end
return 0
"""
READ_BLOCK_MS = 500  # an idle worker looks at its stop flag and at stale entries this often
CLAIM_EVERY_S = 1.0
# While a batch's window is open the worker polls without BLOCK: Redis ends a blocking read's timeout only
# on its server tick (`hz`, 10 a second by default), so a 5 ms BLOCK can last 100 ms.
WINDOW_POLL_S = 0.0005
# A worker reads up to this many batches' worth of requests to pick each batch fairly across tenants
# (more would see further past a burst, but hold entries that another idle worker of the pool could serve).
LOOKAHEAD_BATCHES = 2


def _stream_gone(exc: redis.ResponseError) -> bool:
    """The stream or its group was deleted (e.g. a flush) while we read: recreate it, do not crash."""
    return "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc)


class RedisSource:
    def __init__(self, client: redis.Redis, config: ServingConfig, consumer: str):
        self.client = client
        self.config = config
        self.consumer = consumer
        self.stream = serving_stream(config.base_model)
        self._reply_once = client.register_script(REPLY_ONCE)
        self._last_claim = 0.0
        # Read but not yet batched (pending for this consumer): batches are picked round-robin by tenant
        # from here, so a burst of one tenant does not push another's request back behind it all.
        self._backlog: list[Pending] = []
        self.ensure_group()

    def ensure_group(self) -> None:
        try:
            # From id 0: requests queued before the first worker started are served too.
            self.client.xgroup_create(self.stream, SERVING_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def holding(self) -> int:
        """Requests read from the stream and not yet batched (answered before a clean stop)."""
        return len(self._backlog)

    def take(self, max_rows: int, max_wait_s: float, stop: threading.Event) -> list[Pending]:
        if stop.is_set():  # stopping: no new reads, only what this consumer already holds
            batch, self._backlog = fair_pick(self._backlog, max_rows)
            return batch
        held = {p.handle for p in self._backlog}
        self._backlog.extend(p for p in self._claim(max_rows) if p.handle not in held)
        if not self._backlog:
            self._backlog = self._read(max_rows, READ_BLOCK_MS)
            if not self._backlog:
                return []
        closes = time.monotonic() + max_wait_s
        while (missing := max_rows - sum(p.rows for p in self._backlog)) > 0:
            more = self._read(missing, None)
            if more:
                self._backlog.extend(more)
                continue
            left = closes - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(WINDOW_POLL_S, left))
        # Look past one batch (bounded: what is read waits here, pending, not in the stream for others).
        room = LOOKAHEAD_BATCHES * max_rows - len(self._backlog)
        if room > 0:
            self._backlog.extend(self._read(room, None))
        batch, self._backlog = fair_pick(self._backlog, max_rows)
        return batch

    def _read(self, count: int, block_ms: int | None) -> list[Pending]:
        try:
            response = self.client.xreadgroup(
                SERVING_GROUP, self.consumer, {self.stream: ">"}, count=max(1, count), block=block_ms
            )
        except redis.ResponseError as exc:
            if not _stream_gone(exc):
                raise
            self.ensure_group()  # the stream was deleted (flushed) under us; start again
            return []
        # redis-py types the reply as a union of every shape XREADGROUP may take; this call gets a list.
        entries: list[Any] = cast(list[Any], response)[0][1] if response else []
        return self._decode(entries)

    def _claim(self, count: int) -> list[Pending]:
        """Entries idle for claim_idle_ms in the group (their consumer stopped, or the reply could not be
        sent), taken over by this consumer, except what this consumer holds in its own backlog: those
        wait here on purpose, and claiming them (XAUTOCLAIM cannot leave them out) counted a delivery each
        time, so a request that waited behind a burst was given up as poisonous though no worker stopped,
        and answered twice (the error, then its result from the backlog)."""
        now = time.monotonic()
        if now - self._last_claim < CLAIM_EVERY_S:
            return []
        self._last_claim = now
        held = {p.handle for p in self._backlog}
        try:
            # Idle entries in id order; ours among them are at most len(held), so `count` others still fit.
            stale = self.client.xpending_range(
                self.stream,
                SERVING_GROUP,
                min="-",
                max="+",
                count=count + len(held),
                idle=self.config.claim_idle_ms,
            )
            stale = [entry for entry in stale if entry["message_id"] not in held][:count]
            if not stale:
                return []
            # Not JUSTID: the claim counts a delivery, which is what a take-over is. An entry another worker
            # claimed since (no longer idle) is left to it; one deleted from the stream meanwhile is dropped
            # from the pending list by Redis (≥ 7) and not returned.
            entries = self.client.xclaim(
                self.stream,
                SERVING_GROUP,
                self.consumer,
                self.config.claim_idle_ms,
                [entry["message_id"] for entry in stale],
            )
        except redis.ResponseError as exc:
            if not _stream_gone(exc):
                raise
            self.ensure_group()
            return []
        # The delivery this claim just added is counted in: the same figure XPENDING now shows.
        deliveries = {entry["message_id"]: int(entry["times_delivered"]) + 1 for entry in stale}
        claimed = self._decode([e for e in entries if e and e[0] is not None and e[1]])
        if claimed:
            metrics.RECLAIMED.inc(len(claimed))
            log.warning("took over %d request(s) from a stopped consumer", len(claimed))
        return [p for p in claimed if not self._give_up_if_poisonous(p, deliveries.get(p.handle, 0))]

    def _give_up_if_poisonous(self, pending: Pending, deliveries: int) -> bool:
        """Answer (with an error) a request whose workers kept stopping; True when it was given up."""
        if deliveries <= self.config.max_deliveries:
            return False
        request = pending.request
        log.error("giving up request %s after %d deliveries", request["request_id"], deliveries)
        metrics.GIVEN_UP.inc()
        self.reply(pending, error_reply(request, "given_up", self.consumer))
        return True

    def _decode(self, entries: list[Any]) -> list[Pending]:
        batch = []
        for entry_id, fields in entries:
            try:
                request = json.loads(fields[b"body"])
                if not isinstance(request, dict):
                    raise TypeError("not an object")
                str(request["request_id"])  # a body without an id cannot be answered
            except (KeyError, TypeError, ValueError):
                log.error("dropping a malformed serving entry %s", entry_id)
                self.client.xack(self.stream, SERVING_GROUP, entry_id)
                self.client.xdel(self.stream, entry_id)
                continue
            batch.append(Pending(request=cast(ServeRequest, request), handle=entry_id))
        return batch

    def reply(self, pending: Pending, reply: ServeReply) -> bool:
        """Send the reply unless this request was answered already; acknowledge the entry either way."""
        request_id = pending.request["request_id"]
        fresh = self._reply_once(
            keys=[serving_replied_key(request_id), serving_reply_key(request_id), self.stream],
            args=[self.consumer, json.dumps(reply), SERVING_REPLY_TTL_S, SERVING_GROUP, pending.handle],
        )
        if not fresh:
            metrics.DUPLICATES.inc()
        return bool(fresh)

    def leave(self) -> None:
        """On a clean stop: drop this consumer from the group when it holds nothing pending."""
        try:
            for consumer in self.client.xinfo_consumers(self.stream, SERVING_GROUP):
                if consumer["name"].decode() == self.consumer and consumer["pending"] == 0:
                    self.client.xgroup_delconsumer(self.stream, SERVING_GROUP, self.consumer)
        except redis.RedisError:
            log.warning("could not leave the consumer group", exc_info=True)
