"""The life of one reclamation request, from the ask to the removal and its undo."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from reclaim.domain.approval import Approval
from reclaim.domain.model import User


class RequestState(StrEnum):
    PENDING = "PENDING"  # asked, waiting for an answer
    # escalation: the answer (or the silence) waits for her approver's decision (approval.py)
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    KEPT = "KEPT"  # answered yes
    LAPSED = "LAPSED"  # deadline passed and on_no_response is keep
    NOTICE = "NOTICE"  # removal decided; the user is told the date and has until then (notice)
    DUE = "DUE"  # answered no, past its deadline, or handed back: waits for a tick to re-decide it
    QUEUED = "QUEUED"  # released by a fresh decision: removal enqueued
    REMOVING = "REMOVING"  # claimed by one worker; others leave it alone until the claim expires
    REQUESTED = "REQUESTED"  # removal handed to a Nexthink remote action, outcome not known yet
    REMOVED = "REMOVED"
    NOT_MEMBER = "NOT_MEMBER"  # already gone when the removal ran
    FAILED = "FAILED"
    RESTORED = "RESTORED"
    CANCELLED = "CANCELLED"  # became active, left the group, or was protected before removal


class QueueReason(StrEnum):
    CONSENT = "consent"  # answered no
    NO_RESPONSE = "no-response"  # deadline passed, on_no_response: reclaim
    NO_ASK = "no-ask"  # ask_permission is false
    DISABLED = "disabled"  # a disabled account, disabled_accounts: reclaim (never asked)
    APPROVER = "approver"  # released by her approver, or by the approver's silence (escalation)


OPEN_STATES = frozenset(
    {
        RequestState.PENDING,
        RequestState.AWAITING_APPROVAL,
        RequestState.NOTICE,
        RequestState.DUE,
        RequestState.QUEUED,
        RequestState.REMOVING,
        RequestState.REQUESTED,
    }
)
FINAL_STATES = frozenset(
    {
        RequestState.KEPT,
        RequestState.LAPSED,
        RequestState.NOT_MEMBER,
        RequestState.FAILED,
        RequestState.RESTORED,
        RequestState.CANCELLED,
    }
)

_ALLOWED: dict[RequestState, frozenset[RequestState]] = {
    RequestState.PENDING: frozenset(
        {
            RequestState.KEPT,
            RequestState.DUE,
            RequestState.QUEUED,
            RequestState.LAPSED,
            RequestState.CANCELLED,
            RequestState.AWAITING_APPROVAL,
            RequestState.NOTICE,  # the removal is decided, and policy.notice tells her first
        }
    ),
    # The approver keeps (KEPT), releases or her silence reclaims (DUE: re-decided by a tick;
    # NOTICE first with policy.notice), her silence keeps (LAPSED); -> itself stores the
    # approvers looked up and asked.
    RequestState.AWAITING_APPROVAL: frozenset(
        {
            RequestState.AWAITING_APPROVAL,
            RequestState.KEPT,
            RequestState.DUE,
            RequestState.NOTICE,
            RequestState.LAPSED,
            RequestState.CANCELLED,
        }
    ),
    # NOTICE -> NOTICE claims, then records, a delivery of the notice (send_notices); -> DUE once
    # its date has passed; -> KEPT: she answered yes during the notice.
    RequestState.NOTICE: frozenset(
        {RequestState.NOTICE, RequestState.DUE, RequestState.KEPT, RequestState.CANCELLED}
    ),
    # DUE -> DUE records why a tick held it back (a cap, the rate, a halt).
    # DUE -> REMOVED: re-decided after a write of ours whose answer was lost had taken her out;
    # -> NOT_MEMBER: gone, after a worker had claimed it but before any write of ours was sent.
    RequestState.DUE: frozenset(
        {
            RequestState.DUE,
            RequestState.QUEUED,
            RequestState.CANCELLED,
            RequestState.REMOVED,
            RequestState.NOT_MEMBER,
        }
    ),
    # QUEUED -> DUE: the worker found the decision too old and handed it back to be re-decided.
    # QUEUED -> REMOVED: a run found her gone after a write of ours whose answer was lost;
    # -> NOT_MEMBER: gone after a claimed attempt that sent nothing.
    RequestState.QUEUED: frozenset(
        {
            RequestState.REMOVING,
            RequestState.DUE,
            RequestState.CANCELLED,
            RequestState.REMOVED,
            RequestState.NOT_MEMBER,
        }
    ),
    # REMOVING -> REMOVING stores that the write is being sent; -> QUEUED releases the claim;
    # -> CANCELLED: the directory's breaker stayed open longer than the removal may wait.
    # REMOVING -> DUE: a dead worker's claim, handed back to be re-decided (never taken over).
    RequestState.REMOVING: frozenset(
        {
            RequestState.REMOVING,
            RequestState.DUE,
            RequestState.CANCELLED,
            RequestState.QUEUED,
            RequestState.REMOVED,
            RequestState.NOT_MEMBER,
            RequestState.FAILED,
            RequestState.REQUESTED,
        }
    ),
    RequestState.REQUESTED: frozenset({RequestState.REMOVED, RequestState.FAILED}),
    RequestState.REMOVED: frozenset({RequestState.RESTORED}),
}


class InvalidTransition(ValueError):
    def __init__(self, request: Request, to: RequestState) -> None:
        super().__init__(
            f"request {request.id} for {request.user.label} is {request.state}; it cannot become {to}"
        )


@dataclass(frozen=True)
class Request:
    """One user's way from candidate to an outcome, under one policy; `id` is the idempotency key."""

    id: str
    policy: str
    group: str
    user: User
    state_key: str
    run_id: str
    state: RequestState
    created_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    reason: str = ""  # why it was selected, in words
    queue_reason: QueueReason | None = None
    detail: str = ""  # the last outcome's detail (error, Nexthink request id, ...)
    version: int = 0  # bumped by every transition; stores compare-and-set on it
    # Directory calls started for this removal, stored with the claim before each call: a
    # retry knows its write may have been applied, and the count gives every request an end.
    attempts: int = 0
    # Writes sent whose answer never came (counted just before the directory call, taken back
    # when the call proves nothing was sent): a later "not a member" is then our own write's work.
    unanswered_writes: int = 0
    approval: Approval | None = None  # escalation: the approver's part, from the escalation on
    # The removal date the notice told her (policy.notice): nothing removes her before it.
    not_before: datetime | None = None
    # When the latest of those writes was sent: a member the directory says joined after it was
    # taken out by it and re-added by someone else (usecases/own_writes.py).
    write_sent_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def transition(
    request: Request,
    to: RequestState,
    now: datetime,
    *,
    detail: str = "",
    queue_reason: QueueReason | None = None,
    attempts: int | None = None,
    unanswered_writes: int | None = None,
) -> Request:
    """The request in its new state; raises InvalidTransition for a move the lifecycle forbids."""
    if to not in _ALLOWED.get(request.state, frozenset()):
        raise InvalidTransition(request, to)
    return replace(
        request,
        state=to,
        updated_at=now,
        detail=detail or request.detail,
        queue_reason=queue_reason or request.queue_reason,
        version=request.version + 1,
        attempts=request.attempts if attempts is None else attempts,
        unanswered_writes=(
            request.unanswered_writes if unanswered_writes is None else unanswered_writes
        ),
    )
