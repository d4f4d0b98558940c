"""own_writes: what a write of ours whose answer never came did, settled on fresh data.

A request whose write was sent (stored just before the call, perform_removal's marker) and never
answered, because its worker died or its connection was lost, is settled by the first tick or run
that reads the group again, before anything else is decided for it (README "Our own writes"):
- she is no longer a member: that write took her out. REMOVED, "confirmed absent after our
  write", counted and restorable;
- she is a member the directory says joined at or after the write was sent: the write took her
  out and someone re-added her since. REMOVED too (the ledger stays the group's history), and
  she is not removed again on this request: the re-added membership is judged by the next run;
- she is a member since before the write (or the directory cannot say since when): the write did
  not take her out. The marker is cleared and she is decided afresh like any due request.
A request a worker had claimed without sending anything whose user is gone is NOT_MEMBER: gone
before reclaim's first write.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from reclaim.domain.lifecycle import Request
from reclaim.domain.selection import Decision
from reclaim.ports import RemovalOutcome, RemovalResult
from reclaim.usecases.context import Context
from reclaim.usecases.perform_removal import finish_removal

CONFIRMED = "confirmed absent after our write"


def settle_own_write(
    ctx: Context, request: Request, decision: Decision | None, now: datetime, found_by: str
) -> Request | None:
    """The request to go on deciding, or None when it is settled (REMOVED, or moved on by
    another writer). `decision`: this reading's decision about her, None if not a member."""
    if decision is None and request.attempts and not request.unanswered_writes:
        # A worker had claimed it, and died or failed before sending anything: she was gone
        # before reclaim's first write, which someone else's change explains.
        detail = f"not a member; no write of ours had gone out ({found_by})"
        finish_removal(ctx, request, RemovalResult(RemovalOutcome.NOT_MEMBER, detail), now)
        return None
    if not request.unanswered_writes:
        return request
    sent = request.write_sent_at
    if decision is None:
        detail = f"{CONFIRMED} ({found_by})"
        finish_removal(ctx, request, RemovalResult(RemovalOutcome.REMOVED, detail), now)
        return None
    joined = decision.member.added_at
    if joined is not None and sent is not None and joined >= sent:
        detail = (
            f"removed by our write of {sent:%Y-%m-%d %H:%M:%S} UTC, whose answer was lost; "
            f"re-added by someone else at {joined:%Y-%m-%d %H:%M:%S} UTC "
            f"({decision.member.added_from or 'the directory'}): not removed again ({found_by})"
        )
        finish_removal(ctx, request, RemovalResult(RemovalOutcome.REMOVED, detail), now)
        return None
    since = (
        f"a member since {joined:%Y-%m-%d %H:%M:%S} UTC"
        if joined
        else "still a member; the directory does not say since when"
    )
    settled = replace(
        request,
        unanswered_writes=0,
        write_sent_at=None,
        version=request.version + 1,
        updated_at=now,
        detail=f"our unanswered write did not take her out ({since}); decided afresh",
    )
    return settled if ctx.store.update_request(settled) else None
