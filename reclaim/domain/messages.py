"""What the personal channels (email, Teams) tell a person, as data: one Message per recipient.

A message kind is a row of KINDS (subject, opening line, the choices it offers and which signed
link each opens), not a method of a channel: the ask and the reminder are built here, and the
approval ask, the notice and the removal with its appeal link are rows the channels already
render; their use cases fill in the facts and call `compose`. The channels sign one link per
message and choice (reclaim.domain.answer_links), render the message as a mail or an Adaptive
Card and never log a link: a link is a capability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reclaim.domain.answer_links import LinkPurpose
from reclaim.domain.lifecycle import Request
from reclaim.domain.policy import Policy
from reclaim.domain.reminders import DueReminder


class MessageKind(StrEnum):
    ASK = "ask"  # the campaign's question
    REMINDER = "reminder"  # campaign.reminders: the same question, the deadline unchanged
    APPROVAL_ASK = "approval_ask"  # escalation: the approver keeps or releases the licence
    NOTICE = "notice"  # notice: the removal date, and how to keep the licence before it
    REMOVAL = "removal"  # removed, with the appeal link while appeal_within lasts


class Choice(StrEnum):
    """What a button asks the answer page to preselect (the page still asks to confirm: a GET
    never changes anything, since mail scanners open links)."""

    KEEP = "keep"
    RELEASE = "release"
    RESTORE = "restore"


@dataclass(frozen=True)
class Action:
    label: str  # the button's text
    choice: Choice
    purpose: LinkPurpose  # which signed link it opens


@dataclass(frozen=True)
class KindTemplate:
    subject: str  # str.format fields: application, name, deadline
    opening: str  # the first paragraph, same fields
    actions: tuple[Action, ...]


_KEEP = Action("Keep my licence", Choice.KEEP, LinkPurpose.ANSWER)
_RELEASE = Action("Release it", Choice.RELEASE, LinkPurpose.ANSWER)

KINDS: dict[MessageKind, KindTemplate] = {
    MessageKind.ASK: KindTemplate(
        "Do you still need {application}?",
        "Hello {name}, your {application} licence looks unused. Tell us by {deadline} whether "
        "you still need it.",
        (_KEEP, _RELEASE),
    ),
    MessageKind.REMINDER: KindTemplate(
        "Reminder: do you still need {application}?",
        "Hello {name}, we have not heard from you yet about your {application} licence. Tell "
        "us by {deadline} whether you still need it.",
        (_KEEP, _RELEASE),
    ),
    MessageKind.APPROVAL_ASK: KindTemplate(
        "Approve {application} for someone on your team",
        "Hello {name}, you are asked to decide by {deadline} whether the {application} licence "
        "below is still needed.",
        (
            Action("Keep the licence", Choice.KEEP, LinkPurpose.APPROVE),
            Action("Release it", Choice.RELEASE, LinkPurpose.APPROVE),
        ),
    ),
    MessageKind.NOTICE: KindTemplate(
        "Your {application} licence will be removed on {deadline}",
        "Hello {name}, your {application} licence will be removed on {deadline}. If you still "
        "need it, keep it before then.",
        (_KEEP,),
    ),
    MessageKind.REMOVAL: KindTemplate(
        "Your {application} licence was removed",
        "Hello {name}, your {application} licence was removed. If you need it back, you can "
        "restore it yourself until {deadline}.",
        (Action("Give it back to me", Choice.RESTORE, LinkPurpose.APPEAL),),
    ),
}


@dataclass(frozen=True)
class Message:
    """One message to one person about one request."""

    kind: MessageKind
    request_id: str
    policy: str
    application: str
    recipient: str  # the address (email) or UPN (Teams) it goes to; the links name it
    recipient_name: str
    subject: str
    opening: str
    facts: tuple[tuple[str, str], ...]  # (label, value): what the person is shown as evidence
    actions: tuple[Action, ...]
    deadline: datetime  # the date the opening names
    links_expire: datetime  # the signed links' expiry


def when(moment: datetime) -> str:
    return f"{moment:%A %d %B %Y, %H:%M} UTC"


def compose(
    kind: MessageKind,
    policy: Policy,
    request: Request,
    *,
    recipient: str,
    recipient_name: str,
    deadline: datetime,
    facts: Sequence[tuple[str, str]] = (),
    links_expire: datetime | None = None,
) -> Message:
    """The message of `kind` about `request` for `recipient`; its links expire at
    `links_expire` (default: the deadline)."""
    template = KINDS[kind]
    fields = {
        "application": policy.application,
        "name": recipient_name or recipient,
        "deadline": when(deadline),
    }
    return Message(
        kind=kind,
        request_id=request.id,
        policy=policy.name,
        application=policy.application,
        recipient=recipient,
        recipient_name=recipient_name,
        subject=template.subject.format(**fields),
        opening=template.opening.format(**fields),
        facts=tuple(facts),
        actions=template.actions,
        deadline=deadline,
        links_expire=links_expire or deadline,
    )


def respond_by(policy: Policy, request: Request) -> datetime:
    return request.deadline or request.created_at + policy.campaign.respond_within


def user_facts(policy: Policy, request: Request) -> tuple[tuple[str, str], ...]:
    """The application, the usage evidence and the account, as the user is shown them."""
    user = request.user
    return (
        ("Application", policy.application),
        ("What we found", request.reason or "no recorded use"),
        ("Account", user.upn or user.mail or user.sam_account_name),
    )


def ask(
    policy: Policy, request: Request, recipient: str, *, reminder: DueReminder | None = None
) -> Message:
    """The ask (or, with `reminder`, the reminder) to the request's own user."""
    facts = user_facts(policy, request)
    if reminder is not None:
        facts += (("Reminder", f"{reminder.number} of {reminder.of}"),)
    return compose(
        MessageKind.REMINDER if reminder else MessageKind.ASK,
        policy,
        request,
        recipient=recipient,
        recipient_name=request.user.display_name,
        deadline=respond_by(policy, request),
        facts=facts,
    )


def removal(policy: Policy, request: Request, recipient: str) -> Message | None:
    """The removal message with its appeal link (purpose APPEAL, expiring at the removal +
    appeal_within) for a REMOVED request; None when the policy offers no appeal."""
    if policy.appeal_within is None:
        return None
    until = request.updated_at + policy.appeal_within  # a REMOVED request last changed then
    return compose(
        MessageKind.REMOVAL,
        policy,
        request,
        recipient=recipient,
        recipient_name=request.user.display_name,
        deadline=until,
        facts=user_facts(policy, request),
    )


def notice(policy: Policy, request: Request, recipient: str, *, remove_after: datetime) -> Message:
    """policy.notice: the removal date to the request's own user; her keep link lasts until then."""
    return compose(
        MessageKind.NOTICE,
        policy,
        request,
        recipient=recipient,
        recipient_name=request.user.display_name,
        deadline=remove_after,
        facts=user_facts(policy, request),
    )
