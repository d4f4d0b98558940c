"""recover_claims: removals whose worker died holding the claim go back to be re-decided.

A worker that is killed (SIGKILL, a closed pipe, a host recycled) mid-removal leaves its request
REMOVING. Once the claim is older than its lease, it is handed back (DUE), never simply taken
over: its write may have gone out and someone may have re-added the user since. The expiry tick
that re-decides it first settles what that write did (usecases/own_writes.py). Its attempts stay
counted, so a removal that kills its worker every time still ends FAILED after
RECLAIM_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from reclaim.domain.lifecycle import RequestState
from reclaim.usecases.context import Context
from reclaim.usecases.lease import PolicyBusy, policy_lease
from reclaim.usecases.perform_removal import RemovalStatus, dead_claim, hand_back
from reclaim.usecases.release import release_due

log = logging.getLogger("reclaim")


def recover_claims(ctx: Context, now: datetime) -> int:
    """Hand back every claim older than its lease to be re-decided; how many."""
    if ctx.kill_switch:
        return 0  # nothing is removed now; the next tick after the switch is off sends them
    lease = ctx.limits.claim_lease
    stale = [
        r
        for r in ctx.store.requests(None, [RequestState.REMOVING])
        if r.policy in ctx.policies and now - r.updated_at >= lease
    ]
    handed = [hand_back(ctx, r, dead_claim(r), now).status for r in stale]
    return handed.count(RemovalStatus.HANDED_BACK)


def recover_and_redecide(ctx: Context, now: datetime) -> int:
    """recover_claims, then re-decide at once the policies whose claims were handed back (the
    CLI's `work`, which no expiry tick may follow); how many were recovered. A policy whose
    lease another run holds is left to that run's or the next tick's re-decision."""
    stale = {r.policy for r in ctx.store.requests(None, [RequestState.REMOVING])}
    recovered = recover_claims(ctx, now)
    if recovered:
        redecide(ctx, stale, now)
    return recovered


def redecide(ctx: Context, policies: Iterable[str], now: datetime) -> None:
    """Re-decide and release what is due in these policies now, as the expiry tick would (the
    CLI's `work`, after handing back claims or meeting a dead worker's message)."""
    for name in sorted(set(policies) & set(ctx.policies)):
        try:
            with policy_lease(ctx, name, now, "work"):
                release_due(ctx, ctx.policies[name], now)
        except PolicyBusy as busy:
            log.info("re-deciding the due removals of %s waits: %s", name, busy)
