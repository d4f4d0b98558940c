"""Message kinds as data (reclaim/domain/messages.py), the links the channels sign for them, and
the two renderings: the mail's HTML and the Adaptive Card's Markdown keep every value as text."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reclaim.adapters.adaptive_card import card, plain
from reclaim.adapters.links import LinkSigner
from reclaim.adapters.mail_body import html_body
from reclaim.domain import messages
from reclaim.domain.answer_links import LinkPurpose
from reclaim.domain.messages import KINDS, MessageKind
from reclaim.domain.reminders import DueReminder
from tests.support.messages import (
    LINK_SECRET,
    PUBLIC_URL,
    T0,
    html_links,
    html_tags,
    policy,
    read,
    request,
)

SIGNER = LinkSigner(lambda: LINK_SECRET.encode(), PUBLIC_URL)


def test_every_kind_has_a_template_whose_actions_open_a_link_of_one_purpose() -> None:
    assert set(KINDS) == set(MessageKind)
    purposes = {kind: {a.purpose for a in KINDS[kind].actions} for kind in MessageKind}
    assert purposes == {
        MessageKind.ASK: {LinkPurpose.ANSWER},
        MessageKind.REMINDER: {LinkPurpose.ANSWER},
        MessageKind.APPROVAL_ASK: {LinkPurpose.APPROVE},
        MessageKind.NOTICE: {LinkPurpose.ANSWER},
        MessageKind.REMOVAL: {LinkPurpose.APPEAL},
    }


def test_the_ask_and_the_reminder_name_the_deadline_and_the_evidence() -> None:
    asked = request("r1", "ada@contoso.test", display_name="Ada")
    ask = messages.ask(policy("email"), asked, "ada@contoso.test")
    assert (ask.kind, ask.subject) == (MessageKind.ASK, "Do you still need Microsoft Visio?")
    assert (
        ask.opening.startswith("Hello Ada, ") and "Friday 08 March 2030, 09:00 UTC" in ask.opening
    )
    assert ("What we found", asked.reason) in ask.facts
    assert ask.deadline == ask.links_expire == asked.deadline
    due = DueReminder(2, 2, timedelta(days=1), T0 + timedelta(days=7))
    reminder = messages.ask(policy("email"), asked, "ada@contoso.test", reminder=due)
    assert reminder.kind is MessageKind.REMINDER and reminder.deadline == ask.deadline
    assert ("Reminder", "2 of 2") in reminder.facts


def test_a_link_never_expires_before_its_deadline() -> None:
    message = messages.ask(policy("email"), request("r1", "ada@contoso.test"), "ada@contoso.test")
    late = replace(message, links_expire=T0 + timedelta(days=7, microseconds=250_000))
    for _, url in SIGNER.links(late):  # a token holds whole seconds: rounded up, not down
        assert read(url)[0].expires_at == T0 + timedelta(days=7, seconds=1)
    for _, url in SIGNER.links(message):  # a whole second stays as it is
        assert read(url)[0].expires_at == T0 + timedelta(days=7)


def test_one_token_per_purpose_and_each_button_preselects_its_choice() -> None:
    message = messages.ask(policy("email"), request("r1", "ada@contoso.test"), "ada@contoso.test")
    (_, keep), (_, release) = SIGNER.links(message)
    assert keep.endswith("&choice=keep") and release.endswith("&choice=release")
    assert keep.removesuffix("&choice=keep") == release.removesuffix("&choice=release")


def test_values_from_the_directory_and_the_policy_are_text_in_the_mail() -> None:
    hostile = policy("email")
    hostile = replace(hostile, application="Visio</h1><script>x()</script>")
    asked = request("r1", "ada@contoso.test", display_name="<b>Ada</b>", reason="<i>0m</i>")
    message = messages.ask(hostile, asked, "ada@contoso.test")
    html = html_body(message, SIGNER.links(message))
    assert "script" not in html_tags(html) and "b" not in html_tags(html)
    assert "&lt;script&gt;" in html and "&lt;b&gt;Ada&lt;/b&gt;" in html
    assert [read(url)[1] for url in html_links(html)] == ["keep", "release"] * 2


def test_values_are_text_on_the_card() -> None:
    asked = request("r1", "ada@contoso.test", display_name="**Ada**", reason="[x](https://e.test)")
    message = messages.ask(policy("teams"), asked, "ada@contoso.test")
    posted = card(message, SIGNER.links(message))
    assert posted["body"][1]["text"].startswith(r"Hello \*\*Ada\*\*, ")
    assert posted["body"][2]["facts"][1]["value"] == r"\[x\](https://e.test)"
    assert plain("# big\nline") == r"\# big line" and plain("1. item") == r"1\. item"
