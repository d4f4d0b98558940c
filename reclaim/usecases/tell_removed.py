"""tell_removed: after a removal, the removal message with its appeal link (appeal_within).

The worker calls it once the directory confirmed a removal. Where the policy offers appeals and
its channel reaches people with signed links (email, Teams: reclaim.ports.MessageChannel), the
user gets messages.removal: the licence was removed, and a link that gives it back without an
admin until the removal plus appeal_within. The ledger entry REMOVAL_SENT, appended before the
channel is called, is the claim (a message delivered twice to the worker mails once); a channel
that refuses is recorded as REMOVAL_SEND_FAILED. Never raises: the removal itself is done.
"""

from __future__ import annotations

import logging
from datetime import datetime

from reclaim.domain import messages
from reclaim.domain.appeal import recipient
from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.policy import Policy
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ReclaimError
from reclaim.ports import MessageChannel
from reclaim.usecases.bookkeeping import ledger
from reclaim.usecases.context import Context

log = logging.getLogger("reclaim")


def tell_removed(ctx: Context, policy: Policy, request_id: str, now: datetime) -> bool:
    """Send the removal message of REMOVED `request_id`; whether it was sent now."""
    if policy.appeal_within is None or not policy.ask_permission:
        return False
    request = ctx.store.get_request(request_id, policy.name)
    if request is None or request.state is not RequestState.REMOVED:
        return False
    message = messages.removal(policy, request, recipient(request))
    if message is None:
        return False
    try:
        channel = ctx.adapters.campaign(policy)
    except ReclaimError as error:
        log.warning("removal of %s not told: %s", request.id, error)
        return False
    if not isinstance(channel, MessageChannel):  # webhook, Nexthink: the receiver tells her
        return False
    window = format_duration(policy.appeal_within)
    detail = f"told {message.recipient} of the removal, with an appeal link for {window}"
    if not ledger(ctx, request, LedgerOutcome.REMOVAL_SENT, now, detail):
        return False  # told already (the message reached the worker twice)
    try:
        result = channel.send([message])
        refused = result.not_asked.get(request.id, "")
    except ReclaimError as error:
        refused = f"not sent: {error}"
    if refused:
        log.warning("removal of %s not told: %s", request.id, refused)
        ledger(ctx, request, LedgerOutcome.REMOVAL_SEND_FAILED, now, refused)
        return False
    return True
