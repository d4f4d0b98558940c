"""recover_claims: removals whose worker died holding the claim are sent again.

A worker that is killed (SIGKILL, a closed pipe, a host recycled) mid-removal leaves its request
REMOVING. Once the claim is older than its lease, the next worker may take it over; this makes
sure one is sent, whatever happened to the message. The takeover counts an attempt, so a removal
that kills its worker every time still ends FAILED after RECLAIM_MAX_ATTEMPTS.

A worker killed between storing a request QUEUED and sending its message leaves a request with
no message. The expiry tick resends QUEUED requests after an hour (expire_requests.RESEND_AFTER),
not knowing whether a message is still waiting; a queue that can list what it holds (the CLI's
local queue) lets `resend_unqueued` send the missing ones as soon as their lease is over.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from reclaim.domain.lifecycle import RequestState
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
        ctx.queue.enqueue(removal_message(request))
    return len(lost)
