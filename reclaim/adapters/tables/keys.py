"""Keys and property values of the Table storage store (reclaim.adapters.tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from reclaim.adapters.rows import edm_time

TRANSACTION_LIMIT = 100  # operations per entity-group transaction
MAX_TEXT = 30_000  # a string property holds at most 64 KiB (32K UTF-16 characters)
_KEY_SAFE = "@:._-"


def key(value: str) -> str:
    """A value as a Table key: letters, digits and @:._- stay, everything else is %XX.
    '!', '|' and '~' are therefore free to mark the store's own partitions and separators."""
    return quote(value, safe=_KEY_SAFE)


def after(prefix: str) -> str:
    """The smallest key above every key starting with `prefix` + '|' ('}' follows '|')."""
    return prefix + "}"


def prefix_range(prefix: str) -> dict[str, str]:
    """Query parameters lo/hi for the RowKeys that start with `prefix` (which ends in '|')."""
    return {"lo": prefix, "hi": after(prefix[:-1])}


def text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def dt(value: Any) -> datetime | None:
    """A stored Edm.DateTime as a plain timezone-aware datetime (or None when absent)."""
    return None if value is None else edm_time(value)
