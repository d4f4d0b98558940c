"""tell_removed over the SQLite store: after a removal on an email / Teams policy with
appeal_within, the user gets one removal message with the appeal link (REMOVAL_SENT), once even
when the worker gets the removal twice; a channel that refuses is recorded (REMOVAL_SEND_FAILED)
and the removal stands; a policy without appeals sends nothing."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.answer_links import LinkPurpose
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.messages import Message, MessageKind
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.ports import AskResult
from tests.conftest import NOW, make_policy
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

USER = User(object_id="id0", upn="ada@c.com", mail="ada.lovelace@c.com")


class Mailbox:
    """A personal channel (email, Teams) as the use cases see it; `refuse` says no to all."""

    def __init__(self, refuse: str = "") -> None:
        self.sent: list[Message] = []
        self.refuse = refuse

    def send(self, outgoing: Sequence[Message]) -> AskResult:
        self.sent.extend(outgoing)
        if self.refuse:
            return AskResult(not_asked={m.request_id: self.refuse for m in outgoing})
        return AskResult(asked={m.request_id: "sent" for m in outgoing})

    def ask(self, policy: Policy, requests: Any) -> AskResult:
        return AskResult(asked={r.id: "sent" for r in requests})


def removed(tmp_path: Path, channel: Mailbox, **policy: Any) -> tuple[Any, MemoryQueue, str]:
    """Ada said no; the tick released it and the worker removed her (the queue kept a copy)."""
    chosen = make_policy(
        mode="enforce",
        ask_permission=True,
        campaign={"channel": "email", "respond_within": "7d"},
        **policy,
    )
    queue = MemoryQueue()
    ids = (f"id-{n:03d}" for n in itertools.count())
    adapters = MemoryAdapters(
        MemoryDirectory({"SF": [Member(USER)]}), MemoryUsage([UsageRow(USER.upn, 1.0)], NOW)
    )
    adapters.campaign_ = channel
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        queue,
        adapters,
        {chosen.name: chosen},
        new_id=lambda: next(ids),
    )
    usecases.run_policy(ctx, chosen, NOW)
    (request,) = ctx.store.requests(states=[RequestState.PENDING])
    usecases.record_answer(
        ctx, usecases.AnswerCommand(AnswerValue.NO, NOW, request_id=request.id), NOW
    )
    later = NOW + timedelta(minutes=5)
    usecases.expire_requests(ctx, later)
    (message,) = queue.drain()
    channel.sent.clear()  # the ask
    report = usecases.perform_removal(ctx, usecases.RemovalCommand(message), later)
    assert report.status is usecases.RemovalStatus.REMOVED
    queue.enqueue(message)  # delivered again, as a queue may
    return ctx, queue, request.id


def entries(ctx: Any, request_id: str) -> list[tuple[LedgerOutcome, str]]:
    return [(e.outcome, e.detail) for e in ctx.store.ledger() if e.request_id == request_id]


def test_the_removed_user_gets_the_appeal_link_once(tmp_path: Path) -> None:
    channel = Mailbox()
    ctx, queue, request_id = removed(tmp_path, channel, appeal_within="14d")
    (sent,) = channel.sent
    assert (sent.kind, sent.recipient, sent.request_id) == (
        MessageKind.REMOVAL,
        "ada@c.com",  # her UPN: the name the appeal page checks the link against
        request_id,
    )
    assert [a.purpose for a in sent.actions] == [LinkPurpose.APPEAL]
    request = ctx.store.get_request(request_id)
    assert sent.links_expire == request.updated_at + timedelta(days=14)
    assert (
        LedgerOutcome.REMOVAL_SENT,
        "told ada@c.com of the removal, with an appeal link for 14d",
    ) in entries(ctx, request_id)

    (again,) = queue.drain()
    usecases.perform_removal(ctx, usecases.RemovalCommand(again), NOW + timedelta(minutes=6))
    assert len(channel.sent) == 1  # told once


def test_a_refusing_channel_is_recorded_and_the_removal_stands(tmp_path: Path) -> None:
    channel = Mailbox(refuse="Graph sendMail answered 400 ErrorInvalidRecipients")
    ctx, _, request_id = removed(tmp_path, channel, appeal_within="14d")
    assert ctx.store.get_request(request_id).state is RequestState.REMOVED
    assert (
        LedgerOutcome.REMOVAL_SEND_FAILED,
        "Graph sendMail answered 400 ErrorInvalidRecipients",
    ) in entries(ctx, request_id)


def test_without_appeals_no_removal_message_is_sent(tmp_path: Path) -> None:
    channel = Mailbox()
    ctx, _, request_id = removed(tmp_path, channel)
    assert channel.sent == []
    assert LedgerOutcome.REMOVAL_SENT not in [o for o, _ in entries(ctx, request_id)]
