"""record_answer: a yes or a no from a campaign channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.limits import id_problem, justification_problem, time_problem
from reclaim.domain.model import Answer, AnswerValue
from reclaim.domain.policy import Policy
from reclaim.domain.policy.escalation import EscalateOn
from reclaim.domain.records import (
    LedgerOutcome,
)
from reclaim.usecases.bookkeeping import cancel, ledger
from reclaim.usecases.context import Context, InputError
from reclaim.usecases.escalation import await_approval, escalates
from reclaim.usecases.send_notices import removal_decided


@dataclass(frozen=True)
class AnswerCommand:
    """An answer by request id, or by policy and user identifier (UPN, mail, SID, ...)."""

    value: AnswerValue
    answered_at: datetime
    request_id: str = ""
    policy: str = ""
    user: str = ""
    source: str = "webhook"
    justification: str = ""  # the reason given, "" when none
    answered_by: str = ""  # who answered, when the channel knows (the answer page's recipient)


# Channels that can refuse an answer at the door (the caller sees the error and can fix it).
REFUSING_SOURCES = frozenset({"webhook", "answer-page"})


class AnswerStatus(StrEnum):
    KEPT = "kept"  # yes: protected for keep_after_yes
    QUEUED = "queued"  # no: the removal is on its way (released by the next expiry tick)
    CANCELLED = "cancelled"  # yes after the removal was queued: it will not happen
    DUPLICATE = "duplicate"  # the same answer was recorded before: nothing changed
    RECORDED = "recorded"  # recorded; the request had already finished
    ESCALATED = "escalated"  # her approver decides now (escalation; usecases/escalation.py)


def find_request(ctx: Context, command: AnswerCommand) -> Request:
    """The request an answer is for; InputError names what is unknown (nothing is written)."""
    if command.request_id:
        request = ctx.store.get_request(command.request_id)
        if request is None:
            raise InputError(f"unknown request {command.request_id!r}")
        return request
    if command.policy not in ctx.policies:
        raise InputError(f"unknown policy {command.policy!r}")
    if not command.user:
        raise InputError("give request_id, or policy and user")
    candidates = ctx.store.user_requests(command.policy, command.user)
    if not candidates:
        raise InputError(f"no request for user {command.user!r} under policy {command.policy!r}")
    open_ones = [r for r in candidates if r.is_open]
    return (open_ones or candidates)[-1]


def check_answer(command: AnswerCommand, now: datetime) -> None:
    """InputError unless every value of `command` can be stored and read back (any channel)."""
    for name in ("request_id", "policy", "user"):
        if problem := id_problem(getattr(command, name)):
            raise InputError(f"{name}: {problem}")
    if problem := time_problem(command.answered_at, now):
        raise InputError(f"answered_at {command.answered_at.isoformat()}: {problem}")
    if problem := justification_problem(command.justification):
        raise InputError(f"justification: {problem}")


def unjustified_keep(policy: Policy, command: AnswerCommand) -> bool:
    """A "yes" without the justification the policy requires for keeping the licence."""
    return (
        policy.campaign.require_justification_for_keep
        and command.value is AnswerValue.YES
        and not command.justification.strip()
    )


def record_answer(ctx: Context, command: AnswerCommand, now: datetime) -> AnswerStatus:
    check_answer(command, now)
    request = find_request(ctx, command)
    policy = ctx.policies.get(request.policy)
    if policy is None:
        raise InputError(
            f"policy {request.policy!r} of request {request.id} is no longer configured"
        )
    if unjustified_keep(policy, command):
        if command.source in REFUSING_SOURCES:
            raise InputError(
                f"justification: policy {policy.name!r} requires one with a yes "
                "(campaign.require_justification_for_keep)"
            )
        # A pull channel cannot be told no: the yes is noted, but it is not recorded as an
        # answer, so it neither keeps the request nor counts as a recent yes for selection.
        ledger(
            ctx,
            request,
            LedgerOutcome.ANSWERED,
            now,
            f"not protecting: yes via {command.source} without a justification "
            "(campaign.require_justification_for_keep)",
            entry_id=f"{request.id}:unjustified-yes",
        )
        return AnswerStatus.RECORDED
    answer = Answer(
        request.id, command.value, command.answered_at, command.source, command.justification
    )
    if not ctx.store.record_answer(policy.name, request.state_key, answer):
        return AnswerStatus.DUPLICATE
    yes = command.value is AnswerValue.YES
    by = f" by {command.answered_by}" if command.answered_by else ""
    reason = f"{by}: {command.justification}" if command.justification else by
    # NOTICE: the removal is decided and she was told the date; a yes until then still keeps it.
    if request.state in (RequestState.PENDING, RequestState.NOTICE):
        ledger(
            ctx,
            request,
            LedgerOutcome.ANSWERED,
            now,
            f"{command.value.value} via {command.source}{reason}",
            # An answer during the notice follows the no (or the silence): both are in the history.
            entry_id=""
            if request.state is RequestState.PENDING
            else f"{request.id}:ANSWERED:notice:{command.value.value}",
        )
        trigger = EscalateOn.KEEP if yes else EscalateOn.NO
        # The approver decides instead (policy key escalation); during the notice a "yes"
        # keeps it, as policy.notice promises (PENDING -> AWAITING_APPROVAL only).
        if request.state is RequestState.PENDING and escalates(policy, trigger):
            why = f"answered {command.value.value}{reason}"
            if await_approval(ctx, policy, request, trigger, why, now) is not None:
                return AnswerStatus.ESCALATED
            return AnswerStatus.RECORDED
        if yes:
            kept = transition(request, RequestState.KEPT, now, detail="answered yes")
            if ctx.store.update_request(kept):
                return AnswerStatus.KEPT
        # Released by an expiry tick, which re-decides it first (after the notice, when the
        # policy gives one): the one path where the caps, the rolling rate and a fresh reading
        # apply to every removal.
        elif request.state is RequestState.PENDING and removal_decided(
            ctx, policy, request, QueueReason.CONSENT, "answered no", now
        ):
            return AnswerStatus.QUEUED
    elif (
        request.state in (RequestState.DUE, RequestState.QUEUED)
        and yes
        and cancel(ctx, request, f"answered yes after the removal was queued{reason}", now)
    ):
        return AnswerStatus.CANCELLED
    return AnswerStatus.RECORDED
