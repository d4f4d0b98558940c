"""Campaign channel `email` (GraphMailChannel) against the Graph fake's sendMail: one mail per
recipient from the configured mailbox, its signed links, escaping, every message kind, and what is
recorded when Graph says no."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.graph.mail import GraphMailChannel
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain import messages
from reclaim.domain.answer_links import LinkPurpose
from reclaim.domain.messages import MessageKind
from reclaim.domain.model import Member, UsageRow
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ConfigurationError, PermissionDenied, TransientError
from reclaim.ports import MessageChannel
from reclaim.settings import Settings
from tests.fakes import graph_mail
from tests.fakes.graph import FakeGraph
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage
from tests.support.messages import (
    LINK_SECRET_NAME,
    T0,
    carries_no_link,
    html_links,
    html_tags,
    link_env,
    policy,
    read,
    request,
)

SENDER = "licences@contoso.test"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        graph_mail.enable(fake, fake.add_user(SENDER, display_name="Licences"))
        yield fake


def env_of(graph: FakeGraph, **overrides: str) -> dict[str, str]:
    return {**graph.settings_env(), **link_env(), "RECLAIM_MAIL_SENDER": SENDER, **overrides}


def channel(graph: FakeGraph, **overrides: str) -> GraphMailChannel:
    env = env_of(graph, **overrides)
    return GraphMailChannel.from_settings(Settings.from_env(env), EnvironmentSecrets(env))


def test_each_ask_is_one_mail_from_the_sender_with_its_own_signed_links(
    graph: FakeGraph,
) -> None:
    assert "Mail.Send" not in graph.granted  # only the RBAC scope on the sender mailbox
    mails = channel(graph)
    asks = [request("r1", "ada@contoso.test", display_name="Ada"), request("r2", "bo@contoso.test")]
    result = mails.ask(policy("email"), asks)

    assert result.not_asked == {}
    assert result.asked == {r: f"mail from {SENDER} accepted by Exchange" for r in ("r1", "r2")}
    assert [(m.sender, m.to) for m in graph.mail.sent] == [
        (SENDER, ["ada@contoso.test"]),
        (SENDER, ["bo@contoso.test"]),
    ]
    first = graph.mail.sent[0]
    assert first.subject == "Do you still need Microsoft Visio?"
    assert first.content_type == "html" and first.save_to_sent_items is False
    assert first.message["toRecipients"] == [
        {"emailAddress": {"address": "ada@contoso.test", "name": "Ada"}}
    ]
    for text in ("Microsoft Visio", "2 minute(s) in 30 days, below 5m", "Friday 08 March 2030"):
        assert text in first.content
    for mail, asked in zip(graph.mail.sent, asks, strict=True):
        links = html_links(mail.content)
        assert len(links) == 4  # two buttons, and the same two addresses written out
        read_back = [read(url) for url in links[:2]]
        assert [choice for _, choice in read_back] == ["keep", "release"]
        for link, _ in read_back:
            assert (link.request_id, link.policy, link.recipient, link.purpose) == (
                asked.id,
                "visio",
                asked.user.upn,
                LinkPurpose.ANSWER,
            )
            assert link.expires_at == asked.deadline
    assert graph.count("POST", f"/users/{SENDER}/sendMail") == 2


def test_what_the_directory_and_the_policy_supply_is_text_never_markup(graph: FakeGraph) -> None:
    hostile = request(
        "r1",
        "ada@contoso.test",
        display_name='<script>alert("x")</script>Ada',
        reason='"><img src=x onerror=alert(1)> used 0 minutes',
    )
    channel(graph).ask(policy("email"), [hostile])
    (mail,) = graph.mail.sent
    assert html_tags(mail.content) <= {"html", "head", "meta", "title", "body", "h1", "p", "table",
                                       "tr", "th", "td", "a", "ul", "li"}  # fmt: skip
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;Ada" in mail.content
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in mail.content


def test_every_message_kind_is_a_mail_whose_links_have_that_kinds_purpose(
    graph: FakeGraph,
) -> None:
    mails = channel(graph)
    assert isinstance(mails, MessageChannel)
    visio, asked = policy("email"), request("r1", "ada@contoso.test")
    deadline = T0 + timedelta(days=3)
    outgoing = [
        messages.compose(
            kind,
            visio,
            asked,
            recipient="boss@contoso.test"
            if kind is MessageKind.APPROVAL_ASK
            else "ada@contoso.test",
            recipient_name="",
            deadline=deadline,
            facts=messages.user_facts(visio, asked),
        )
        for kind in MessageKind
    ]
    for message in outgoing:
        assert mails.send([message]).asked == {"r1": f"mail from {SENDER} accepted by Exchange"}
    expected = {
        MessageKind.ASK: ["answer", "answer"],
        MessageKind.REMINDER: ["answer", "answer"],
        MessageKind.APPROVAL_ASK: ["approve", "approve"],
        MessageKind.NOTICE: ["answer"],
        MessageKind.REMOVAL: ["appeal"],
    }
    for message, mail in zip(outgoing, graph.mail.sent, strict=True):
        assert mail.subject == message.subject and mail.to == [message.recipient]
        links = [read(url)[0] for url in html_links(mail.content)]
        purposes = [link.purpose.value for link in links[: len(links) // 2]]
        assert purposes == expected[message.kind]
        assert {link.recipient for link in links} == {message.recipient}
        assert {link.expires_at for link in links} == {deadline}


@pytest.mark.parametrize(
    ("sender", "said"),
    [
        ("nobody@contoso.test", "404 ErrorInvalidUser: The requested user"),
        ("nomailbox@contoso.test", "404 MailboxNotEnabledForRESTAPI"),
    ],
)
def test_a_sender_graph_cannot_send_from_is_not_asked_with_graphs_code(
    graph: FakeGraph, sender: str, said: str
) -> None:
    user = graph.add_user("nomailbox@contoso.test")
    graph.mail.rbac_scope = {user}  # in the scope, but no Exchange Online mailbox
    graph.granted.add("Mail.Send")  # so that the missing user is what Graph reports
    result = channel(graph, RECLAIM_MAIL_SENDER=sender).ask(
        policy("email"), [request("r1", "ada@contoso.test")]
    )
    assert result.asked == {}
    assert result.not_asked["r1"].startswith(f"Graph sendMail from {sender} answered {said}")
    assert carries_no_link(result.not_asked["r1"])
    assert graph.mail.sent == []


def test_a_sender_outside_the_rbac_scope_stops_the_batch_naming_the_permission(
    graph: FakeGraph,
) -> None:
    graph.mail.rbac_scope = set()  # the role assignment's scope does not hold the sender
    with pytest.raises(PermissionDenied) as denied:
        channel(graph).ask(policy("email"), [request("r1", "ada@contoso.test")])
    assert "403 ErrorAccessDenied" in str(denied.value)
    assert "Application Mail.Send" in str(denied.value)


def test_a_user_without_any_address_is_not_asked(graph: FakeGraph) -> None:
    result = channel(graph).ask(policy("email"), [request("r1", "", mail="")])
    assert result.not_asked == {"r1": "the email channel has no address for this user"}
    assert graph.mail.sent == []


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("RECLAIM_MAIL_SENDER", "RECLAIM_MAIL_SENDER"),
        ("RECLAIM_PUBLIC_URL", "RECLAIM_PUBLIC_URL"),
        ("RECLAIM_LINK_SECRET_NAME", "RECLAIM_LINK_SECRET_NAME"),
    ],
)
def test_the_channel_says_which_setting_it_needs(
    graph: FakeGraph, missing: str, named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        channel(graph, **{missing: ""})


def test_asks_reminders_and_failures_are_in_the_ledger_without_links(
    graph: FakeGraph, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    visio = policy("email", reminders=["2d"])
    users = [request(f"x{i}", f"u{i}@contoso.test").user for i in range(2)]
    adapters = MemoryAdapters(
        MemoryDirectory({"SF": [Member(u) for u in users]}),
        MemoryUsage([UsageRow(u.upn, 1.0) for u in users], T0),
        channel(graph),  # type: ignore[arg-type]
    )
    ids = (f"req-{n}" for n in itertools.count())
    store = SqliteStore(tmp_path / "s.sqlite3")
    ctx = usecases.Context(
        store, MemoryQueue(), adapters, {visio.name: visio}, new_id=lambda: next(ids)
    )
    usecases.run_policy(ctx, visio, T0)
    assert len(graph.mail.sent) == 2
    asked = [e for e in store.ledger() if e.outcome is LedgerOutcome.ASKED]
    assert {e.detail for e in asked} == {f"email: mail from {SENDER} accepted by Exchange"}

    graph.mail.enabled.clear()  # the sender mailbox lost its Exchange Online licence
    deadline = min(r.deadline for r in store.requests() if r.deadline)
    assert usecases.expire_requests(ctx, deadline - timedelta(days=1)).reminded == 0
    failed = [e for e in store.ledger() if e.outcome is LedgerOutcome.REMINDER_FAILED]
    assert len(failed) == 2
    assert all("404 MailboxNotEnabledForRESTAPI" in e.detail for e in failed)
    for entry in store.ledger():
        assert carries_no_link(entry.detail)
    assert carries_no_link(caplog.text)


def test_graph_down_before_the_first_mail_raises_and_after_one_leaves_the_rest_not_asked(
    graph: FakeGraph,
) -> None:
    from tests.fakes.graph import Fault

    down = [Fault.unavailable(retry_after=0)] * 5  # every attempt of one call
    path = f"/users/{SENDER}/sendMail"
    asks = [request("r1", "ada@contoso.test"), request("r2", "bo@contoso.test")]
    graph.inject("POST", path, *down)
    with pytest.raises(TransientError):
        channel(graph).ask(policy("email"), asks)
    assert graph.mail.sent == []

    graph.inject("POST", path, *down, skip=1)  # the first mail goes, then Graph is down
    result = channel(graph).ask(policy("email"), asks)
    assert list(result.asked) == ["r1"]
    assert result.not_asked["r2"].startswith("not sent: Graph sendMail from")
    assert carries_no_link(result.not_asked["r2"])


def test_a_link_key_too_short_is_a_configuration_error_that_never_shows_the_key(
    graph: FakeGraph,
) -> None:
    short = channel(graph, **{variable_for(LINK_SECRET_NAME): "short-key"})
    with pytest.raises(ConfigurationError, match="shorter than 32 bytes") as refused:
        short.ask(policy("email"), [request("r1", "ada@contoso.test")])
    assert "short-key" not in str(refused.value) and graph.mail.sent == []


def test_a_notice_is_a_mail_naming_the_removal_date_with_a_keep_link_until_then(
    graph: FakeGraph, tmp_path: Path
) -> None:
    from dataclasses import replace

    from reclaim.domain.lifecycle import RequestState
    from reclaim.domain.model import AnswerValue
    from reclaim.domain.policy.notice import NoticeSpec

    visio = replace(policy("email"), notice=NoticeSpec(timedelta(days=3)))
    user = request("x0", "ada@contoso.test").user
    adapters = MemoryAdapters(
        MemoryDirectory({"SF": [Member(user)]}),
        MemoryUsage([UsageRow(user.upn, 1.0)], T0),
        channel(graph),  # type: ignore[arg-type]
    )
    store = SqliteStore(tmp_path / "s.sqlite3")
    ctx = usecases.Context(store, MemoryQueue(), adapters, {visio.name: visio})
    usecases.run_policy(ctx, visio, T0)
    (asked,) = store.requests()
    no = usecases.AnswerCommand(AnswerValue.NO, T0, request_id=asked.id)
    usecases.record_answer(ctx, no, T0)
    told_at = T0 + timedelta(minutes=15)
    assert usecases.expire_requests(ctx, told_at).noticed == 1

    remove_after = told_at + timedelta(days=3)
    ask_mail, notice_mail = graph.mail.sent
    assert ask_mail.subject == "Do you still need Microsoft Visio?"
    assert notice_mail.to == ["ada@contoso.test"]
    assert notice_mail.subject == (
        f"Your Microsoft Visio licence will be removed on {messages.when(remove_after)}"
    )
    links = [read(url)[0] for url in html_links(notice_mail.content)]
    assert {(link.purpose, link.request_id) for link in links} == {(LinkPurpose.ANSWER, asked.id)}
    assert {link.expires_at for link in links} == {remove_after}
    assert store.get_request(asked.id).state is RequestState.NOTICE
    assert store.get_request(asked.id).not_before == remove_after
    (sent,) = [e for e in store.ledger() if e.outcome is LedgerOutcome.NOTICE_SENT]
    assert sent.detail.endswith("(notice 3d), told through email")
    assert carries_no_link(sent.detail)
