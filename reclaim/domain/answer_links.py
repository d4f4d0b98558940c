"""Per-request signed links: the one-click answer, the approver's decision and the appeal.

A link is `<payload>.<mac>`, both base64url without padding: the payload is compact JSON naming
the request, its policy, the person the link was sent to, what the link is for and when it
expires; the mac is HMAC-SHA256 over a version prefix and the payload. Whoever holds the link may
act on it until it expires (that is what a one-click link is), so it names exactly one request and
one recipient, and the page behind it re-checks the request's own deadline. The key is a secret
(RECLAIM_LINK_SECRET_NAME); rotating it voids every link sent before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

# Mail clients and chat cards wrap or truncate very long URLs; a link is far below this.
MAX_TOKEN_LENGTH = 1024
MIN_KEY_BYTES = 32
_VERSION = b"reclaim-link-v1."
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# Ids and recipients come from reclaim itself; the limits only stop a crafted payload.
_MAX_FIELD = 512


class LinkPurpose(StrEnum):
    ANSWER = "answer"  # the user keeps or releases her licence (also from a reminder or notice)
    APPROVE = "approve"  # her approver keeps or releases it
    APPEAL = "appeal"  # after the removal: give it back without an admin


@dataclass(frozen=True, slots=True)
class SignedLink:
    request_id: str
    policy: str
    recipient: str  # the UPN or address the link was sent to: the identity that acts on it
    purpose: LinkPurpose
    expires_at: datetime


class LinkRefused(ValueError):
    """The token is not a link reclaim signed, or no longer valid; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign_link(link: SignedLink, key: bytes) -> str:
    """The token for `link`; `key` is the link secret's bytes (at least 32)."""
    _check_key(key)
    for value in (link.request_id, link.policy, link.recipient):
        if not value or len(value) > _MAX_FIELD:
            raise ValueError(
                "a link names a request, a policy and a recipient of at most 512 chars"
            )
    body = {
        "r": link.request_id,
        "p": link.policy,
        "u": link.recipient,
        "k": link.purpose.value,
        "e": int(link.expires_at.timestamp()),
    }
    payload = _encode(json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode())
    return f"{payload}.{_encode(_mac(key, payload))}"


def read_link(token: str, key: bytes, now: datetime) -> SignedLink:
    """The link `token` stands for, or LinkRefused saying why (malformed, altered, expired)."""
    _check_key(key)
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        raise LinkRefused("this link is incomplete or malformed: open it from the message again")
    payload, mac = token.split(".")
    try:
        given = _decode(mac)
    except (binascii.Error, ValueError):
        raise LinkRefused(
            "this link is incomplete or malformed: open it from the message again"
        ) from None
    if not hmac.compare_digest(given, _mac(key, payload)):
        raise LinkRefused("this link is not valid: it was altered or reclaim's key has changed")
    link = _parse(payload)
    if now >= link.expires_at:
        raise LinkRefused(f"this link expired on {link.expires_at:%Y-%m-%d %H:%M} UTC")
    return link


def _parse(payload: str) -> SignedLink:
    # Signed by us, so a failure here means a key shared with something else: refuse, never crash.
    try:
        body = json.loads(_decode(payload))
        purpose = LinkPurpose(body["k"])
        expires = datetime.fromtimestamp(int(body["e"]), tz=UTC)
        fields = [body["r"], body["p"], body["u"]]
    except (ValueError, KeyError, TypeError, OverflowError, OSError, binascii.Error):
        raise LinkRefused("this link is not valid: its content cannot be read") from None
    if not all(isinstance(value, str) and 0 < len(value) <= _MAX_FIELD for value in fields):
        raise LinkRefused("this link is not valid: its content cannot be read")
    return SignedLink(fields[0], fields[1], fields[2], purpose, expires)


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the link secret must be at least {MIN_KEY_BYTES} bytes")


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, _VERSION + payload.encode("ascii"), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The answer page's route under the function app's /api prefix (reclaim/functions/answer_page.py).
ANSWER_PAGE_ROUTE = "answer"


def link_url(public_url: str, token: str) -> str:
    """The address a person opens: RECLAIM_PUBLIC_URL's answer page with the token."""
    return f"{public_url.rstrip('/')}/api/{ANSWER_PAGE_ROUTE}?t={token}"
