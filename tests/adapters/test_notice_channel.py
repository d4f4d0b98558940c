"""policy.notice through the real webhook channel: the expiry tick posts a signed `notice` event
carrying the removal date to the signing test receiver; a refused delivery is recorded and sent
again by a later tick, with its date counted from that delivery."""

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
from tests.adapters.test_webhook_channel import Receiver, channel
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

NOW = datetime.now(UTC).replace(microsecond=0)  # the receiver checks signatures against its clock
DAY = timedelta(days=1)
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(2)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_the_tick_posts_a_signed_notice_event_with_the_removal_date(
    receiver: Receiver, tmp_path: Path
) -> None:
    data = {
        "name": "visio",
        "application": "Microsoft Visio",
        "mode": "enforce",
        "directory": {"kind": "ad", "group": "SF"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "limits": {"max_removals_per_run": 100, "max_percent_of_group": 100},
        "ask_permission": True,
        "campaign": {"channel": "webhook", "url": receiver.url, "respond_within": "7d"},
        "notice": {"period": "3d"},
    }
    policy = policies_from_data({"policies": [data]})[0]
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
    for request in ctx.store.requests():
        command = usecases.AnswerCommand(AnswerValue.NO, NOW, request_id=request.id)
        usecases.record_answer(ctx, command, NOW)
    told, refused = sorted(ctx.store.requests(), key=lambda r: r.user.upn)
    receiver.status_for[refused.id] = (410, "mailbox gone")

    assert usecases.expire_requests(ctx, NOW).noticed == 1
    assert receiver.refused == []  # signed like the ask, with the shared secret
    notice, refusal = receiver.received[len(asks) :]
    assert (refusal["request_id"], refusal["event"]) == (refused.id, "notice")
    (ask,) = [a for a in asks if a["request_id"] == told.id]
    remove_after = (NOW + 3 * DAY).isoformat()
    assert notice == {
        **ask,
        "event": "notice",
        "respond_by": remove_after,
        "answers": ["yes"],
        "notice": {
            "remove_after": remove_after,
            "period": "3d",
            "text": (
                f"Your Microsoft Visio licence will be removed on or after "
                f"{NOW + 3 * DAY:%Y-%m-%d %H:%M} UTC, because it was decided that you no longer "
                "need it. If you still need Microsoft Visio, answer yes before then and you keep it."
            ),
        },
    }
    assert ctx.store.get_request(told.id).not_before == NOW + 3 * DAY
    (failed,) = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.NOTICE_FAILED]
    assert failed.detail == "receiver answered HTTP 410: mailbox gone"
    waiting = ctx.store.get_request(refused.id)
    assert (waiting.state, waiting.not_before) == (RequestState.NOTICE, None)

    # A later tick delivers it: its date counts from then, not from the refused attempt.
    del receiver.status_for[refused.id]
    later = NOW + timedelta(hours=5)
    assert usecases.expire_requests(ctx, later).noticed == 1
    assert receiver.received[-1]["notice"]["remove_after"] == (later + 3 * DAY).isoformat()
    assert ctx.store.get_request(refused.id).not_before == later + 3 * DAY
