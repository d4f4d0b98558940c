"""recover_claims: removals whose worker died holding the claim are sent again.

A worker that is killed (SIGKILL, a closed pipe, a host recycled) mid-removal leaves its request
REMOVING. Once the claim is older than its lease, the next worker may take it over; this makes
sure one is sent, whatever happened to the message. The takeover counts an attempt, so a removal
that kills its worker every time still ends FAILED after RECLAIM_MAX_ATTEMPTS.
"""

from __future__ import annotations

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
