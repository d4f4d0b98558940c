"""The policy key `notice`: warn the user of the removal date before a decided removal happens.

    notice: {period: 3d}

Once a removal is decided (a "no", silence past the deadline under on_no_response: reclaim, or
an approver's release), the user is told the date through the campaign's channel, and nothing is
removed before that date; a "yes" until then keeps the licence. Read here, not in reading.py,
which calls read_notice with the few facts it needs (so this module does not import it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from reclaim.domain.durations import format_duration, parse_duration

# Campaign channels that can tell a user a date. Nexthink's campaign asks its one question and
# has no field for a date; `none` reaches no one. A new channel that can carry the notice (its
# adapter implements ports.NoticeChannel) adds its name here.
NOTICE_CHANNELS = frozenset({"webhook", "email", "teams"})
# Shorter than this is no notice: the expiry tick runs every few minutes, people read mail daily.
MIN_PERIOD = timedelta(hours=1)
_KEYS = frozenset({"period"})


@dataclass(frozen=True)
class NoticeSpec:
    period: timedelta  # from the notice's delivery to the earliest removal


def read_notice(
    value: Any, path: str, problems: list[str], *, asking: bool, channel: str
) -> NoticeSpec | None:
    """The policy's notice (None when it has none); each problem is appended with its path."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(
            f"{path}: expected a mapping like {{period: 3d}}, got {type(value).__name__}"
        )
        return None
    problems.extend(f"{path}.{key}: unknown key" for key in value if key not in _KEYS)
    if not asking:
        problems.append(
            f"{path}: a notice is told through the campaign: it needs ask_permission: true"
        )
    elif channel not in NOTICE_CHANNELS:
        *others, last = sorted(NOTICE_CHANNELS)
        problems.append(
            f"{path}: campaign channel {channel} cannot tell a user the removal date: use "
            f"{', '.join(others)} or {last}"
        )
    raw = value.get("period")
    if raw is None:
        problems.append(f"{path}.period: is required (a duration like 3d)")
        return None
    try:
        period = parse_duration(raw)
    except ValueError as error:
        problems.append(f"{path}.period: {error}")
        return None
    if period < MIN_PERIOD:
        problems.append(
            f"{path}.period: {format_duration(period)} gives no time to answer: use at least "
            f"{format_duration(MIN_PERIOD)}"
        )
        return None
    return NoticeSpec(period)
