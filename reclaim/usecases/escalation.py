"""escalation: a request waits for the user's approver instead of ending (policy key escalation).

A "yes" (when: keep), a "no" (when: no / always) or silence past the deadline (when: no_response /
always) moves a PENDING request to AWAITING_APPROVAL, with the approver's own deadline
(escalation.respond_within from now). The expiry tick looks the approvers up and asks them
(ask_approvers.py); the approver decides through record_approval.py. When the approver's deadline
passes without a decision, escalation.on_no_response applies here: keep (LAPSED, or KEPT after a
"yes") or reclaim (DUE: re-decided, capped and rate-limited by the next tick like any removal).
An approver who was never reached (lookup or channel failing until the deadline) never reclaims:
that is a keep, recorded as such (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from reclaim.domain.approval import Approval
from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.policy import OnNoResponse, Policy
from reclaim.domain.policy.escalation import EscalateOn
from reclaim.domain.records import LedgerOutcome
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context


def escalates(policy: Policy, trigger: EscalateOn) -> bool:
    """Whether the policy sends requests to an approver on `trigger`."""
    return policy.escalation is not None and policy.escalation.covers(trigger)


def await_approval(
    ctx: Context, policy: Policy, request: Request, trigger: EscalateOn, why: str, now: datetime
) -> Request | None:
    """Move a PENDING request to AWAITING_APPROVAL (the approvers are asked by the next tick);
    None when another writer moved it first."""
    spec = policy.escalation
    assert spec is not None, "only a policy with escalation escalates"
    deadline = now + spec.respond_within
    waiting = replace(
        transition(
            request, RequestState.AWAITING_APPROVAL, now, detail=f"{why}; waiting for the approver"
        ),
        deadline=deadline,
        approval=Approval(trigger, now),
    )
    with ctx.store.atomic():
        if not ctx.store.update_request(waiting):
            return None
        ledger(
            ctx,
            waiting,
            LedgerOutcome.ESCALATED,
            now,
            f"{why}: the {spec.approver.value} decides by {deadline:%Y-%m-%d %H:%M} UTC "
            f"(escalation.when {trigger.value}; silence: {spec.on_no_response.value})",
        )
    return waiting


def escalate_silent(ctx: Context, policy: Policy, now: datetime) -> int:
    """when: no_response: the silent past their deadline go to the approver (before release and
    lapse look at them: release.due_requests and _lapse_silent leave them alone)."""
    if not escalates(policy, EscalateOn.NO_RESPONSE):
        return 0
    moved = 0
    for request in ctx.store.requests(policy.name, [RequestState.PENDING]):
        if request.deadline is not None and request.deadline <= now:
            why = "no answer by the deadline"
            moved += (
                await_approval(ctx, policy, request, EscalateOn.NO_RESPONSE, why, now) is not None
            )
    return moved


def apply_approver_defaults(ctx: Context, policy: Policy, now: datetime) -> int:
    """Requests whose approver stayed silent past the approver's deadline get the policy's
    escalation.on_no_response (keep, when the policy no longer escalates)."""
    spec = policy.escalation
    reclaims = spec is not None and spec.on_no_response is OnNoResponse.RECLAIM
    applied = 0
    for request in ctx.store.requests(policy.name, [RequestState.AWAITING_APPROVAL]):
        approval = request.approval
        if request.deadline is None or request.deadline > now or approval is None:
            continue
        asked = approval.asked_at is not None
        if reclaims and asked:
            why = f"{approval.approver_labels} did not decide by the deadline; escalation.on_no_response: reclaim"
            ended = replace(
                transition(
                    request,
                    RequestState.NOTICE if policy.notice else RequestState.DUE,  # told first
                    now,
                    detail=f"{why}; "
                    + (
                        "the notice goes out with the next expiry tick"
                        if policy.notice
                        else "released by the next expiry tick"
                    ),
                    queue_reason=QueueReason.APPROVER,
                ),
                deadline=now,  # a DUE request keeps when it became due there (release.due_since)
            )
        else:
            why = (
                f"{approval.approver_labels} did not decide by the deadline; kept"
                if asked
                else "the approver was never reached by the deadline; kept (never removed unasked)"
            )
            state = (
                RequestState.KEPT if approval.trigger is EscalateOn.KEEP else RequestState.LAPSED
            )
            ended = transition(request, state, now, detail=why)
        with ctx.store.atomic():
            if ctx.store.update_request(ended):
                ledger(ctx, ended, LedgerOutcome.APPROVER_SILENT, now, why)
                applied += 1
    return applied


def overruled_yes(requests: list[Request]) -> Mapping[str, datetime]:
    """State key -> the time up to which her "yes" answers no longer protect her: her approver
    (or the approver's silence, once asked) released her after seeing them (DESIGN §8 (1))."""
    return {
        r.state_key: r.approval.escalated_at
        for r in requests
        if r.queue_reason is QueueReason.APPROVER and r.approval is not None
    }


def yes_protects(policy: Policy, request: Request, yes_at: datetime | None, now: datetime) -> bool:
    """Whether a "yes" of `yes_at` still keeps this request's user (keep_after_yes), unless her
    approver released her after seeing it."""
    if yes_at is None or now - yes_at >= policy.keep_after_yes:
        return False
    overruled = overruled_yes([request]).get(request.state_key)
    return overruled is None or yes_at > overruled
