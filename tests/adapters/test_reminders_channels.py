"""Reminders through the real channels: the expiry tick with the webhook channel against its
signing test receiver, and the Nexthink channel re-triggering the campaign on the HTTPS fake."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import policies_from_data
from reclaim.domain.records import LedgerOutcome
from reclaim.domain.reminders import due_reminder
from tests.adapters.test_nexthink_campaign import TRIGGER, campaign, request
from tests.adapters.test_webhook_channel import Receiver, channel
from tests.fakes.nexthink import FakeNexthink
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

NOW = datetime.now(UTC).replace(microsecond=0)  # the receiver checks signatures against its clock
DAY = timedelta(days=1)
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(2)]


def webhook_policy(url: str):
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "mode": "enforce",
        "directory": {"kind": "ad", "group": "SF"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "limits": {"max_removals_per_run": 100, "max_percent_of_group": 100},
        "ask_permission": True,
        "campaign": {
            "channel": "webhook",
            "url": url,
            "respond_within": "7d",
            "reminders": ["3d", "1d"],
        },
    }
    return policies_from_data({"policies": [data]})[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_the_tick_posts_one_signed_reminder_event_per_unanswered_request(
    receiver: Receiver, tmp_path: Path
) -> None:
    policy = webhook_policy(receiver.url)
    adapters = MemoryAdapters(
        MemoryDirectory({"SF": [Member(u) for u in USERS]}),
        MemoryUsage([UsageRow(u.upn, 1.0) for u in USERS], NOW),
        channel(receiver),  # type: ignore[arg-type]
    )
    ids = (f"req-{n}" for n in itertools.count())
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        adapters,
        {policy.name: policy},
        new_id=lambda: next(ids),
    )
    usecases.run_policy(ctx, policy, NOW)
    asks = list(receiver.received)
    assert [a["event"] for a in asks] == ["ask", "ask"]
    answered, silent = sorted(ctx.store.requests(), key=lambda r: r.user.upn)
    usecases.record_answer(
        ctx, usecases.AnswerCommand(AnswerValue.YES, NOW, request_id=answered.id), NOW
    )

    deadline = silent.deadline
    assert deadline is not None
    report = usecases.expire_requests(ctx, deadline - DAY)  # both times passed: only the latest
    assert report.reminded == 1 and report.errors == []
    assert usecases.expire_requests(ctx, deadline - timedelta(hours=2)).reminded == 0

    assert receiver.refused == []  # signed like the ask, with the shared secret
    (reminder,) = receiver.received[len(asks) :]
    (ask,) = [a for a in asks if a["request_id"] == silent.id]
    assert reminder == {
        **ask,
        "event": "reminder",
        "reminder": {"number": 2, "of": 2, "before": "1d"},
    }
    assert reminder["respond_by"] == deadline.isoformat()  # the deadline does not move
    assert receiver.headers[-1]["X-Reclaim-Request-Id"] == silent.id
    assert ctx.store.get_request(silent.id).deadline == deadline
    assert ctx.store.get_request(silent.id).state is RequestState.PENDING
    (entry,) = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMINDED]
    assert entry.id == f"{silent.id}:REMINDED:2"


def test_a_reminder_the_receiver_refuses_is_recorded_with_its_reason(
    receiver: Receiver, tmp_path: Path
) -> None:
    policy = webhook_policy(receiver.url)
    adapters = MemoryAdapters(
        MemoryDirectory({"SF": [Member(USERS[0])]}),
        MemoryUsage([UsageRow(USERS[0].upn, 1.0)], NOW),
        channel(receiver),  # type: ignore[arg-type]
    )
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"), MemoryQueue(), adapters, {policy.name: policy}
    )
    usecases.run_policy(ctx, policy, NOW)
    (pending,) = ctx.store.requests()
    receiver.status_for[pending.id] = (410, "user left the company")
    assert usecases.expire_requests(ctx, pending.deadline - 3 * DAY).reminded == 0
    (failed,) = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMINDER_FAILED]
    assert failed.detail == "reminder 1 of 2: receiver answered HTTP 410: user left the company"


# ---- Nexthink: the campaign triggered again for the user's SID ------------------------------


@pytest.fixture
def nx() -> Iterator[FakeNexthink]:
    with FakeNexthink() as fake:
        yield fake


def test_a_nexthink_reminder_triggers_the_campaign_again_until_the_deadline(
    nx: FakeNexthink,
) -> None:
    from tests.adapters.test_nexthink_campaign import T0, policy

    channel_ = campaign(nx)
    first = request("r1", "S-1-5-21-1")
    asked = channel_.ask(policy(), [first])
    deadline = first.deadline
    assert deadline is not None
    now = deadline - DAY - timedelta(minutes=30)
    due = due_reminder((3 * DAY, DAY), deadline, now)
    assert due is not None
    reminded = channel_.remind(policy(), [(first, due), (request("r2", ""), due)], now)
    assert set(reminded.asked) == {"r1"} and reminded.not_asked == {"r2": "no SID known"}
    assert reminded.asked["r1"] != asked.asked["r1"]  # Nexthink creates a second request
    assert nx.bodies[TRIGGER][-1]["userSid"] == ["S-1-5-21-1"]
    assert nx.bodies[TRIGGER][-1]["expiresInMinutes"] == 24 * 60 + 30  # until the deadline
    # Whichever of the two she answers, the answer is read by her SID.
    nx.answer(reminded.asked["r1"], "yes", T0 + 6 * DAY)
    (answer,) = channel_.answers(policy(), T0)
    assert (answer.user, answer.value) == ("S-1-5-21-1", AnswerValue.YES)
