"""Steps every use case shares: ledger entries, queueing a removal, cancelling a request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.policy import Policy
from reclaim.domain.records import (
    LedgerEntry,
    LedgerOutcome,
    RemovalMessage,
)
from reclaim.usecases.context import Context

T = TypeVar("T")
R = TypeVar("R")


def each(ctx: Context, items: Sequence[T], step: Callable[[T], R]) -> list[R]:
    """`step` for every item, up to the store's write_concurrency at once (its results in the
    items' order). One item's writes stay in order, so a request is stored before its message is
    sent; different candidates' writes do not wait for each other."""
    workers = min(ctx.store.write_concurrency, len(items))
    if workers <= 1:
        return [step(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(step, items))


def ledger(
    ctx: Context,
    request: Request,
    outcome: LedgerOutcome,
    now: datetime,
    detail: str = "",
    *,
    seat_freed: bool | None = None,
    entry_id: str = "",
) -> bool:
    """Append one ledger entry; False when an entry with its id exists already."""
    policy = ctx.policies.get(request.policy)
    counts_money = outcome in (
        LedgerOutcome.REMOVED,
        LedgerOutcome.RESTORED,
        LedgerOutcome.SEAT_CHECKED,
    )
    return ctx.store.append_ledger(
        LedgerEntry(
            id=entry_id or f"{request.id}:{outcome.value}",
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
    decided_at: datetime | None = None,
) -> Request:
    """Move a request to QUEUED (stored first, so the worker finds it), then send its message.
    `decided_at`: when the decision that releases it was taken (the worker checks its age).
    On SQLite the three writes are one commit."""
    with ctx.store.atomic():
        if new:
            queued = replace(request, state=RequestState.QUEUED, queue_reason=reason)
            ctx.store.add_request(queued)
        else:
            queued = transition(request, RequestState.QUEUED, now, queue_reason=reason)
            if not ctx.store.update_request(queued):
                return request  # another writer moved it on; it is theirs now
        # One entry per release (a request handed back and released again has two): the rolling
        # rate counts them. The version keeps a repeated write of the same release idempotent.
        entry_id = (
            ""
            if request.state is RequestState.PENDING or new
            else f"{queued.id}:QUEUED:{queued.version}"
        )
        ledger(ctx, queued, LedgerOutcome.QUEUED, now, reason.value, entry_id=entry_id)
        ctx.queue.enqueue(removal_message(queued, decided_at))
    return queued


def removal_message(request: Request, decided_at: datetime | None = None) -> RemovalMessage:
    reason = request.queue_reason.value if request.queue_reason else ""
    return RemovalMessage(
        request.id,
        request.run_id,
        request.policy,
        request.group,
        request.user,
        f"{reason}: {request.reason}",
        decided_at=decided_at,
    )


def cancel(ctx: Context, request: Request, why: str, now: datetime) -> bool:
    cancelled = transition(request, RequestState.CANCELLED, now, detail=why)
    with ctx.store.atomic():
        if ctx.store.update_request(cancelled):
            ledger(ctx, cancelled, LedgerOutcome.CANCELLED, now, why)
            return True
    return False
