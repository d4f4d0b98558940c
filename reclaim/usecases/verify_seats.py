"""verify_seats: after a removal, whether Entra ID really released the licence seat.

Run by the expiry tick (expire_requests), never on the removal path: the removal stays one
directory write, and the check waits `licence.seat_check_after` for licence processing, then asks
on every tick (20 users to a Graph $batch) until the answer settles:

- freed: the SKU is no longer assigned to the user            -> SEAT_CHECKED, seat_freed True
- still licensed: a direct assignment or another group has it -> SEAT_CHECKED, seat_freed False
- still pending after `licence.seat_check_within`, or the user
  cannot be found in Entra ID                                 -> SEAT_CHECKED, seat_freed None

Policies without an Entra SKU (Policy.seat_sku) are not checked: their removals stay unverified.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.policy import DirectoryKind, Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.ports import SeatQuery, SeatResult, SeatState
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context

log = logging.getLogger("reclaim")

# After seat_check_within, the first tick records a still-unsettled seat as unverified; a tick that
# comes this much later finds nothing to do (the removal stays unverified in the report anyway).
FINAL_CHECK_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class SeatReport:
    freed: int = 0
    still_licensed: int = 0
    unverified: int = 0
    waiting: int = 0  # licence processing not settled yet: asked again on the next tick

    @property
    def settled(self) -> int:
        return self.freed + self.still_licensed + self.unverified


def verify_seats(ctx: Context, policy: Policy, now: datetime) -> SeatReport:
    """Check the seats of this policy's recent removals that have no SEAT_CHECKED entry yet."""
    sku = policy.seat_sku
    if not sku:
        return SeatReport()
    after, within = policy.licence.seat_check_after, policy.licence.seat_check_within
    since = now - within - FINAL_CHECK_GRACE  # older removals had their final check already
    checked = {
        e.request_id
        for e in ctx.store.ledger(since, policy=policy.name)
        if e.outcome is LedgerOutcome.SEAT_CHECKED
    }
    due = [
        r
        for r in ctx.store.requests(policy.name, [RequestState.REMOVED])
        if r.id not in checked and since <= r.updated_at <= now - after
    ]
    if not due:
        return SeatReport()
    queries = {r.id: _query(r, sku, policy.directory.kind) for r in due}
    results = ctx.adapters.licences(policy).seats([q for q in queries.values() if q.user_id])
    counts: Counter[bool | str | None] = Counter()
    for request in due:
        result = results.get(request.id)
        if not queries[request.id].user_id:
            result = SeatResult(SeatState.UNKNOWN, "no object id or UPN to find the user by")
        if result is None or result.state is SeatState.PENDING:
            if now - request.updated_at < within:
                counts["waiting"] += 1
                continue
            why = result.detail if result else "Entra ID could not be read"
            result = SeatResult(
                SeatState.UNKNOWN, f"not settled within {format_duration(within)}: {why}"
            )
        freed = {SeatState.FREED: True, SeatState.STILL_LICENSED: False}.get(result.state)
        counts[freed] += 1
        what = {True: "seat freed", False: "still licensed", None: "unverified"}[freed]
        ledger(
            ctx,
            request,
            LedgerOutcome.SEAT_CHECKED,
            now,
            f"{what}: {result.detail}",
            seat_freed=freed,
        )
    report = SeatReport(counts[True], counts[False], counts[None], counts["waiting"])
    log.info("seats of %s: %s", policy.name, report)
    return report


def _query(request: Request, sku: str, kind: DirectoryKind) -> SeatQuery:
    user = request.user
    if kind is DirectoryKind.ENTRA:
        return SeatQuery(request.id, user.object_id or user.upn, sku, request.group)
    if kind is DirectoryKind.ENTRA_LICENCE:
        return SeatQuery(request.id, user.object_id or user.upn, sku, direct=True)
    # An AD user is found in Entra ID by the UPN it syncs with; its AD objectGUID is not an
    # Entra object id, and the synced group's Entra id is not known here.
    return SeatQuery(request.id, user.upn, sku)
