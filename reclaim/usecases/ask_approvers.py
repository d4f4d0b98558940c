"""ask_approvers: the expiry tick looks up and asks the approvers of escalated requests.

Each request waiting for an approver and not asked yet gets its approvers (the user's manager
from the directory, or escalation.fallback when she has none or approver is fallback), stored
on the request by compare-and-set before the channel is called: of two overlapping ticks only
one asks. The channel delivers the ask (send_approval_asks: the webhook's signed `approval` event, or an
approval_ask message per approver through email or Teams); one it refuses, or a lookup that fails, is taken back and tried
again by the next tick until the approver's deadline (then usecases/escalation.py applies the
approver's default, never a removal for an approver never reached).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from reclaim.domain import messages
from reclaim.domain.lifecycle import Request, RequestState, transition
from reclaim.domain.messages import Message, MessageKind
from reclaim.domain.model import Answer, User
from reclaim.domain.policy import Channel, Policy
from reclaim.domain.policy.escalation import ApproverKind, EscalateOn
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ConfigurationError, ReclaimError
from reclaim.ports import ApprovalAsk, ApprovalChannel, AskResult, MessageChannel
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context

log = logging.getLogger("reclaim")


def approvers_of(ctx: Context, policy: Policy, user: User) -> tuple[tuple[User, ...], str]:
    """Who decides for `user`, and where they came from ("manager" or "fallback")."""
    spec = policy.escalation
    assert spec is not None, "only escalated requests have approvers"
    if spec.approver is ApproverKind.MANAGER:
        manager = ctx.adapters.managers(policy).manager(user)
        if manager is not None and manager.label:
            return (manager,), "manager"
    return tuple(User(upn=name) for name in spec.fallback), "fallback"


def send_approval_asks(ctx: Context, policy: Policy, asks: Sequence[ApprovalAsk]) -> AskResult:
    """Deliver the asks through the policy's channel: one with `ask_approval` (the webhook's
    signed event) takes them as they are; a personal channel (email, Teams) gets one
    approval_ask Message per approver, with that approver's own signed links."""
    channel = ctx.adapters.campaign(policy)
    if hasattr(channel, "ask_approval"):
        approvals: ApprovalChannel = channel  # type: ignore[assignment]  # it has ask_approval
        return approvals.ask_approval(policy, asks)
    if isinstance(channel, MessageChannel):
        return channel.send([m for ask in asks for m in approval_messages(policy, ask)])
    raise ConfigurationError(
        f"campaign channel {policy.campaign.channel.value} cannot ask an approver"
    )


def approval_messages(policy: Policy, ask: ApprovalAsk) -> list[Message]:
    """The approval_ask message to each approver of `ask`, with what they decide about."""
    request, answer = ask.request, ask.answer
    approval = request.approval
    assert approval is not None and request.deadline is not None
    said = (
        "no answer by the deadline"
        if answer is None
        else f"{answer.value.value}" + (f": {answer.justification}" if answer.justification else "")
    )
    facts = (
        *messages.user_facts(policy, request),
        ("Person", request.user.display_name or request.user.label),
        ("Their answer", said),
    )
    by_teams = policy.campaign.channel is Channel.TEAMS
    return [
        messages.compose(
            MessageKind.APPROVAL_ASK,
            policy,
            request,
            recipient=address,
            recipient_name=approver.display_name,
            deadline=request.deadline,
            facts=facts,
        )
        for approver in approval.approvers
        if (
            address := (approver.upn or approver.mail)
            if by_teams
            else (approver.mail or approver.upn)
        )
    ]


def ask_approvers(ctx: Context, policy: Policy, now: datetime) -> int:
    """Ask the approvers of the policy's requests that wait for one and were not asked yet;
    return how many were asked."""
    if policy.escalation is None or (ctx.kill_switch and policy.enforcing):
        return 0  # nothing is asked while the kill switch is on; the deadline still stands
    claimed: list[Request] = []
    for request in ctx.store.requests(policy.name, [RequestState.AWAITING_APPROVAL]):
        approval = request.approval
        if approval is None or approval.asked_at is not None:
            continue
        if request.deadline is not None and request.deadline <= now:
            continue  # its approver's default applies (escalation.apply_approver_defaults)
        try:
            approvers, via = approvers_of(ctx, policy, request.user)
        except ReclaimError as error:
            _not_asked(ctx, request, f"approver not looked up: {error}", now)
            continue
        asking = replace(
            transition(request, RequestState.AWAITING_APPROVAL, now),
            approval=replace(approval, approvers=approvers, via=via, asked_at=now),
        )
        if ctx.store.update_request(asking):
            claimed.append(asking)
    if not claimed:
        return 0
    asks = [ApprovalAsk(r, _answer_shown(ctx, r)) for r in claimed]
    try:
        result = send_approval_asks(ctx, policy, asks)
    except ReclaimError as error:
        log.warning("approvers of %s not asked: %s", policy.name, error)
        result = AskResult(not_asked={r.id: f"not sent: {error}" for r in claimed})
    for request in claimed:
        approval = request.approval
        assert approval is not None
        if request.id in result.asked:
            ledger(
                ctx,
                request,
                LedgerOutcome.APPROVAL_ASKED,
                now,
                f"asked {approval.approver_labels} ({approval.via}) through "
                f"{policy.campaign.channel.value} to keep or release, by "
                f"{request.deadline:%Y-%m-%d %H:%M} UTC",
            )
            continue
        why = result.not_asked.get(request.id, "the channel gave no result")
        taken_back = replace(
            transition(request, RequestState.AWAITING_APPROVAL, now),
            approval=replace(approval, asked_at=None),
        )
        ctx.store.update_request(taken_back)  # lost to another writer: that one moved it on
        _not_asked(ctx, request, why, now)
    return len(result.asked)


def _not_asked(ctx: Context, request: Request, why: str, now: datetime) -> None:
    """Recorded once per request (the tick tries again each time; the log has every try)."""
    log.info("approver of request %s not asked: %s", request.id, why)
    ledger(ctx, request, LedgerOutcome.APPROVAL_ASK_FAILED, now, f"{why}; tried again next tick")


def _answer_shown(ctx: Context, request: Request) -> Answer | None:
    """The user's own answer the approver decides about (None: she stayed silent)."""
    approval = request.approval
    if approval is None or approval.trigger is EscalateOn.NO_RESPONSE:
        return None
    mine = [
        a
        for a in ctx.store.answers(request.policy, request.state_key)
        if a.request_id == request.id
    ]
    return mine[-1] if mine else None
