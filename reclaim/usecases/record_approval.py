"""record_approval: the approver's "keep" or "release" for a request escalated to them.

Only an approver the request was asked of (its manager or a fallback approver, stored on the
request when asked) may decide: anyone else gets NotApprover (403) and nothing changes. The
decision is stored as an answer of request id `<id>:approval` (source "approver <who>", with the
justification), so a "keep" protects her for keep_after_yes like her own "yes", the same decision
twice is a duplicate, and both stores keep it without a table of its own. The ledger says who
decided, what and why (APPROVER_KEPT / APPROVER_RELEASED), which `explain` shows.

A "release" sends the request to DUE (NOTICE first when the policy gives notice: she is told the
date, and DUE once it has passed): the next expiry tick re-decides it on fresh data and
releases it within the caps and the rolling rate like every other removal (usecases/release.py),
her "yes" the approver saw no longer protecting her (escalation.overruled_yes). A "keep" after a
release, before the removal (during the notice too), cancels it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from reclaim.domain.approval import ApproverDecision
from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.limits import id_problem, justification_problem
from reclaim.domain.model import Answer, AnswerValue
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ReclaimError
from reclaim.usecases.bookkeeping import cancel, ledger
from reclaim.usecases.context import Context, InputError


@dataclass(frozen=True)
class ApprovalCommand:
    policy: str
    request_id: str
    approver: str  # who decides: UPN, mail or object id, as the channel authenticated them
    decision: ApproverDecision
    justification: str = ""
    source: str = "webhook"  # the channel the decision came through


class ApprovalStatus(StrEnum):
    KEPT = "kept"  # she keeps the licence, protected for keep_after_yes
    RELEASED = "released"  # due: re-decided and released by the next expiry tick
    CANCELLED = "cancelled"  # a keep after the release: the removal will not happen
    DUPLICATE = "duplicate"  # this approver's decision was recorded before: nothing changed
    RECORDED = "recorded"  # recorded in the history; the request had already ended


def approval_answer_id(request_id: str) -> str:
    """The answer id an approver's decision on `request_id` is stored under."""
    return f"{request_id}:approval"


class NotApprover(ReclaimError):
    """The caller is not an approver of this request (HTTP 403): nothing is recorded."""


def approval_request(ctx: Context, command: ApprovalCommand) -> Request:
    """The escalated request the command decides, or InputError / NotApprover (nothing written)."""
    for name in ("policy", "request_id", "approver"):
        value = getattr(command, name)
        if not value:
            raise InputError(f"{name}: is required")
        if problem := id_problem(value):
            raise InputError(f"{name}: {problem}")
    if problem := justification_problem(command.justification):
        raise InputError(f"justification: {problem}")
    if command.policy not in ctx.policies:
        raise InputError(f"unknown policy {command.policy!r}")
    request = ctx.store.get_request(command.request_id, command.policy)
    if request is None or request.policy != command.policy:
        raise InputError(f"unknown request {command.request_id!r} under policy {command.policy!r}")
    if request.approval is None:
        raise InputError(f"request {request.id} was not escalated to an approver")
    if not request.approval.allows(command.approver):
        raise NotApprover(
            f"{command.approver!r} is not an approver of request {request.id}: only "
            "the approvers it was sent to may decide"
        )
    policy = ctx.policies[command.policy]
    keep = command.decision is ApproverDecision.KEEP
    if keep and policy.campaign.require_justification_for_keep and not command.justification:
        raise InputError(
            f"justification: policy {policy.name!r} requires one with a keep "
            "(campaign.require_justification_for_keep)"
        )
    return request


def record_approval(ctx: Context, command: ApprovalCommand, now: datetime) -> ApprovalStatus:
    request = approval_request(ctx, command)
    approval = request.approval
    assert approval is not None  # approval_request refuses requests without one
    keep = command.decision is ApproverDecision.KEEP
    who = f"{command.approver} ({approval.via or 'approver'})"
    reason = f": {command.justification}" if command.justification else ""
    detail = f"{command.decision.value} by {who} via {command.source}{reason}"
    outcome = LedgerOutcome.APPROVER_KEPT if keep else LedgerOutcome.APPROVER_RELEASED
    answer = Answer(
        approval_answer_id(request.id),
        AnswerValue.YES if keep else AnswerValue.NO,
        now,
        f"approver {command.approver}",
        command.justification,
    )
    with ctx.store.atomic():
        if not ctx.store.record_answer(request.policy, request.state_key, answer):
            return ApprovalStatus.DUPLICATE
        status = _decide(ctx, request, keep, detail, now)
        ledger(
            ctx,
            request,
            outcome,
            now,
            detail
            if status is not ApprovalStatus.RECORDED
            else f"{detail} (the request was already {request.state.value})",
        )
    return status


def _decide(
    ctx: Context, request: Request, keep: bool, detail: str, now: datetime
) -> ApprovalStatus:
    if request.state is RequestState.AWAITING_APPROVAL:
        if keep:
            ended = transition(request, RequestState.KEPT, now, detail=f"kept: {detail}")
            status = ApprovalStatus.KEPT
        else:
            notice = _gives_notice(ctx, request)  # she is told the date first (send_notices)
            then = "the notice goes out with" if notice else "re-decided by"
            ended = replace(
                transition(
                    request,
                    RequestState.NOTICE if notice else RequestState.DUE,
                    now,
                    detail=f"released: {detail}; {then} the next expiry tick",
                    queue_reason=QueueReason.APPROVER,
                ),
                deadline=now,  # when it became due (release.due_since)
            )
            status = ApprovalStatus.RELEASED
        if ctx.store.update_request(ended):
            return status
    elif (
        keep
        and request.state in (RequestState.NOTICE, RequestState.DUE, RequestState.QUEUED)
        and request.queue_reason is QueueReason.APPROVER
        and cancel(ctx, request, f"kept after the release: {detail}", now)
    ):
        return ApprovalStatus.CANCELLED
    return ApprovalStatus.RECORDED


def _gives_notice(ctx: Context, request: Request) -> bool:
    policy = ctx.policies.get(request.policy)
    return policy is not None and policy.notice is not None
