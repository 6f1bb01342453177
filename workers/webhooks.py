"""Webhook deliveries from the workers: SQLAlchemy Core on the tables Django's migrations own (as
`workers/jobdb.py` does), the signed POST, retries with backoff and disabling a hook that keeps failing.

A delivery row is the truth. An attempt first claims the row with a conditional UPDATE (status pending,
due, and the attempt count and due time it read), which moves its due time past the attempt's longest
possible run; only one worker can win that, so two workers never send the same attempt, and a worker that
dies mid-send leaves a row the sweep picks up again once that lease has passed. Retries are scheduled by
the periodic sweep only (TASK_SWEEP_WEBHOOKS sends every due delivery), never by a countdown.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa

from common.contracts import WEBHOOK_TEST_EVENT, DeliveryStatus, WebhookEvent, webhook_envelope
from workers import webhook_net
from workers.config import WorkerConfig, worker_config
from workers.webhook_signing import (
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    signature,
)

log = logging.getLogger(__name__)

COLUMNS: dict[str, tuple[str, ...]] = {
    "webhooks_webhook": (
        *("id", "tenant_id", "url", "events", "secret", "enabled", "consecutive_failures"),
        "disabled_reason",
    ),
    "webhooks_webhookdelivery": (
        *("id", "tenant_id", "created_at", "webhook_id", "event", "payload", "status", "attempts"),
        *("next_attempt_at", "last_status_code", "last_error", "delivered_at"),
    ),
}
# An attempt holds its claim this long: past the longest attempt (connect + total deadline), with room.
LEASE_S = 4 * webhook_net.TOTAL_TIMEOUT_S
MAX_ERROR_CHARS = 300  # WebhookDelivery.last_error's length
SWEEP_BATCH = 200

# How deliveries created by the workers themselves are sent after their transaction commits
# (workers/tasks.py installs Celery's send); without one, the sweep sends them.
_sender: Callable[[str], None] | None = None


def install_sender(send: Callable[[str], None] | None) -> None:
    global _sender
    _sender = send


def announce(delivery_ids: Iterable[str]) -> None:
    """Send deliveries created in a transaction that has committed; a failed send is left to the sweep."""
    if _sender is None:
        return
    for delivery_id in delivery_ids:
        try:
            _sender(delivery_id)
        except Exception:
            log.warning("could not send webhook delivery %s now; the sweep will", delivery_id, exc_info=True)


def backoff_s(attempts: int, config: WorkerConfig) -> float:
    """The wait before the next try of a delivery that has failed `attempts` times (1, 2, …)."""
    return float(min(config.webhook_backoff_s * 2 ** max(0, attempts - 1), config.webhook_backoff_max_s))


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker may attempt now, with its hook."""

    id: Any
    event: str
    payload: dict[str, Any]
    attempts: int  # before this attempt
    lease_until: datetime
    webhook_id: Any
    url: str
    secret: str
    enabled: bool


class WebhookDB:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        metadata = sa.MetaData()
        metadata.reflect(bind=engine, only=list(COLUMNS))
        self.hooks = metadata.tables["webhooks_webhook"]
        self.deliveries = metadata.tables["webhooks_webhookdelivery"]

    # Django stores UUIDs as 32 hex characters, JSON as text and naive UTC times on SQLite.
    def _id(self, value: Any) -> Any:
        return uuid.UUID(str(value)).hex if self.sqlite else uuid.UUID(str(value))

    def _json(self, value: Any) -> Any:
        return json.dumps(value) if self.sqlite else value

    def _loads(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def now(self) -> datetime:
        now = datetime.now(UTC)
        return now.replace(tzinfo=None) if self.sqlite else now

    # --- events ---------------------------------------------------------------------------------------
    def enqueue(
        self, conn: sa.Connection, tenant_id: Any, event: WebhookEvent, data: dict[str, Any]
    ) -> list[str]:
        """One pending delivery per enabled hook of the tenant subscribed to `event`, in the caller's
        transaction (`conn`); returns their ids, to `announce` once it commits."""
        hooks = self.hooks
        rows = conn.execute(
            sa.select(hooks.c.id, hooks.c.events).where(
                hooks.c.tenant_id == self._id(tenant_id), hooks.c.enabled == sa.true()
            )
        ).all()
        subscribed = [row.id for row in rows if str(event) in (self._loads(row.events) or [])]
        if not subscribed:
            return []
        now = self.now()
        body = webhook_envelope(event, str(uuid.UUID(str(tenant_id))), _iso(now), data)
        values = [
            {
                "id": self._id(uuid.uuid4()),
                "tenant_id": self._id(tenant_id),
                "created_at": now,
                "webhook_id": hook_id,
                "event": str(event),
                "payload": self._json(body),
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
            }
            for hook_id in subscribed
        ]
        conn.execute(self.deliveries.insert(), values)
        return [str(uuid.UUID(str(v["id"]))) for v in values]

    # --- attempts -------------------------------------------------------------------------------------
    def claim(self, delivery_id: str) -> Claimed | None:
        """The delivery, if it is pending and due and this worker wins it (a conditional UPDATE); None
        otherwise (delivered, given up, not due yet, or another worker's attempt is under way)."""
        d, h, now = self.deliveries, self.hooks, self.now()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(d, h.c.url, h.c.secret, h.c.enabled)
                .join(h, h.c.id == d.c.webhook_id)
                .where(d.c.id == self._id(delivery_id))
            ).first()
            if row is None or row.status != DeliveryStatus.PENDING or row.next_attempt_at is None:
                return None
            if row.next_attempt_at > now:
                return None
            lease_until = now + timedelta(seconds=LEASE_S)
            won = conn.execute(
                d.update()
                .where(
                    d.c.id == row.id,
                    d.c.status == DeliveryStatus.PENDING,
                    d.c.attempts == row.attempts,
                    d.c.next_attempt_at == row.next_attempt_at,
                )
                .values(next_attempt_at=lease_until)
            ).rowcount
        if won != 1:
            return None
        return Claimed(
            id=row.id,
            event=row.event,
            payload=self._loads(row.payload),
            attempts=row.attempts,
            lease_until=lease_until,
            webhook_id=row.webhook_id,
            url=row.url,
            secret=row.secret,
            enabled=bool(row.enabled),
        )

    def record(
        self, claimed: Claimed, status_code: int | None, error: str, config: WorkerConfig
    ) -> DeliveryStatus | None:
        """The attempt's outcome, if the claim is still this attempt's; returns the delivery's status
        (None: the row changed meanwhile, nothing written). A 2xx is delivered and resets the hook's count
        of failed deliveries; a failure waits for its backoff, or gives up after the last attempt, which
        counts against the hook and disables it past WEBHOOK_DISABLE_AFTER in a row. A test delivery
        (ping) counts for nothing: it only reports."""
        d, h, now = self.deliveries, self.hooks, self.now()
        attempts = claimed.attempts + 1
        ok = status_code is not None and 200 <= status_code < 300
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": "" if ok else error[:MAX_ERROR_CHARS],
        }
        if ok:
            values.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
        elif attempts >= config.webhook_max_attempts or not claimed.enabled:
            values.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=backoff_s(attempts, config))
        counts = claimed.event != WEBHOOK_TEST_EVENT
        with self.engine.begin() as conn:
            done = conn.execute(
                d.update()
                .where(
                    d.c.id == claimed.id,
                    d.c.status == DeliveryStatus.PENDING,
                    d.c.attempts == claimed.attempts,
                    d.c.next_attempt_at == claimed.lease_until,
                )
                .values(**values)
            ).rowcount
            if not done:
                return None
            if counts and values.get("status") == DeliveryStatus.DELIVERED:
                conn.execute(h.update().where(h.c.id == claimed.webhook_id).values(consecutive_failures=0))
            elif counts and values.get("status") == DeliveryStatus.FAILED and claimed.enabled:
                self._count_failure(conn, claimed.webhook_id, error, config)
        status: DeliveryStatus = values.get("status", DeliveryStatus.PENDING)
        return status

    def _count_failure(self, conn: sa.Connection, webhook_id: Any, error: str, config: WorkerConfig) -> None:
        h = self.hooks
        # Read and written under the row's lock: two deliveries giving up at once both count.
        row = conn.execute(
            sa.select(h.c.consecutive_failures, h.c.enabled).where(h.c.id == webhook_id).with_for_update()
        ).first()
        if row is None:
            return
        failures = row.consecutive_failures + 1
        values: dict[str, Any] = {"consecutive_failures": failures}
        if row.enabled and failures >= config.webhook_disable_after:
            when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            reason = (
                f"Disabled on {when}: {failures} deliveries in a row failed after "
                f"{config.webhook_max_attempts} attempts each (last: {error})"
            )
            values.update(enabled=False, disabled_reason=reason[:MAX_ERROR_CHARS])
            log.warning("webhook %s disabled after %d failed deliveries in a row", webhook_id, failures)
        conn.execute(h.update().where(h.c.id == webhook_id).values(**values))

    def due(self, limit: int = SWEEP_BATCH) -> list[str]:
        """Pending deliveries whose (next) attempt is due: retries, and first sends that were lost."""
        d = self.deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.c.id)
                .where(d.c.status == DeliveryStatus.PENDING, d.c.next_attempt_at <= self.now())
                .order_by(d.c.next_attempt_at)
                .limit(limit)
            ).all()
        return [str(uuid.UUID(str(row.id))) for row in rows]


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes sent and signed: the stored payload as compact JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _describe(exc: BaseException) -> str:
    """What the team reads in the log for an attempt that got no answer (no stack, no internals)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"Timed out: {exc}" if str(exc) else "Timed out."
    if isinstance(exc, http.client.HTTPException):
        return f"Not a valid HTTP answer ({type(exc).__name__})."
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {getattr(exc, 'reason', None) or type(exc).__name__}."
    return f"Connection failed ({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})."


def deliver(
    db: WebhookDB,
    delivery_id: str,
    config: WorkerConfig | None = None,
    post: Callable[..., tuple[int, str]] = webhook_net.post,
) -> str:
    """One attempt of one delivery, if it is due and this worker claims it; returns what happened."""
    config = config or worker_config()
    claimed = db.claim(delivery_id)
    if claimed is None:
        return "not due"
    if not claimed.enabled and claimed.event != WEBHOOK_TEST_EVENT:
        # Disabled after this delivery was queued: give it up without sending (nor counting it).
        db.record(claimed, None, "The webhook is disabled; not sent.", config)
        return DeliveryStatus.FAILED
    body = body_of(claimed.payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        HEADER_EVENT: claimed.event,
        HEADER_DELIVERY: str(uuid.UUID(str(claimed.id))),
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature(claimed.secret, timestamp, body),
    }
    allowed = webhook_net.Allowed.parse(config.webhook_allow_private_hosts, config.webhook_allow_http)
    status_code, error = None, ""
    try:
        target = webhook_net.resolve(claimed.url, allowed)  # again: the name may point elsewhere now
        status_code, excerpt = post(target, headers, body)
        if not 200 <= status_code < 300:
            kind = " (redirects are not followed)" if 300 <= status_code < 400 else ""
            error = f"HTTP {status_code}{kind}: {excerpt}".strip().rstrip(":")
    except webhook_net.UnsafeURL as exc:
        error = f"Refused: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        error = _describe(exc)
    outcome = db.record(claimed, status_code, error, config)
    log.info(
        "webhook delivery %s attempt %d: %s",
        delivery_id,
        claimed.attempts + 1,
        outcome,
        extra={"status_code": status_code, "webhook_event": claimed.event},
    )
    return str(outcome) if outcome else "lost claim"


def sweep(db: WebhookDB, send: Callable[[str], None]) -> list[str]:
    """Send every due delivery (each send's attempt claims the row, so a duplicate does nothing)."""
    ids = db.due()
    for delivery_id in ids:
        send(delivery_id)
    return ids


@cache
def default_webhook_db() -> WebhookDB:
    """The process's webhook tables, on the job database's connection pool."""
    from workers.jobdb import default_db

    return WebhookDB(default_db().engine)
