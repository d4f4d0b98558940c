"""Which due time a policy's schedule gives (pure), and the first-sight rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reclaim.scheduling import due_time, latest_due

MONDAYS = "0 0 6 * * 1"  # NCRONTAB: seconds first
MONDAY = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def test_latest_due_includes_now_exactly() -> None:
    assert latest_due(MONDAYS, MONDAY) == MONDAY
    assert latest_due(MONDAYS, MONDAY - timedelta(microseconds=1)) == MONDAY - timedelta(days=7)


def test_latest_due_reads_the_schedule_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert latest_due(MONDAYS, MONDAY.astimezone(tokyo)) == MONDAY
    assert latest_due("*/10 * * * * *", datetime(2026, 11, 30, 6, 0, 25, 500, tzinfo=UTC)) == (
        datetime(2026, 11, 30, 6, 0, 20, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("last_due", "now", "expected"),
    [
        (None, MONDAY + timedelta(days=2), MONDAY),  # first sight: the most recent due time
        (MONDAY, MONDAY + timedelta(days=2), None),  # ran this week already
        (MONDAY, MONDAY + timedelta(days=7), MONDAY + timedelta(days=7)),  # due to the second
        (MONDAY, MONDAY + timedelta(days=7, seconds=-1), None),  # a second early
        (MONDAY, MONDAY + timedelta(days=30), MONDAY + timedelta(days=28)),  # missed 4: one run
    ],
)
def test_due_time(last_due: datetime | None, now: datetime, expected: datetime | None) -> None:
    assert due_time(MONDAYS, last_due, now) == expected
