"""How a Softserve webhook delivery is signed, and how a receiver checks it. Standard library only: copy
this file into a receiver as it is (docs/webhooks.md).

Every delivery is a POST whose body is the event as JSON, with these headers:

    Softserve-Event: version.ready
    Softserve-Delivery: <the delivery's id; the same on every retry of that delivery>
    Softserve-Timestamp: <unix seconds when this attempt was signed>
    Softserve-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the hook's secret>

The timestamp is inside the signed text, so a receiver that checks the signature and refuses timestamps
older than REPLAY_WINDOW_S (5 minutes) cannot be fed a recorded delivery again later; a receiver that
must be strictly once-only also remembers the delivery ids it has processed within that window.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_VERSION = "v1"
REPLAY_WINDOW_S = 300
HEADER_EVENT = "Softserve-Event"
HEADER_DELIVERY = "Softserve-Delivery"
HEADER_TIMESTAMP = "Softserve-Timestamp"
HEADER_SIGNATURE = "Softserve-Signature"


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The Softserve-Signature value of `body` sent at `timestamp`: "v1=<hex>"."""
    signed = str(int(timestamp)).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature_header: str,
    now: float | None = None,
    tolerance_s: float = REPLAY_WINDOW_S,
) -> bool:
    """True when `signature_header` (one or more comma-separated "v1=<hex>") signs `body` at `timestamp`
    with `secret`, and `timestamp` is within `tolerance_s` of `now` (default: this machine's clock).

    Compare in constant time; a timestamp that is not a whole number, too old or too far in the future
    (clock skew beyond the tolerance) fails."""
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - sent) > tolerance_s:
        return False
    expected = signature(secret, sent, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature_header.split(","))
