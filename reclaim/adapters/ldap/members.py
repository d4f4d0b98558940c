"""Active Directory membership evidence: join dates from msDS-ReplValueMetaData, nesting filters,
and whether each member's account is still usable (userAccountControl, accountExpires).

Windows AD keeps replication metadata per value of a linked attribute (linked-value replication,
forest level 2003 and later). Read without `;binary`, `msDS-ReplValueMetaData` is one small XML
document per value of the group's `member` (and of other linked attributes):

    <DS_REPL_VALUE_META_DATA>
      <pszAttributeName>member</pszAttributeName>
      <pszObjectDn>CN=Ada Lovelace,OU=Staff,DC=contoso,DC=com</pszObjectDn>
      ...
      <ftimeDeleted>1601-01-01T00:00:00Z</ftimeDeleted>
      <ftimeCreated>2026-11-30T08:12:45Z</ftimeCreated>
      ...
    </DS_REPL_VALUE_META_DATA>

`ftimeCreated` is when the member was added. A value removed since keeps its metadata with an
`ftimeDeleted` after 1601 (not a member any more); a value from before linked-value replication
has `ftimeCreated` 1601-01-01 (date unknown). Samba 4.17 returns no values at all (ENVIRONMENT.md):
every member's join date is then unknown, and selection follows the baseline rule.

The values are read by regular expression rather than an XML parser: the format is fixed and flat,
and nothing in it needs entities beyond the five XML escapes a DN can contain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import unescape

from reclaim.domain.model import Account

VALUE_METADATA = "msDS-ReplValueMetaData"
JOINED_FROM = "msDS-ReplValueMetaData ftimeCreated"
# LDAP_MATCHING_RULE_IN_CHAIN: memberOf at any depth, evaluated by the DC (cycles included).
IN_CHAIN_MEMBER_OF = "memberOf:1.2.840.113556.1.4.1941:="

_NEVER = datetime(1601, 1, 1, tzinfo=UTC)  # FILETIME zero: "no such time"
ACCOUNT_ATTRIBUTES = ["userAccountControl", "accountExpires"]
ACCOUNTDISABLE = 0x2  # the userAccountControl bit of a disabled account (MS-ADTS 2.2.16)
_NO_EXPIRY = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires "never" (both spellings AD uses)
UNREAD_CONTROL = (
    "userAccountControl not returned: the bind account may not read it (a default AD user can)"
)
_FIELD = re.compile(r"<(pszAttributeName|pszObjectDn|ftimeDeleted|ftimeCreated)>([^<]*)</\1>")


def metadata_values(raw_attributes: Mapping[str, Any]) -> list[bytes]:
    """The attribute's values, also when ldap3 names it with a range (`...;range=0-*`)."""
    prefix = VALUE_METADATA.lower()
    return [
        value
        for name, values in raw_attributes.items()
        if name.lower().split(";")[0] == prefix
        for value in values or []
    ]


def join_dates(values: Iterable[bytes | str]) -> dict[str, datetime]:
    """Lower-cased member DN -> when it was added, for the current values of `member` whose
    creation time is known."""
    joined: dict[str, datetime] = {}
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        fields = {name: unescape(raw.strip()) for name, raw in _FIELD.findall(text)}
        if fields.get("pszAttributeName", "").lower() != "member":
            continue
        deleted = _time(fields.get("ftimeDeleted", ""))
        created = _time(fields.get("ftimeCreated", ""))
        dn = fields.get("pszObjectDn", "")
        if not dn or created is None or deleted is not None:
            continue  # a removed value, or one that predates linked-value replication
        joined[dn.lower()] = created
    return joined


def _time(text: str) -> datetime | None:
    """An ftime as AD writes it (ISO 8601, UTC); None for 1601-01-01 or anything unreadable."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None if parsed <= _NEVER else parsed


def account_from(raw_attributes: Mapping[str, Any]) -> Account:
    """Disabled when userAccountControl has ACCOUNTDISABLE; its leave date is accountExpires (the
    end of the last day the account may sign in), when one is set. Unreadable: unknown, not
    enabled."""
    control = _integer(raw_attributes.get("userAccountControl"))
    expires = _integer(raw_attributes.get("accountExpires"))
    left_at = None
    if expires is not None and expires not in _NO_EXPIRY:
        left_at = _NEVER + timedelta(microseconds=expires // 10)  # FILETIME: 100 ns since 1601
    if control is None:
        return Account(left_at=left_at, leave_source="AD accountExpires", unread=UNREAD_CONTROL)
    disabled = bool(control & ACCOUNTDISABLE)
    return Account(
        enabled=not disabled,
        left_at=left_at,
        source=f"AD userAccountControl 0x{control:X}: ACCOUNTDISABLE" if disabled else "",
        leave_source="AD accountExpires",
    )


def _integer(values: Any) -> int | None:
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None
