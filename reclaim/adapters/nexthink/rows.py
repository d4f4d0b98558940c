"""Reading Nexthink's answers: JSON bodies, texts, the columns a query returns, and times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import requests

from reclaim.errors import SourceError


def json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def require_columns(row: Mapping[str, Any], wanted: Sequence[str], what: str) -> None:
    missing = [column for column in wanted if column not in row]
    if missing:
        raise SourceError(
            f"{what}: column(s) {', '.join(repr(c) for c in missing)} not in the result; "
            f"columns there: {', '.join(repr(c) for c in row) or 'none'}"
        )


def parse_time(value: str, what: str, zone: tzinfo = UTC) -> datetime:
    """An NQL timestamp (ISO 8601); one written without an offset is read in `zone`."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SourceError(f"{what}: {value!r} is not a date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
