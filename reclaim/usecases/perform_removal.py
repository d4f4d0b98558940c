"""perform_removal: one removal from one group, once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from reclaim.domain.breaker import Passage
from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import FINAL_STATES, Request, RequestState, transition
from reclaim.domain.policy import Policy
from reclaim.domain.records import (
    LedgerOutcome,
    MessageError,
    RemovalMessage,
)
from reclaim.errors import (
    ConfigurationError,
    DirectoryOutage,
    ReclaimError,
    TransientError,
    UserNotFound,
)
from reclaim.ports import (
    Directory,
    RemovalOutcome,
    RemovalResult,
)
from reclaim.usecases import breaker
from reclaim.usecases.bookkeeping import cancel, ledger
from reclaim.usecases.context import KILL_SWITCH_DELAY, Context
from reclaim.usecases.escalation import yes_protects
from reclaim.usecases.tell_removed import tell_removed

# Outcomes stored on the request first, then appended to the ledger.
_LEDGERED_STATES = frozenset(
    {
        RequestState.REMOVED,
        RequestState.NOT_MEMBER,
        RequestState.FAILED,
        RequestState.REQUESTED,
        RequestState.CANCELLED,
    }
)

log = logging.getLogger("reclaim")


class RemovalStatus(StrEnum):
    REMOVED = "removed"
    NOT_MEMBER = "not-member"
    REQUESTED = "requested"
    FAILED = "failed"  # recorded FAILED; the message belongs in the poison queue
    CANCELLED = "cancelled"
    DEFERRED = "deferred"  # sent back to the queue to wait (kill switch, throttling)
    SKIPPED = "skipped"  # already handled: a duplicate message
    HANDED_BACK = "handed-back"  # the decision was too old: DUE again, re-decided by a tick


@dataclass(frozen=True)
class RemovalCommand:
    message: RemovalMessage
    final_attempt: bool = False  # the host will not deliver this message again


@dataclass(frozen=True)
class RemovalReport:
    status: RemovalStatus
    detail: str = ""


def perform_removal(ctx: Context, command: RemovalCommand, now: datetime) -> RemovalReport:
    """Remove one user from one group, once: idempotent by request id, re-checked before acting."""
    message = command.message
    request = ctx.store.get_request(message.request_id, message.policy)
    if request is None:
        raise MessageError(f"unknown request {message.request_id!r}")
    if request.state in FINAL_STATES or request.state in (
        RequestState.REMOVED,
        RequestState.REQUESTED,
    ):
        if request.state in _LEDGERED_STATES:
            # Delivered again after the outcome was stored but before its ledger entry was
            # (storage failed in between): write it now; ledger ids make this a no-op otherwise.
            ledger(
                ctx, request, LedgerOutcome(request.state.value), request.updated_at, request.detail
            )
        return RemovalReport(RemovalStatus.SKIPPED, f"already {request.state.value}")
    if request.state in (RequestState.PENDING, RequestState.AWAITING_APPROVAL):
        return RemovalReport(RemovalStatus.SKIPPED, "still waiting for an answer")
    if request.state is RequestState.NOTICE:  # an old message: the tick re-decides it after
        return RemovalReport(RemovalStatus.SKIPPED, "waiting out its notice")
    if request.state is RequestState.DUE:
        # A message from before a hand-back (or a resend): the tick that re-decides the request
        # sends a new one if it still holds.
        return RemovalReport(RemovalStatus.SKIPPED, "waiting for a tick to re-decide it")
    lease = ctx.limits.claim_lease
    if request.state is RequestState.REMOVING and now - request.updated_at < lease:
        # Another worker holds it; come back after its claim would have expired.
        ctx.queue.enqueue(message, delay=lease)
        return RemovalReport(RemovalStatus.DEFERRED, "being removed by another worker")
    policy = ctx.policies.get(request.policy)
    if policy is None:
        cancel(ctx, request, f"policy {request.policy!r} is no longer configured", now)
        return RemovalReport(RemovalStatus.CANCELLED, "policy no longer configured")
    if ctx.kill_switch:
        ctx.queue.enqueue(message, delay=KILL_SWITCH_DELAY)
        return RemovalReport(RemovalStatus.DEFERRED, "kill switch is on")
    if request.not_before is not None and now < request.not_before:
        # Never before the date her notice told her, whichever clock released it.
        ctx.queue.enqueue(message, delay=_until(request.not_before, now))
        return RemovalReport(RemovalStatus.DEFERRED, f"notice runs until {request.not_before}")
    if request.state is RequestState.REMOVING:
        # Its worker died holding the claim. Taking it over could remove her a second time (our
        # write went out and someone re-added her since) or act on a write nobody knows the
        # effect of: a tick re-decides it on fresh data, after settling what that write did
        # (usecases/own_writes.py). Its attempts stay counted, so it still ends.
        return hand_back(ctx, request, dead_claim(request), now)
    if _too_old(message, policy, now):
        decided = (
            f"{message.decided_at:%Y-%m-%d %H:%M} UTC" if message.decided_at else "an unknown time"
        )
        why = (
            f"handed back by the worker: the decision of {decided} is older than "
            f"decision_max_age {format_duration(policy.decision_max_age)}"
        )
        return hand_back(ctx, request, why, now)
    if request.state is RequestState.QUEUED:
        yes_at = ctx.store.latest_yes(policy.name, request.state_key)
        if yes_at is not None and yes_protects(policy, request, yes_at, now):
            cancel(ctx, request, f"answered yes on {yes_at:%Y-%m-%d}", now)
            return RemovalReport(RemovalStatus.CANCELLED, "answered yes")
    passage, seen = breaker.admit(ctx, policy, now)
    if passage is Passage.CANCEL:
        why = f"{seen.describe()}; waited longer than {ctx.limits.breaker.max_wait}"
        cancel(ctx, request, why, now)
        return RemovalReport(RemovalStatus.CANCELLED, why)
    if passage is Passage.WAIT:
        ctx.queue.enqueue(message, delay=_until(seen.retry_at, now))
        return RemovalReport(RemovalStatus.DEFERRED, seen.describe())
    # Every deferral above never reached the directory, so none counts as an attempt (nor do
    # removals the rate holds back: they wait as DUE before release, usecases/release.py).

    exhausted = request.attempts >= ctx.limits.max_attempts
    claimed = transition(
        request, RequestState.REMOVING, now, attempts=request.attempts + (not exhausted)
    )
    if not ctx.store.update_request(claimed):
        return RemovalReport(RemovalStatus.SKIPPED, "claimed by another worker")
    if exhausted:  # the workers of the earlier attempts died holding it
        last = f": {request.detail}" if request.detail else ""
        return fail(
            ctx, claimed, f"gave up after retries ({request.attempts} attempt(s)){last}", now
        )
    user_gone = False  # no such user: not a membership our write could have ended
    marker = _SendMarker(ctx, claimed, now)
    try:
        result = _remove(ctx.adapters.directory(policy), claimed, marker)
    except _ClaimLost:
        return RemovalReport(RemovalStatus.SKIPPED, "claimed by another worker; nothing sent")
    except UserNotFound as error:
        result = RemovalResult(RemovalOutcome.NOT_MEMBER, f"user not found: {error}")
        user_gone = True
    except ConfigurationError as error:
        # The operation itself was refused: every removal would be, so they wait together.
        halt = breaker.refused(ctx, policy, error, now)
        # A refused call changed nothing: it is the breaker's attempt, not this request's.
        _release(ctx, marker.request, f"waiting: {error}", now, unsent=request, refused=True)
        breaker.hold_waiting(ctx, policy, halt, now)
        ctx.queue.enqueue(message, delay=_until(halt.retry_at, now))
        return RemovalReport(RemovalStatus.DEFERRED, halt.describe())
    except TransientError as error:
        down = (
            breaker.outage(ctx, policy, error, now) if isinstance(error, DirectoryOutage) else None
        )
        if command.final_attempt or claimed.attempts >= ctx.limits.max_attempts:
            return fail(
                ctx,
                marker.request,
                f"gave up after retries ({claimed.attempts} attempt(s)): {error}",
                now,
            )
        # A write that certainly never went out cannot explain a later "not a member".
        _release(
            ctx, marker.request, f"retrying: {error}", now, unsent=request if error.unsent else None
        )
        if down is not None and down.is_open:
            breaker.hold_waiting(ctx, policy, down, now)
        delay = timedelta(seconds=30 if error.retry_after is None else error.retry_after)
        ctx.queue.enqueue(message, delay=delay)
        return RemovalReport(RemovalStatus.DEFERRED, str(error))
    except ReclaimError as error:
        return fail(ctx, marker.request, str(error), now)
    breaker.answered(ctx, policy, seen)
    if (
        result.outcome is RemovalOutcome.NOT_MEMBER
        and not user_gone
        and (result.after_own_write or request.unanswered_writes > 0)
    ):
        # Our own earlier write (its answer lost) took the user out: a removal, restorable.
        said = f" ({result.detail})" if result.detail else ""
        result = replace(
            result,
            outcome=RemovalOutcome.REMOVED,
            detail=f"confirmed absent after our write{said}",
        )
    finish_removal(ctx, marker.request, result, now)
    if result.outcome is RemovalOutcome.REMOVED:
        tell_removed(ctx, policy, request.id, now)  # the appeal link, where the policy has one
    status = {
        RemovalOutcome.REMOVED: RemovalStatus.REMOVED,
        RemovalOutcome.NOT_MEMBER: RemovalStatus.NOT_MEMBER,
        RemovalOutcome.REQUESTED: RemovalStatus.REQUESTED,
        RemovalOutcome.FAILED: RemovalStatus.FAILED,
    }[result.outcome]
    return RemovalReport(status, result.detail)


def _too_old(message: RemovalMessage, policy: Policy, now: datetime) -> bool:
    """The worker reads no usage: it acts only on a decision younger than decision_max_age."""
    return message.decided_at is None or now - message.decided_at > policy.decision_max_age


def dead_claim(request: Request) -> str:
    """Why a claim past its lease goes back to DUE, with what is known of its write."""
    sent = request.write_sent_at
    write = (
        f"its write, sent at {sent:%Y-%m-%d %H:%M:%S} UTC, was never answered"
        if request.unanswered_writes and sent is not None
        else "its write was never sent"
    )
    return (
        f"handed back: the worker that claimed it at {request.updated_at:%Y-%m-%d %H:%M:%S} UTC "
        f"stopped before an outcome ({write}; {request.attempts} attempt(s) counted)"
    )


def hand_back(ctx: Context, request: Request, why: str, now: datetime) -> RemovalReport:
    """QUEUED or REMOVING back to DUE; the next expiry tick re-decides it (usecases/release.py)."""
    why = f"{why}; the next expiry tick re-decides it"
    due = transition(request, RequestState.DUE, now, detail=why)
    if not ctx.store.update_request(replace(due, deadline=request.deadline or now)):
        return RemovalReport(RemovalStatus.SKIPPED, "moved on by another writer")
    log.info("removal %s of %s %s", request.id, request.user.label, due.detail)
    return RemovalReport(RemovalStatus.HANDED_BACK, due.detail)


def _until(moment: datetime | None, now: datetime) -> timedelta:
    return max(timedelta(seconds=1), (moment or now) - now)


def _release(
    ctx: Context,
    claimed: Request,
    why: str,
    now: datetime,
    *,
    unsent: Request | None = None,
    refused: bool = False,
) -> None:
    """Back to QUEUED for another delivery. `unsent`: the request before this call, when the
    call proved nothing went out: its marker of a sent write is taken back (and, `refused`, the
    attempt too: a refused operation is the breaker's attempt, not this request's)."""
    released = transition(claimed, RequestState.QUEUED, now, detail=why)
    if unsent is not None:
        released = replace(
            released,
            attempts=unsent.attempts if refused else released.attempts,
            unanswered_writes=unsent.unanswered_writes,
            write_sent_at=unsent.write_sent_at,
        )
    ctx.store.update_request(released)


class _ClaimLost(Exception):
    """The claim moved on (handed back, taken by another worker) before the write went out."""


class _SendMarker:
    """`sending` of one claim: right before the write goes out, the request stores that it did
    (once per claim), so a worker that dies after it leaves "sent, never answered" behind, and
    one that dies before leaves "never sent"."""

    def __init__(self, ctx: Context, claimed: Request, now: datetime) -> None:
        self.ctx = ctx
        self.request = claimed  # the latest stored version
        self.now = now
        self.sent = False

    def __call__(self) -> None:
        if self.sent:
            return
        marked = replace(
            transition(
                self.request,
                RequestState.REMOVING,
                self.now,
                unanswered_writes=self.request.unanswered_writes + 1,
            ),
            write_sent_at=self.now,
        )
        if not self.ctx.store.update_request(marked):
            raise _ClaimLost(self.request.id)
        self.request, self.sent = marked, True


def _remove(directory: Directory, request: Request, sending: _SendMarker) -> RemovalResult:
    return directory.remove(
        request.group,
        request.user,
        request_id=request.id,
        run_id=request.run_id,
        sending=sending,
    )


def finish_removal(ctx: Context, request: Request, result: RemovalResult, now: datetime) -> int:
    to = RequestState(result.outcome.value)
    done = transition(request, to, now, detail=result.detail)
    with ctx.store.atomic():  # the outcome and its ledger entry: one commit on SQLite
        if not ctx.store.update_request(done):
            return 0
        ledger(ctx, done, LedgerOutcome(to.value), now, result.detail)
    return 1


def fail(ctx: Context, request: Request, why: str, now: datetime) -> RemovalReport:
    failed = transition(request, RequestState.FAILED, now, detail=why)
    with ctx.store.atomic():
        if ctx.store.update_request(failed):
            ledger(ctx, failed, LedgerOutcome.FAILED, now, why)
    log.error("removal %s of %s failed: %s", request.id, request.user.label, why)
    return RemovalReport(RemovalStatus.FAILED, why)
