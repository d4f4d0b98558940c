"""Durations written the way administrators write them: 90s, 5m, 2h, 90d, 1h30m."""

from __future__ import annotations

import functools
import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$")


def parse_duration(text: str) -> timedelta:
    """Parse "5m", "90d" or "1h30m"; raise ValueError for anything else."""
    if not isinstance(text, str) or not _WHOLE.match(text.lower()):
        raise ValueError(f"expected a duration like 5m, got {text!r}")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text.lower()))
    return timedelta(seconds=seconds)


@functools.lru_cache(maxsize=256)  # called once per member with the policy's few durations
def format_duration(value: timedelta) -> str:
    """The shortest exact form: 90d, 5m, 1h30m, 0s."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_minutes(minutes: float) -> str:
    """Minutes of use as a person reads them: 0m, 4m 30s, 2h 5m."""
    total = round(minutes * 60)
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    if secs and mins < 10:
        return f"{mins}m {secs}s" if mins else f"{secs}s"
    return f"{mins}m"
