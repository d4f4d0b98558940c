"""expire_requests: the expiry tick (answers pulled, deadlines, releases, lost messages)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reclaim.domain.lifecycle import RequestState, transition
from reclaim.domain.policy import Channel, OnNoResponse, Policy
from reclaim.domain.records import (
    LedgerOutcome,
)
from reclaim.errors import ReclaimError
from reclaim.usecases import breaker
from reclaim.usecases.ask_approvers import ask_approvers
from reclaim.usecases.bookkeeping import ledger, removal_message
from reclaim.usecases.context import Context, InputError
from reclaim.usecases.escalation import apply_approver_defaults, escalate_silent
from reclaim.usecases.lease import PolicyBusy, policy_lease
from reclaim.usecases.perform_removal import finish_removal
from reclaim.usecases.record_answer import AnswerCommand, AnswerStatus, record_answer
from reclaim.usecases.recover_claims import recover_claims
from reclaim.usecases.release import Release, due_requests, release_due
from reclaim.usecases.retention import apply_retention
from reclaim.usecases.send_notices import send_notices
from reclaim.usecases.send_reminders import send_reminders
from reclaim.usecases.verify_seats import verify_seats

log = logging.getLogger("reclaim")


@dataclass(frozen=True)
class ExpiryReport:
    answers_pulled: int = 0
    queued: int = 0  # released: re-decided on fresh data, within the caps and the rate
    lapsed: int = 0
    finished: int = 0
    resent: int = 0  # QUEUED requests whose message was lost, sent again
    errors: list[str] = field(default_factory=list)
    seats_checked: int = 0  # removals whose seat Entra ID confirmed freed, still licensed or not
    cancelled: int = 0  # re-decided and no longer removable, or due longer than max_wait
    held: int = 0  # due, but held back (the rate, a halt, the kill switch); they wait
    halted: list[str] = field(default_factory=list)  # policy: why its releases were halted
    busy: list[str] = field(default_factory=list)  # policies whose lease another run held
    recovered: int = 0  # claims of workers that died, handed back (recover_claims)
    compacted: int = 0  # decision records and finished requests past the retention (retention)
    reminded: int = 0  # reminders sent to users who have not answered yet (send_reminders)
    # escalation: silent users sent to their approver, approvers asked (ask_approvers), and
    # approvers' silences past their deadline given the policy's default
    escalated: int = 0
    approvals_asked: int = 0
    approver_defaults: int = 0
    noticed: int = 0  # notices of a decided removal delivered (send_notices)


# A QUEUED request this old has lost its message (the send failed after the request was stored);
# the worker is idempotent by request id, so sending it again is safe.
RESEND_AFTER = timedelta(hours=1)


def expire_requests(ctx: Context, now: datetime) -> ExpiryReport:
    """Pull answers from channels that cannot push, lapse the silent where silence keeps,
    remind the silent whose reminder is due (send_reminders), re-decide and release what is due (release.py), settle removals handed to an asynchronous
    executor, resend lost removal messages, verify in Entra ID that removals freed their seats
    (verify_seats); first, hand back the claims of workers that died (recover_claims)."""
    pulled = lapsed = finished = resent = seats_checked = compacted = reminded = 0
    escalated = approvals_asked = approver_defaults = noticed = 0
    released = Release()
    errors: list[str] = []
    halted: list[str] = []
    busy: list[str] = []
    try:  # first, so that this tick re-decides them
        recovered = recover_claims(ctx, now)
    except ReclaimError as error:
        recovered = 0
        errors.append(f"recovering claims: {error}")
    for policy in ctx.policies.values():
        try:
            pulled += _pull_answers(ctx, policy, now)
            # escalation.py, ask_approvers.py: before the lapse and the release, so silence the
            # policy escalates goes to the approver, and an approver's default is released now.
            escalated += escalate_silent(ctx, policy, now)
            approver_defaults += apply_approver_defaults(ctx, policy, now)
            approvals_asked += ask_approvers(ctx, policy, now)
            lapsed += _lapse_silent(ctx, policy, now)
            reminded += send_reminders(ctx, policy, now)  # after the answers: none to who answered
            noticed += send_notices(ctx, policy, now).sent  # before the release: ended ones are due
            if due_requests(ctx, policy, now):
                try:
                    with policy_lease(ctx, policy.name, now, "expiry"):
                        result = release_due(ctx, policy, now)
                except PolicyBusy as error:
                    busy.append(f"{policy.name}: {error}")
                    log.info("expiry of %s waits: %s", policy.name, error)
                    result = Release()
                if result.halt is not None:
                    halted.append(f"{policy.name}: {result.halt.check}: {result.halt.reason}")
                released = Release(
                    released.released + result.released,
                    released.cancelled + result.cancelled,
                    released.held + result.held,
                )
            finished += _settle_requested(ctx, policy, now)
            resent += _resend_lost(ctx, policy, now)
            seats_checked += verify_seats(ctx, policy, now).settled
            compaction = apply_retention(ctx, policy, now)
            compacted += compaction.decisions + compaction.requests
        except ReclaimError as error:
            errors.append(f"{policy.name}: {error}")
            log.error("expiry of %s failed: %s", policy.name, error)
    return ExpiryReport(
        pulled,
        released.released,
        lapsed,
        finished,
        resent,
        errors,
        seats_checked=seats_checked,
        cancelled=released.cancelled,
        held=released.held,
        halted=halted,
        busy=busy,
        recovered=recovered,
        compacted=compacted,
        reminded=reminded,
        escalated=escalated,
        approvals_asked=approvals_asked,
        approver_defaults=approver_defaults,
        noticed=noticed,
    )


def _pull_answers(ctx: Context, policy: Policy, now: datetime) -> int:
    if not (policy.ask_permission and policy.campaign.channel is Channel.NEXTHINK):
        return 0
    pulled = 0
    since = now - policy.campaign.respond_within - timedelta(days=1)
    for answer in ctx.adapters.campaign(policy).answers(policy, since):
        command = AnswerCommand(
            answer.value,
            answer.answered_at,
            request_id=answer.request_id,
            policy=policy.name,
            user=answer.user,
            source="nexthink",
        )
        try:
            if record_answer(ctx, command, now) is not AnswerStatus.DUPLICATE:
                pulled += 1
        except InputError as error:
            log.info("answer not matched under %s: %s", policy.name, error)
    return pulled


def _lapse_silent(ctx: Context, policy: Policy, now: datetime) -> int:
    """on_no_response: keep: past the deadline the request lapses (nothing to re-decide)."""
    if policy.campaign.on_no_response is not OnNoResponse.KEEP:
        return 0
    lapsed = 0
    for request in ctx.store.requests(policy.name, [RequestState.PENDING]):
        if request.deadline is None or request.deadline > now:
            continue
        lapsed_request = transition(
            request, RequestState.LAPSED, now, detail="no answer by the deadline"
        )
        if ctx.store.update_request(lapsed_request):
            ledger(
                ctx, lapsed_request, LedgerOutcome.CANCELLED, now, "no answer; on_no_response: keep"
            )
            lapsed += 1
    return lapsed


def _resend_lost(ctx: Context, policy: Policy, now: datetime) -> int:
    if ctx.kill_switch or breaker.current(ctx, policy).is_open:
        return 0  # messages wait on purpose, and come back by themselves
    stale = [
        r
        for r in ctx.store.requests(policy.name, [RequestState.QUEUED])
        if now - r.updated_at >= RESEND_AFTER
    ]
    for request in stale:
        ctx.queue.enqueue(removal_message(request))
    return len(stale)


def _settle_requested(ctx: Context, policy: Policy, now: datetime) -> int:
    waiting = ctx.store.requests(policy.name, [RequestState.REQUESTED])
    if not waiting:
        return 0
    tracker = ctx.adapters.directory(policy)
    results = tracker.finished(waiting) if hasattr(tracker, "finished") else {}
    settled = 0
    for request in waiting:
        result = results.get(request.id)
        if result is not None:
            settled += finish_removal(ctx, request, result, now)
    return settled
