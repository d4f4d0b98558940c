"""open_link and follow_link: what a signed link (reclaim.domain.answer_links) shows, and what
following it does, for the answer page (reclaim/functions/answer_page.py).

`open_link` never writes (mail scanners prefetch links): it checks the link, finds its request
and says what the person may choose. `follow_link` checks the same and acts through the use case
every other path uses: an answer goes through record_answer (as the webhook's, with the link's
recipient as the one who answered), an appeal through restore (a "yes") plus an APPEALED entry,
an approver's decision through record_approval (usecases/approval_link.py).
Anything refused raises LinkProblem, with an HTTP status and a message safe to show, before
anything is written.

An answer can be changed before the deadline from "release" to "keep" (the queued removal is
cancelled, both answers stay in the history); "keep" to "release" is refused: a "yes" protects
the licence for keep_after_yes (DESIGN section 8 (1)), so the administrator releases it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from reclaim.domain.answer_links import LinkPurpose, LinkRefused, SignedLink, read_link
from reclaim.domain.lifecycle import QueueReason, Request, RequestState
from reclaim.domain.limits import justification_problem
from reclaim.domain.messages import Choice  # keep, release, restore: what the links preselect
from reclaim.domain.model import AnswerValue
from reclaim.domain.policy import Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import TransientError
from reclaim.usecases.approval_link import approval_view, follow_approval
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context, InputError
from reclaim.usecases.link_view import SOURCE, LinkProblem, LinkResult, LinkView, decision_of
from reclaim.usecases.record_answer import (
    AnswerCommand,
    AnswerStatus,
    record_answer,
    unjustified_keep,
)
from reclaim.usecases.restore import RestoreCommand, restore

__all__ = ["SOURCE", "AnswerStatus", "Choice", "LinkProblem", "LinkResult", "LinkView"]

_ANSWERS = {Choice.KEEP: AnswerValue.YES, Choice.RELEASE: AnswerValue.NO}


def open_link(ctx: Context, token: str, key: bytes, now: datetime) -> LinkView:
    """The view of the link `token`; LinkProblem when it cannot be used. Writes nothing."""
    if not token:
        raise LinkProblem(400, "this address has no link in it: open it from the message again")
    try:
        link = read_link(token, key, now)
    except LinkRefused as refused:
        status = 410 if "expired" in refused.reason else 403
        raise LinkProblem(status, refused.reason) from None
    if link.purpose is LinkPurpose.APPROVE:  # her approver's link: the recipient decides
        return replace(approval_view(ctx, link, now), token=token)
    request = ctx.store.get_request(link.request_id)
    if request is None or request.policy != link.policy or not request.user.matches(link.recipient):
        raise LinkProblem(410, "this request no longer exists: ask your administrator")
    policy = ctx.policies.get(request.policy)
    if policy is None:
        raise LinkProblem(410, "this request's policy is no longer in use: nothing to answer")
    if link.purpose is LinkPurpose.APPEAL:
        view = _appeal_view(link, request, policy, now)
    else:
        view = _answer_view(ctx, link, request, policy, now)
    return replace(view, token=token)


def follow_link(
    ctx: Context, token: str, key: bytes, choice: str, justification: str, now: datetime
) -> LinkResult:
    """Act on the link `token` with `choice`; LinkProblem (nothing written) when refused."""
    view = open_link(ctx, token, key, now)
    try:
        chosen = Choice(choice)
    except ValueError:
        raise LinkProblem(400, "choose one of the buttons on the page") from None
    justification = justification.strip()
    if problem := justification_problem(justification):
        raise LinkProblem(422, f"the reason cannot be stored: {problem}; write one line")
    if chosen is Choice.RESTORE and view.link.purpose is LinkPurpose.APPEAL:
        return _appeal(ctx, view, now)
    if view.link.purpose is LinkPurpose.APPROVE:
        return follow_approval(ctx, view, chosen, justification, now)
    if chosen not in _ANSWERS or view.link.purpose is not LinkPurpose.ANSWER:
        raise LinkProblem(400, "this link does not offer that choice")
    command = AnswerCommand(
        _ANSWERS[chosen],
        now,
        request_id=view.request.id,
        source=SOURCE,
        justification=justification,
        answered_by=view.link.recipient,
    )
    if chosen not in view.choices and not _repeats(view, command.value):
        raise LinkProblem(409, view.note or "this choice is no longer open")
    if unjustified_keep(view.policy, command):
        raise LinkProblem(422, "give a reason to keep the licence: this policy asks for one")
    try:
        status = record_answer(ctx, command, now)
    except InputError as error:
        raise LinkProblem(422, str(error)) from None
    return LinkResult(view, chosen, status=status)


def _answer_view(
    ctx: Context, link: SignedLink, request: Request, policy: Policy, now: datetime
) -> LinkView:
    answers = tuple(
        a
        for a in ctx.store.answers(request.policy, request.state_key)
        if a.request_id == request.id
    )
    closes_at = min(link.expires_at, request.deadline or link.expires_at)
    choices: tuple[Choice, ...] = ()
    note = ""
    said_no = request.queue_reason is QueueReason.CONSENT
    if request.state is RequestState.PENDING:
        if now >= closes_at:
            raise LinkProblem(
                410, f"the deadline passed on {closes_at:%Y-%m-%d %H:%M} UTC: answers are closed"
            )
        choices = (Choice.KEEP, Choice.RELEASE)
    elif request.state is RequestState.KEPT:
        note = (
            "you chose to keep the licence; that answer stands. To give the licence back "
            "sooner, ask your administrator"
        )
    elif request.state is RequestState.NOTICE:  # policy.notice: told the date, she may keep it
        closes_at = request.not_before or link.expires_at
        choices = (Choice.KEEP,)
        note = (
            f"your licence will be removed on or after {closes_at:%Y-%m-%d %H:%M} UTC; "
            "until then you can still keep it"
        )
    elif request.state in (RequestState.DUE, RequestState.QUEUED) and said_no:
        closes_at = link.expires_at  # "release" moved the request's own deadline to that moment
        choices = (Choice.KEEP,)
        note = "you chose to release the licence; until it is removed you can still keep it"
    else:
        raise LinkProblem(410, _closed(request))
    decision = decision_of(ctx, request)
    return LinkView(
        link,
        request,
        policy,
        closes_at,
        reason=decision[0],
        evidence=decision[1],
        answers=answers,
        choices=choices,
        note=note,
    )


def _repeats(view: LinkView, value: AnswerValue) -> bool:
    """The same answer again (the store drops it as a duplicate: nothing changes)."""
    return any(a.value is value for a in view.answers)


def _appeal_view(link: SignedLink, request: Request, policy: Policy, now: datetime) -> LinkView:
    if policy.appeal_within is None:
        raise LinkProblem(410, "this policy no longer offers appeals: ask your administrator")
    if request.state is not RequestState.REMOVED:
        raise LinkProblem(410, _closed(request))
    closes_at = min(link.expires_at, request.updated_at + policy.appeal_within)
    if now >= closes_at:  # the policy's window was shortened after the link was sent
        raise LinkProblem(410, f"the appeal window closed on {closes_at:%Y-%m-%d %H:%M} UTC")
    return LinkView(link, request, policy, closes_at, choices=(Choice.RESTORE,))


def _appeal(ctx: Context, view: LinkView, now: datetime) -> LinkResult:
    request, recipient = view.request, view.link.recipient
    latest = [
        r
        for r in ctx.store.requests(request.policy, [RequestState.REMOVED])
        if r.user.matches(recipient)
    ][-1:]
    if [r.id for r in latest] != [request.id]:  # restore gives back the latest removal only
        raise LinkProblem(409, "a later removal replaced this one: use the link of its message")
    report = restore(
        ctx,
        RestoreCommand(request.policy, user=recipient, by=f"{recipient}'s appeal (answer page)"),
        now,
    )
    if report.failed:  # nothing was written: the request is still REMOVED, the link still works
        raise TransientError(f"the directory did not take {recipient} back yet; try again later")
    ledger(
        ctx,
        request,
        LedgerOutcome.APPEALED,
        now,
        f"appealed by {recipient} via the answer page, within the appeal window",
    )
    return LinkResult(view, Choice.RESTORE, restored=True)


def _closed(request: Request) -> str:
    return {
        RequestState.REMOVED: "the licence was removed; answers are closed",
        RequestState.RESTORED: "the licence was given back already: nothing left to do",
        RequestState.CANCELLED: "this request was closed: the licence stays",
        RequestState.LAPSED: "the deadline passed and the licence stays: nothing left to do",
        # escalation: her answer (or her silence) is with her approver, who decides now
        RequestState.AWAITING_APPROVAL: "your approver decides now: nothing left to do here",
    }.get(request.state, f"the deadline passed: answers are closed ({request.state.value})")
