"""The usage data's age comes from the data's own clock, and a source must cover the members."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.files import CsvUsage
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain import guardrails
from reclaim.domain.model import Member, PolicyState, UsageRow, User
from reclaim.domain.policy import (
    DirectoryKind,
    DirectorySpec,
    Limits,
    MatchOn,
    Policy,
    UsageSourceKind,
    UsageSpec,
)
from reclaim.domain.selection import DecisionKind, index_usage, select
from tests.conftest import NOW, make_policy
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(20)]


def plan(policy: Policy, rows: list[UsageRow], tmp_path: Path, observed_at=NOW):
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    ids = (f"id-{n:03d}" for n in itertools.count())
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        MemoryAdapters(directory, MemoryUsage(rows, observed_at)),
        {policy.name: policy},
        new_id=lambda: next(ids),
    )
    return usecases.run_policy(ctx, policy, NOW, read_only=True)


def test_an_export_that_matches_5_percent_of_the_members_halts(tmp_path: Path) -> None:
    """Wrong match_on or column: one member of twenty matched, the rest would be UNKNOWN_USAGE."""
    rows = [UsageRow("u0@c.com", 1.0)] + [UsageRow(f"other{i}@c.com", 9.0) for i in range(50)]
    outcome = plan(make_policy(), rows, tmp_path)
    assert outcome.halt is not None and outcome.halt.check == "coverage"
    assert "1 of the group's 20 members (5.0%)" in outcome.halt.reason
    assert "usage.min_coverage 50%" in outcome.halt.reason


def test_coverage_at_the_minimum_runs_and_the_minimum_is_a_setting(tmp_path: Path) -> None:
    rows = [UsageRow(f"u{i}@c.com", 60.0) for i in range(10)]  # half the members
    assert plan(make_policy(), rows, tmp_path).halt is None
    strict = make_policy(usage={"min_coverage": 0.9})
    assert plan(strict, rows, tmp_path).halt.check == "coverage"
    lenient = make_policy(usage={"min_coverage": 0})
    assert plan(lenient, rows[:1], tmp_path).halt is None


def write_usage(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("upn,minutes,last_seen\n" + "".join(f"{u},{m},{t}\n" for u, m, t in rows))
    return path


CSV_POLICY = {
    "usage": {
        "user_column": "upn",
        "usage_column": "minutes",
        "timestamp_column": "last_seen",
        "max_age": "2d",
        "min_coverage": 0,
    }
}


def checked(policy: Policy, path: Path):
    export = CsvUsage(path).usage(policy, NOW)
    keys = {u.key(policy.usage.match_on) for u in USERS}
    usage = index_usage(export.rows, keys, export.observed_at, clock=export.clock)
    decisions = select([Member(u) for u in USERS], usage, PolicyState(), policy, NOW)
    return usage, guardrails.check(decisions, usage, policy, NOW, kill_switch=False)


def test_an_old_csv_export_copied_today_is_stale_by_its_own_clock(tmp_path: Path) -> None:
    """`cp` gives the file a fresh mtime; the newest row says the collectors stopped weeks ago."""
    weeks_ago = (NOW - timedelta(days=21)).isoformat()
    path = write_usage(tmp_path / "usage.csv", [("u0@c.com", "1", weeks_ago)])
    os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    usage, halt = checked(make_policy(**CSV_POLICY), path)
    assert usage.observed_at == NOW - timedelta(days=21)
    assert halt is not None and halt.check == "stale_usage"
    assert "21d old (newest last_seen in usage.csv)" in halt.reason


def test_without_a_timestamp_column_the_mtime_is_the_last_resort_and_says_so(
    tmp_path: Path,
) -> None:
    path = write_usage(tmp_path / "usage.csv", [("u0@c.com", "1", "")])
    old = (NOW - timedelta(days=5)).timestamp()
    os.utime(path, (old, old))
    policy = make_policy(usage={**CSV_POLICY["usage"], "timestamp_column": None})
    usage, halt = checked(policy, path)
    assert "modification time of usage.csv" in usage.clock and "a copy resets it" in usage.clock
    assert halt is not None and halt.check == "stale_usage"


def test_timestamps_without_an_offset_are_read_in_the_configured_time_zone(
    tmp_path: Path,
) -> None:
    # 05:00 in New York is 10:00 UTC, four hours after NOW: a wrong zone, not fresh data.
    local = (NOW + timedelta(hours=4)).replace(tzinfo=None) - timedelta(hours=5)
    path = write_usage(tmp_path / "usage.csv", [("u0@c.com", "1", local.isoformat())])
    policy = make_policy(usage={**CSV_POLICY["usage"], "timezone": "America/New_York"})
    usage, halt = checked(policy, path)
    assert usage.observed_at == NOW + timedelta(hours=4)
    assert halt is not None and "in the future: check usage.timezone" in halt.reason
    in_utc = make_policy(**CSV_POLICY)
    usage, halt = checked(in_utc, path)
    assert usage.observed_at == NOW - timedelta(hours=1) and halt is None


def test_an_export_whose_timestamp_cells_are_all_empty_has_no_age(tmp_path: Path) -> None:
    path = write_usage(tmp_path / "usage.csv", [("u0@c.com", "1", "")])
    _, halt = checked(make_policy(**CSV_POLICY), path)
    assert halt is not None and halt.check == "stale_usage" and "age is unknown" in halt.reason


def signins_policy(days: int = 30) -> Policy:
    return Policy(
        name="sf",
        application="Salesforce",
        directory=DirectorySpec(kind=DirectoryKind.ENTRA, group="g"),
        usage=UsageSpec(
            source=UsageSourceKind.ENTRA_SIGNINS,
            app_id="2a5b6c7d-0000-4000-8000-00000000a99e",
            lookback=timedelta(days=days),
            threshold=1.0,
            match_on=MatchOn.UPN,
        ),
        limits=Limits(max_removals_per_run=50, max_percent_of_group=100),
    )


def test_a_member_absent_from_an_authoritative_log_is_zero_use() -> None:
    policy = signins_policy()
    members = [Member(u) for u in USERS[:3]]
    rows = [UsageRow("u0@c.com", 1.0, at=NOW - timedelta(hours=3))]
    usage = index_usage(
        rows, {m.user.upn for m in members}, None, authoritative=True, clock="newest sign-in"
    )
    decisions = select(members, usage, PolicyState(), policy, NOW)
    assert [d.kind for d in decisions] == [
        DecisionKind.ACTIVE,
        DecisionKind.CANDIDATE,
        DecisionKind.CANDIDATE,
    ]
    assert decisions[1].evidence.used == 0.0
    # 1 of 3 members signed in: a log of every sign-in needs no share of members
    assert guardrails.check(decisions, usage, policy, NOW, kill_switch=False) is None


def test_an_authoritative_log_must_reach_back_over_the_whole_lookback() -> None:
    policy = signins_policy(days=90)  # built around validation, which refuses it
    rows = [UsageRow("u0@c.com", 1.0, at=NOW)]
    usage = index_usage(rows, {"u0@c.com"}, None, authoritative=True)
    decisions = select([Member(USERS[0])], usage, PolicyState(), policy, NOW)
    halt = guardrails.check(decisions, usage, policy, NOW, kill_switch=False)
    assert halt is not None and halt.check == "coverage" and "keeps (30d)" in halt.reason


@pytest.mark.parametrize("days", [29, 30])
def test_the_sign_in_log_default_window_is_its_retention(days: int) -> None:
    policy = make_policy(
        usage={
            "source": "entra-signins",
            "app_id": "2a5b6c7d-0000-4000-8000-00000000a99e",
            "file": None,
            "threshold": 1,
            "lookback": f"{days}d",
        }
    )
    assert policy.usage.lookback == timedelta(days=days)
    default = make_policy(
        usage={
            "source": "entra-signins",
            "app_id": "2a5b6c7d-0000-4000-8000-00000000a99e",
            "file": None,
            "threshold": 1,
        }
    )
    assert default.usage.lookback == timedelta(days=30)
