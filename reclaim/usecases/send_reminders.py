"""send_reminders: remind the users who have not answered yet (campaign.reminders), on the tick.

Each reminder is claimed in the ledger before the channel is called: its id,
`<request id>:REMINDED:<n>`, is idempotent, so of two overlapping ticks only the one whose entry
was new sends it, and a tick that dies between the claim and the send never sends it twice.
The channel's "no" (or a channel that is down) is recorded as REMINDER_FAILED and not retried: a
reminder is a courtesy, and the deadline, which it never moves, still stands.
"""

from __future__ import annotations

import logging
from datetime import datetime

from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.policy import Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.domain.reminders import DueReminder, due_reminder
from reclaim.errors import ReclaimError
from reclaim.ports import AskResult
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context

log = logging.getLogger("reclaim")


def send_reminders(ctx: Context, policy: Policy, now: datetime) -> int:
    """Send each PENDING request's latest due reminder once; return how many were sent."""
    offsets = policy.campaign.reminders
    if not (policy.ask_permission and offsets):
        return 0
    if ctx.kill_switch and policy.enforcing:
        return 0  # nothing is asked while it is on; a reminder whose window passes is not sent
    claimed: list[tuple[Request, DueReminder]] = []
    for request in ctx.store.requests(policy.name, [RequestState.PENDING]):
        due = due_reminder(offsets, request.deadline, now)
        if due is None:
            continue
        detail = f"{due.describe()} through {policy.campaign.channel.value}"
        entry_id = f"{request.id}:{LedgerOutcome.REMINDED.value}:{due.number}"
        if ledger(ctx, request, LedgerOutcome.REMINDED, now, detail, entry_id=entry_id):
            claimed.append((request, due))
    if not claimed:
        return 0
    try:
        result = ctx.adapters.campaign(policy).remind(policy, claimed, now)
    except ReclaimError as error:
        log.warning("reminders of %s not sent: %s", policy.name, error)
        result = AskResult(not_asked={r.id: f"not sent: {error}" for r, _ in claimed})
    for request, due in claimed:
        if request.id in result.asked:
            continue
        why = result.not_asked.get(request.id, "the channel gave no result")
        ledger(
            ctx,
            request,
            LedgerOutcome.REMINDER_FAILED,
            now,
            f"reminder {due.number} of {due.of}: {why}",
            entry_id=f"{request.id}:{LedgerOutcome.REMINDER_FAILED.value}:{due.number}",
        )
    return len(result.asked)
