"""The approver's signed link (purpose APPROVE, sent by usecases/ask_approvers.py through email or
Teams): what it shows and what following it does, for the answer page.

`approval_view` never writes: it checks that the link's recipient is an approver of the request
(as record_approval does) and shows the user's evidence, her own answer with its reason, and the
choices. `follow_approval` decides through record_approval, the use case of the webhook's
approvals route, with the link's recipient as the approver and source "answer-page". The same
decision twice is a duplicate (nothing changes); a "keep" after a "release", before the removal,
cancels it; anything else once decided is refused with nothing written (LinkProblem, 4xx).
"""

from __future__ import annotations

from datetime import datetime

from reclaim.domain.answer_links import SignedLink
from reclaim.domain.approval import ApproverDecision
from reclaim.domain.lifecycle import QueueReason, RequestState
from reclaim.domain.messages import Choice
from reclaim.usecases.context import Context, InputError
from reclaim.usecases.link_view import SOURCE, LinkProblem, LinkResult, LinkView, decision_of
from reclaim.usecases.record_approval import (
    ApprovalCommand,
    NotApprover,
    approval_answer_id,
    record_approval,
)

_CLOSED = {
    RequestState.REMOVED: "the licence was removed: nothing left to decide",
    RequestState.RESTORED: "the licence was given back already: nothing left to decide",
    RequestState.CANCELLED: "this request was closed: the licence stays",
    RequestState.LAPSED: "the request ended and the licence stays: nothing left to decide",
}


def approval_view(ctx: Context, link: SignedLink, now: datetime) -> LinkView:
    """What the approver `link` names may decide now; LinkProblem when nothing. Writes nothing."""
    request = ctx.store.get_request(link.request_id, link.policy)
    if request is None or request.policy != link.policy:
        raise LinkProblem(410, "this request no longer exists: ask your administrator")
    policy = ctx.policies.get(request.policy)
    if policy is None:
        raise LinkProblem(410, "this request's policy is no longer in use: nothing to decide")
    if request.approval is None or not request.approval.allows(link.recipient):
        raise LinkProblem(403, "this link is not for an approver of this request")
    answers = ctx.store.answers(request.policy, request.state_key)
    decided = tuple(a for a in answers if a.request_id == approval_answer_id(request.id))
    closes_at = link.expires_at
    choices: tuple[Choice, ...] = ()
    note = ""
    if request.state is RequestState.AWAITING_APPROVAL:
        closes_at = min(link.expires_at, request.deadline or link.expires_at)
        if now >= closes_at:
            raise LinkProblem(
                410, f"the deadline passed on {closes_at:%Y-%m-%d %H:%M} UTC: decisions are closed"
            )
        choices = (Choice.KEEP, Choice.RELEASE)
    elif request.state is RequestState.KEPT:
        note = "the licence stays: that decision stands"
    elif (
        request.state in (RequestState.NOTICE, RequestState.DUE, RequestState.QUEUED)
        and request.queue_reason is QueueReason.APPROVER
    ):
        choices = (Choice.KEEP,)
        note = "the licence is released; until it is removed you can still keep it"
    else:
        raise LinkProblem(410, _CLOSED.get(request.state, "nothing left to decide here"))
    reason, evidence = decision_of(ctx, request)
    return LinkView(
        link,
        request,
        policy,
        closes_at,
        reason=reason,
        evidence=evidence,
        answers=tuple(a for a in answers if a.request_id == request.id),
        choices=choices,
        note=note,
        decisions=decided,
    )


def follow_approval(
    ctx: Context, view: LinkView, chosen: Choice, justification: str, now: datetime
) -> LinkResult:
    """Record the approver's `chosen` decision; LinkProblem (nothing written) when refused."""
    if chosen not in (Choice.KEEP, Choice.RELEASE):
        raise LinkProblem(400, "this link does not offer that choice")
    decision = ApproverDecision(chosen.value)
    value = "yes" if decision is ApproverDecision.KEEP else "no"
    repeated = any(d.value.value == value for d in view.decisions)
    if chosen not in view.choices and not repeated:
        raise LinkProblem(409, view.note or "this choice is no longer open")
    if chosen is Choice.KEEP and view.justification_required and not justification:
        raise LinkProblem(422, "give a reason to keep the licence: this policy asks for one")
    command = ApprovalCommand(
        view.request.policy,
        view.request.id,
        view.link.recipient,
        decision,
        justification,
        source=SOURCE,
    )
    try:
        status = record_approval(ctx, command, now)
    except NotApprover as refused:
        raise LinkProblem(403, str(refused)) from None
    except InputError as error:
        raise LinkProblem(422, str(error)) from None
    return LinkResult(view, chosen, approval=status)
