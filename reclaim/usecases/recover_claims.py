"""recover_claims: removals whose worker died holding the claim are sent again.

A worker that is killed (SIGKILL, a closed pipe, a host recycled) mid-removal leaves its request
REMOVING. Once the claim is older than its lease, the next worker may take it over; this makes
sure one is sent, whatever happened to the message. The takeover counts an attempt, so a removal
that kills its worker every time still ends FAILED after RECLAIM_MAX_ATTEMPTS.

A run killed between storing a request QUEUED and sending its message leaves a request with no
message. The expiry tick resends QUEUED requests after an hour (expire_requests.RESEND_AFTER),
not knowing whether a message is still waiting; a queue that can list what it holds (the CLI's
local queue) lets `resend_unqueued` send the missing ones as soon as their lease is over, with
the time of the decision that released them (the dead run may hold the policy's lease for
half an hour, so a hand-back to the expiry tick would wait that long).
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.records import LedgerOutcome
from reclaim.usecases.bookkeeping import removal_message
from reclaim.usecases.context import Context


def recover_claims(ctx: Context, now: datetime) -> int:
    """Send the removal message again for every claim older than its lease; how many."""
    if ctx.kill_switch:
        return 0  # nothing is removed now; the next tick after the switch is off sends them
    lease = ctx.limits.claim_lease
    stale = [
        r
        for r in ctx.store.requests(None, [RequestState.REMOVING])
        if r.policy in ctx.policies and now - r.updated_at >= lease
    ]
    for request in stale:
        ctx.queue.enqueue(removal_message(request))
    return len(stale)


def resend_unqueued(ctx: Context, now: datetime, waiting: Set[str]) -> int:
    """Send a message for every QUEUED request (older than the claim lease: a live run may be
    about to send its own) whose id is not among `waiting`, the queue's messages; how many."""
    if ctx.kill_switch:
        return 0
    lease = ctx.limits.claim_lease
    lost = [
        r
        for r in ctx.store.requests(None, [RequestState.QUEUED])
        if r.policy in ctx.policies and r.id not in waiting and now - r.updated_at >= lease
    ]
    for request in lost:
        ctx.queue.enqueue(removal_message(request, _released_at(ctx, request)))
    return len(lost)


def _released_at(ctx: Context, request: Request) -> datetime | None:
    """When its decision released it: its latest QUEUED entry (one per release, written just
    before the message is sent). None, when that entry was lost too: the worker hands it back."""
    entries = ctx.store.ledger(request.created_at, request.policy)
    return max(
        (e.at for e in entries if e.request_id == request.id and e.outcome is LedgerOutcome.QUEUED),
        default=None,
    )
