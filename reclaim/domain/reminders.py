"""Reminders before a campaign's deadline: which one is due at `now`.

The policy lists offsets before the deadline (campaign.reminders, e.g. [3d, 1d]); reminder n is
the n-th in time, so the largest offset is reminder 1. Only the latest reminder whose time has
come is due: one whose time passed while the tick was down is not sent late once a later one's
time has come too. A reminder never moves the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from reclaim.domain.durations import format_duration


@dataclass(frozen=True)
class DueReminder:
    number: int  # 1 for the first in time
    of: int  # how many the policy sends
    before: timedelta  # its offset before the deadline
    deadline: datetime

    def describe(self) -> str:
        return (
            f"reminder {self.number} of {self.of} ({format_duration(self.before)} before the "
            f"deadline {self.deadline:%Y-%m-%d %H:%M} UTC)"
        )


def in_time_order(offsets: Sequence[timedelta]) -> tuple[timedelta, ...]:
    """Offsets before the deadline, the earliest reminder (largest offset) first."""
    return tuple(sorted(offsets, reverse=True))


def due_reminder(
    offsets: Sequence[timedelta], deadline: datetime | None, now: datetime
) -> DueReminder | None:
    """The latest reminder whose time has come by `now`, or None (none yet, or the deadline has
    passed, or the request has no deadline). Whether it was sent already is the ledger's to say."""
    if deadline is None or now >= deadline:
        return None
    ordered = in_time_order(offsets)
    due = None
    for number, before in enumerate(ordered, start=1):
        if deadline - before <= now:
            due = DueReminder(number, len(ordered), before, deadline)
    return due
