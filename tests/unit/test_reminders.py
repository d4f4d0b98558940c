"""campaign.reminders: which reminder is due, the policy's rules, and the tick that sends them."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import PolicyError
from reclaim.domain.records import LedgerOutcome
from reclaim.domain.reminders import due_reminder
from tests.conftest import NOW, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

DAY = timedelta(days=1)
DEADLINE = NOW + 7 * DAY
OFFSETS = (3 * DAY, DAY)


# ---- the domain rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (NOW, None),  # just asked
        (DEADLINE - 3 * DAY - timedelta(seconds=1), None),
        (DEADLINE - 3 * DAY, 1),
        (DEADLINE - 2 * DAY, 1),
        (DEADLINE - DAY, 2),
        (DEADLINE - timedelta(seconds=1), 2),
        (DEADLINE, None),  # the deadline has come: no reminder after it
        (DEADLINE + DAY, None),
    ],
)
def test_the_latest_reminder_whose_time_has_come_is_due(now, expected) -> None:
    due = due_reminder(OFFSETS, DEADLINE, now)
    assert (due.number if due else None) == expected
    if due is not None:
        assert due.deadline == DEADLINE and due.of == 2


def test_a_first_reminder_missed_while_the_tick_was_down_is_not_sent_late() -> None:
    # The tick was down from before reminder 1 until after reminder 2's time: only 2 is due.
    due = due_reminder(OFFSETS, DEADLINE, DEADLINE - timedelta(hours=12))
    assert due is not None and due.number == 2 and due.before == DAY


def test_offsets_are_numbered_in_time_whatever_their_order_and_no_deadline_means_none() -> None:
    due = due_reminder((DAY, 3 * DAY), DEADLINE, DEADLINE - 2 * DAY)
    assert due is not None and (due.number, due.before) == (1, 3 * DAY)
    assert due_reminder(OFFSETS, None, DEADLINE - DAY) is None
    assert due_reminder((), DEADLINE, DEADLINE - DAY) is None


# ---- validation ---------------------------------------------------------------------------------


def asking(reminders: object, respond_within: str = "7d"):
    return make_policy(
        mode="enforce",
        ask_permission=True,
        campaign={
            "channel": "webhook",
            "url": "https://survey.example/ask",
            "respond_within": respond_within,
            "reminders": reminders,
        },
    )


def test_reminders_are_read_as_offsets_in_time_order() -> None:
    assert asking(["1d", "3d"]).campaign.reminders == (3 * DAY, DAY)
    assert make_policy().campaign.reminders == ()


@pytest.mark.parametrize(
    ("reminders", "message"),
    [
        (["7d"], "campaign.reminders: 7d before the deadline is at or before the ask"),
        (["1d", "8d"], "8d before the deadline is at or before the ask (respond_within is 7d)"),
        (["0s"], "campaign.reminders: must be longer than 0s"),
        (["1d", "24h"], "campaign.reminders: 1d is listed more than once"),
        (["soon"], "campaign.reminders: expected a duration like 5m, got 'soon'"),
        ("3d", "campaign.reminders: expected a list of durations before the deadline"),
    ],
)
def test_unworkable_reminders_are_refused_with_what_to_fix(reminders, message) -> None:
    with pytest.raises(PolicyError) as refused:
        asking(reminders)
    assert message in str(refused.value)


def test_reminders_without_a_channel_are_refused() -> None:
    with pytest.raises(PolicyError, match="reminders go through the campaign's channel"):
        make_policy(campaign={"reminders": ["1d"]})


# ---- the expiry tick ----------------------------------------------------------------------------

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(3)]


@pytest.fixture
def asked(tmp_path: Path):
    """Three users asked at NOW (deadline NOW + 7d), reminders 3d and 1d before it."""
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    usage = MemoryUsage([UsageRow(u.upn, 1.0) for u in USERS], NOW)
    adapters = MemoryAdapters(directory, usage, MemoryCampaign())
    ids = (f"id-{n:03d}" for n in itertools.count())
    policy = asking(["3d", "1d"])
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        adapters,
        {policy.name: policy},
        new_id=lambda: next(ids),
    )
    usecases.run_policy(ctx, policy, NOW)
    assert len(ctx.store.requests(states=[RequestState.PENDING])) == 3
    return ctx, adapters.campaign_


def reminders_in_ledger(ctx, outcome=LedgerOutcome.REMINDED):
    return sorted(
        e.id.split(":", 1)[1] + " " + e.user.upn for e in ctx.store.ledger() if e.outcome is outcome
    )


def test_each_due_reminder_is_sent_once_and_never_moves_the_deadline(asked) -> None:
    ctx, campaign = asked
    deadlines = {r.id: r.deadline for r in ctx.store.requests()}
    assert usecases.expire_requests(ctx, DEADLINE - 4 * DAY).reminded == 0
    assert usecases.expire_requests(ctx, DEADLINE - 3 * DAY).reminded == 3
    # Overlapping or repeated ticks: the ledger entry is the claim, so nothing is sent again.
    assert usecases.expire_requests(ctx, DEADLINE - 3 * DAY).reminded == 0
    assert usecases.expire_requests(ctx, DEADLINE - 2 * DAY).reminded == 0
    assert usecases.expire_requests(ctx, DEADLINE - DAY).reminded == 3
    assert usecases.expire_requests(ctx, DEADLINE - timedelta(hours=1)).reminded == 0
    assert sorted(campaign.reminded) == sorted((r, n) for r in deadlines for n in (1, 2))
    assert {r.id: r.deadline for r in ctx.store.requests()} == deadlines
    assert reminders_in_ledger(ctx) == sorted(
        f"REMINDED:{n} {u.upn}" for u in USERS for n in (1, 2)
    )
    (entry,) = [e for e in ctx.store.ledger() if e.id == f"{ctx.store.requests()[0].id}:REMINDED:1"]
    assert entry.detail.startswith("reminder 1 of 2 (3d before the deadline 2026-12-05 06:00 UTC)")
    assert entry.detail.endswith("through webhook")


def test_who_answered_is_not_reminded(asked) -> None:
    ctx, campaign = asked
    first = min(ctx.store.requests(), key=lambda r: r.user.upn)
    yes = usecases.AnswerCommand(AnswerValue.YES, NOW, request_id=first.id)
    usecases.record_answer(ctx, yes, NOW)
    assert usecases.expire_requests(ctx, DEADLINE - DAY).reminded == 2
    assert first.id not in {r for r, _ in campaign.reminded}


def test_after_a_long_outage_only_the_latest_due_reminder_is_sent(asked) -> None:
    ctx, campaign = asked
    assert usecases.expire_requests(ctx, DEADLINE - timedelta(hours=20)).reminded == 3
    assert {n for _, n in campaign.reminded} == {2}
    assert usecases.expire_requests(ctx, DEADLINE + timedelta(minutes=1)).reminded == 0


def test_nothing_is_reminded_while_the_kill_switch_is_on(asked) -> None:
    ctx, campaign = asked
    ctx.kill_switch = True
    assert usecases.expire_requests(ctx, DEADLINE - 3 * DAY).reminded == 0
    assert campaign.reminded == [] and reminders_in_ledger(ctx) == []
    ctx.kill_switch = False
    assert usecases.expire_requests(ctx, DEADLINE - 2 * DAY).reminded == 3


def test_a_reminder_the_channel_refuses_is_recorded_and_not_retried(asked) -> None:
    ctx, campaign = asked
    campaign.refuse.add("u1@c.com")
    assert usecases.expire_requests(ctx, DEADLINE - 3 * DAY).reminded == 2
    assert usecases.expire_requests(ctx, DEADLINE - 3 * DAY + timedelta(hours=1)).reminded == 0
    assert reminders_in_ledger(ctx, LedgerOutcome.REMINDER_FAILED) == ["REMINDER_FAILED:1 u1@c.com"]
    (failed,) = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMINDER_FAILED]
    assert failed.detail == "reminder 1 of 2: no device seen for this user"


def test_a_channel_that_is_down_records_every_reminder_as_failed(asked) -> None:
    from reclaim.errors import TransientError

    ctx, campaign = asked

    def down(policy, reminders, now):
        raise TransientError("receiver answered HTTP 503 three times")

    campaign.remind = down  # type: ignore[method-assign]
    report = usecases.expire_requests(ctx, DEADLINE - DAY)
    assert report.reminded == 0 and report.errors == []
    failed = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMINDER_FAILED]
    assert len(failed) == 3
    assert all("not sent: receiver answered HTTP 503" in e.detail for e in failed)


def test_explain_shows_each_reminder_and_what_the_channel_said(asked, tmp_path: Path) -> None:
    import io

    import yaml

    from reclaim.cli import main

    ctx, campaign = asked
    campaign.refuse.add("u1@c.com")
    usecases.expire_requests(ctx, DEADLINE - 3 * DAY)
    usecases.expire_requests(ctx, DEADLINE - DAY)
    policy = {
        "name": "salesforce",
        "application": "Salesforce Lightning",
        "mode": "enforce",
        "directory": {"kind": "ad", "group": "SF"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "ask_permission": True,
        "campaign": {
            "channel": "webhook",
            "url": "https://survey.example/ask",
            "respond_within": "7d",
            "reminders": ["3d", "1d"],
        },
    }
    policies = tmp_path / "policies.yaml"
    policies.write_text(yaml.safe_dump({"policies": [policy]}))
    out, err = io.StringIO(), io.StringIO()
    argv = ["explain", "--policies", str(policies), "--policy", "salesforce", "--user", "u1@c.com"]
    env = {"RECLAIM_STATE_DB": str(tmp_path / "s.sqlite3")}
    assert main(argv, now=DEADLINE - DAY, env=env, out=out, err=err) == 0, err.getvalue()
    lines = [line for line in out.getvalue().splitlines() if "REMINDE" in line]
    assert [line.split("  ", 1)[1].split(":", 1)[0] for line in lines] == [
        "REMINDED",
        "REMINDER_FAILED",
        "REMINDED",
        "REMINDER_FAILED",
    ]
    assert (
        "reminder 2 of 2 (1d before the deadline 2026-12-05 06:00 UTC) through webhook" in lines[2]
    )
    assert "reminder 2 of 2: no device seen for this user" in lines[3]
