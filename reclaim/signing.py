"""HMAC-SHA256 signatures of webhook bodies, for the campaign answers we receive and the asks we
send. Pure: no I/O, the clock is passed in.

Headers: X-Reclaim-Timestamp (unix seconds) and X-Reclaim-Signature
("sha256=" + hex HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_body)). Signing the timestamp
with the body lets a receiver reject replays of an old, validly signed body.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from reclaim.errors import ReclaimError

TIMESTAMP_HEADER = "X-Reclaim-Timestamp"
SIGNATURE_HEADER = "X-Reclaim-Signature"
SIGNATURE_PREFIX = "sha256="


class SignatureError(ReclaimError):
    """The request is not signed as it must be; `reason` says how (never the expected value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Reclaim-Signature value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: datetime,
    tolerance: timedelta,
) -> None:
    """Return when the signature is right and the timestamp within `tolerance` of `now`;
    raise SignatureError with the reason otherwise."""
    if not secret:
        raise SignatureError("no signing secret is configured")
    timestamp = (timestamp_header or "").strip()
    if not timestamp:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    # Twelve digits reach the year 33658: a longer value is refused before any arithmetic.
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be whole unix seconds")
    skew = abs(now.timestamp() - int(timestamp))
    if skew > tolerance.total_seconds():
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {skew:.0f}s away from now "
            f"(at most {tolerance.total_seconds():.0f}s allowed): stale or replayed"
        )
    signature = (signature_header or "").strip()
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not signature.isascii() or not signature.lower().startswith(SIGNATURE_PREFIX):
        raise SignatureError(f"{SIGNATURE_HEADER} must start with {SIGNATURE_PREFIX}")
    received = SIGNATURE_PREFIX + signature[len(SIGNATURE_PREFIX) :].lower()
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(received.encode(), expected.encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")
