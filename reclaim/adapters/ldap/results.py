"""What the DC answers, read: result codes, the server's message, search entries and the Users in
them, and the user filter and attribute lists that reads and writes share."""

from __future__ import annotations

import uuid
from typing import Any

from ldap3 import Connection
from ldap3.protocol.formatters.formatters import format_sid

from reclaim.domain.model import User

# LDAP result codes (RFC 4511) this adapter tells apart.
SUCCESS = 0
TIME_LIMIT_EXCEEDED = 3
SIZE_LIMIT_EXCEEDED = 4
STRONGER_AUTH_REQUIRED = 8
REFERRAL = 10
NO_SUCH_ATTRIBUTE = 16
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS_RIGHTS = 50
BUSY = 51
UNAVAILABLE = 52
UNWILLING_TO_PERFORM = 53
ENTRY_ALREADY_EXISTS = 68

# Users only: computers are users too in AD's schema; groups and contacts are not users.
USER_FILTER = "(objectClass=user)(!(objectClass=computer))"
MEMBER_ATTRIBUTES = [
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "objectSid",
    "objectGUID",
    "displayName",
]
NO_ATTRIBUTES = ["1.1"]  # RFC 4511: return no attributes, only the DN


def _server_says(result: dict[str, Any] | None) -> str:
    """The server's answer in a message: name, code and its own text (never a secret)."""
    result = result or {}
    said = f"{result.get('description', 'no answer')} ({result.get('result')})"
    message = str(result.get("message") or "").strip()
    return f"{said}: {message}" if message else said


def _entries(conn: Connection) -> list[dict[str, Any]]:
    """Search result entries, without the continuation references AD adds at a domain root."""
    return [item for item in conn.response or [] if item.get("type") == "searchResEntry"]


def _text(entry: dict[str, Any], name: str) -> str:
    values = entry["raw_attributes"].get(name) or []
    return values[0].decode("utf-8") if values else ""


def _user(entry: dict[str, Any]) -> User:
    sid = entry["raw_attributes"].get("objectSid") or []
    guid = entry["raw_attributes"].get("objectGUID") or []
    return User(
        # objectGUID is stored little-endian; AD tools show it in this (uuid) form.
        object_id=str(uuid.UUID(bytes_le=guid[0])) if guid else "",
        upn=_text(entry, "userPrincipalName"),
        mail=_text(entry, "mail"),
        sam_account_name=_text(entry, "sAMAccountName"),
        sid=format_sid(sid[0]) if sid else "",
        display_name=_text(entry, "displayName"),
    )
