"""Steps every use case shares: ledger entries, queueing a removal, cancelling a request."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.policy import Policy
from reclaim.domain.records import (
    LedgerEntry,
    LedgerOutcome,
    RemovalMessage,
)
from reclaim.usecases.context import Context


def ledger(
    ctx: Context,
    request: Request,
    outcome: LedgerOutcome,
    now: datetime,
    detail: str = "",
    *,
    seat_freed: bool | None = None,
) -> None:
    policy = ctx.policies.get(request.policy)
    counts_money = outcome in (
        LedgerOutcome.REMOVED,
        LedgerOutcome.RESTORED,
        LedgerOutcome.SEAT_CHECKED,
    )
    ctx.store.append_ledger(
        LedgerEntry(
            id=f"{request.id}:{outcome.value}",
            at=now,
            policy=request.policy,
            group=request.group,
            request_id=request.id,
            run_id=request.run_id,
            user=request.user,
            outcome=outcome,
            detail=detail,
            seat_freed=seat_freed,
            monthly_cost=policy.licence.monthly_cost if policy and counts_money else 0.0,
            currency=policy.licence.currency if policy else "",
        )
    )


def enqueue_removal(
    ctx: Context,
    policy: Policy,
    request: Request,
    reason: QueueReason,
    now: datetime,
    *,
    new: bool = False,
) -> Request:
    """Move a request to QUEUED (stored first, so the worker finds it), then send its message."""
    if new:
        queued = replace(request, state=RequestState.QUEUED, queue_reason=reason)
        ctx.store.add_request(queued)
    else:
        queued = transition(request, RequestState.QUEUED, now, queue_reason=reason)
        if not ctx.store.update_request(queued):
            return request  # another writer moved it on; it is theirs now
    ledger(ctx, queued, LedgerOutcome.QUEUED, now, reason.value)
    ctx.queue.enqueue(removal_message(queued))
    return queued


def removal_message(request: Request) -> RemovalMessage:
    reason = request.queue_reason.value if request.queue_reason else ""
    return RemovalMessage(
        request.id,
        request.run_id,
        request.policy,
        request.group,
        request.user,
        f"{reason}: {request.reason}",
    )


def cancel(ctx: Context, request: Request, why: str, now: datetime) -> bool:
    cancelled = transition(request, RequestState.CANCELLED, now, detail=why)
    if ctx.store.update_request(cancelled):
        ledger(ctx, cancelled, LedgerOutcome.CANCELLED, now, why)
        return True
    return False
