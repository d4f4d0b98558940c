"""Use cases: run_policy, record_answer, expire_requests, perform_removal, restore, report.

Triggers in reclaim/functions/ and the CLI build a command, call one of these, and map the result.
Each use case takes its outside systems through `Context` and the time as `now`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from reclaim.domain import guardrails
from reclaim.domain.guardrails import Halt
from reclaim.domain.lifecycle import FINAL_STATES, QueueReason, Request, RequestState, transition
from reclaim.domain.model import Answer, AnswerValue, Member, normalise_key
from reclaim.domain.policy import Channel, OnNoResponse, Policy
from reclaim.domain.records import (
    DecisionRecord,
    LedgerEntry,
    LedgerOutcome,
    MessageError,
    RemovalMessage,
    RunRecord,
    RunStatus,
)
from reclaim.domain.selection import Decision, DecisionKind, count_by_kind, index_usage, select
from reclaim.errors import ReclaimError, TransientError, UserNotFound
from reclaim.ports import (
    AddOutcome,
    Campaign,
    Directory,
    Notifier,
    RemovalOutcome,
    RemovalResult,
    StateStore,
    UsageSource,
    WorkQueue,
)

log = logging.getLogger("reclaim")

# A worker that claimed a removal and died leaves it REMOVING; after this long another may take over.
CLAIM_TIMEOUT = timedelta(minutes=5)
# With the kill switch on, removal messages wait and come back this much later.
KILL_SWITCH_DELAY = timedelta(minutes=15)


class Adapters(Protocol):
    """Builds the outside systems a policy names (reclaim/wiring.py in production)."""

    def directory(self, policy: Policy) -> Directory: ...

    def usage_source(self, policy: Policy) -> UsageSource: ...

    def campaign(self, policy: Policy) -> Campaign: ...


@dataclass
class Context:
    store: StateStore
    queue: WorkQueue
    adapters: Adapters
    policies: Mapping[str, Policy]
    kill_switch: bool = False
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    notifier: Notifier | None = None  # the admin digest after each recorded run


class InputError(ReclaimError):
    """A request names something reclaim does not know (unknown policy, user, request)."""


# ---- run_policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    run: RunRecord
    decisions: list[Decision]
    halt: Halt | None = None
    not_asked: dict[str, str] = field(default_factory=dict)  # user label -> why

    @property
    def halted(self) -> bool:
        return self.halt is not None


def _read_members(directory: Directory, policy: Policy) -> list[Member]:
    directory.check_group(policy.directory.group)
    members = list(directory.members(policy.directory.group))
    if not policy.exclude.groups:
        return members
    # A member's exclusion groups, found by listing each exclusion group once.
    holders: dict[str, set[str]] = {}
    for group in policy.exclude.groups:
        for other in directory.members(group):
            for value in other.user.identifiers().values():
                if value:
                    holders.setdefault(normalise_key(value), set()).add(group)
    return [
        replace(
            m,
            groups=frozenset().union(
                *(holders.get(normalise_key(v), set()) for v in m.user.identifiers().values() if v)
            ),
        )
        for m in members
    ]


def run_policy(
    ctx: Context, policy: Policy, now: datetime, *, read_only: bool = False
) -> RunOutcome:
    """Select, check the guardrails, then (enforce mode) ask or enqueue. `read_only` is `plan`:
    nothing is written. A dry-run policy records the run, its decisions and the snapshot only.
    A recorded run is followed by the admin digest, when one is configured."""
    outcome = _run_policy(ctx, policy, now, read_only=read_only)
    if not read_only and ctx.notifier is not None:
        try:
            ctx.notifier.notify(digest(ctx, policy, outcome))
        except ReclaimError as error:  # the run is done; a lost digest must not undo it
            log.warning("admin digest for %s not sent: %s", policy.name, error)
    return outcome


def digest(ctx: Context, policy: Policy, outcome: RunOutcome) -> str:
    """Counts, the halt reason, and removals that failed since the policy's previous run."""
    run = outcome.run
    counts = ", ".join(f"{kind} {n}" for kind, n in run.counts.items() if n)
    lines = [f"reclaim: {policy.name} ({policy.application}, {run.mode}) {run.status.value}"]
    lines.append(f"{run.members} members: {counts or 'none'}")
    if outcome.halt is not None:
        lines.append(f"HALTED by {outcome.halt.check}: {outcome.halt.reason}")
    if run.asked or run.enqueued:
        lines.append(f"asked {run.asked}, removals queued {run.enqueued}")
    earlier = [r.started_at for r in ctx.store.runs(policy=policy.name) if r.id != run.id]
    since = max(earlier, default=None)
    failures = [
        e for e in ctx.store.ledger(since, policy.name) if e.outcome is LedgerOutcome.FAILED
    ]
    if failures:
        lines.append(f"{len(failures)} removal(s) failed since the previous run:")
        lines += [f"- {e.user.label}: {e.detail}" for e in failures[:10]]
    return "\n".join(lines)


def _run_policy(ctx: Context, policy: Policy, now: datetime, *, read_only: bool) -> RunOutcome:
    run_id = ctx.new_id()

    def halted(check: str, reason: str, decisions: list[Decision], snapshot: bool) -> RunOutcome:
        halt = Halt(check, reason)
        run = _run_record(run_id, policy, now, RunStatus.HALTED, decisions, halt=halt)
        if not read_only:
            ctx.store.record_run(
                run, _decision_records(run, decisions), _snapshot(decisions) if snapshot else None
            )
            log.warning("run of %s halted by %s: %s", policy.name, check, reason)
        return RunOutcome(run, decisions, halt)

    try:
        members = _read_members(ctx.adapters.directory(policy), policy)
    except ReclaimError as error:
        return halted("directory", f"directory: {error}", [], snapshot=False)

    state = ctx.store.policy_state(policy.name, now)
    keys = {k for m in members if (k := m.user.key(policy.usage.match_on))}
    try:
        export = ctx.adapters.usage_source(policy).usage(policy, now)
        usage = index_usage(export.rows, keys, export.observed_at)
    except ReclaimError as error:
        return halted("usage_source", f"usage source: {error}", [], snapshot=False)

    decisions = select(members, usage, state, policy, now)
    halt = guardrails.check(
        decisions, usage, policy, now, kill_switch=ctx.kill_switch and policy.enforcing
    )
    if halt is not None:
        return halted(halt.check, halt.reason, decisions, snapshot=True)
    if read_only or not policy.enforcing:
        run = _run_record(run_id, policy, now, RunStatus.PLANNED, decisions)
        if not read_only:
            ctx.store.record_run(run, _decision_records(run, decisions), _snapshot(decisions))
        return RunOutcome(run, decisions)

    _cancel_stale_requests(ctx, policy, decisions, now)
    chosen = [d for d in decisions if d.kind is DecisionKind.CANDIDATE]
    requests = [_new_request(ctx, policy, run_id, d, now) for d in chosen]
    asked, enqueued, not_asked = 0, 0, {}
    if policy.ask_permission:
        try:
            asked, not_asked = _ask(ctx, policy, requests, now)
        except ReclaimError as error:
            return halted("campaign", f"campaign: {error}", decisions, snapshot=True)
    else:
        for request in requests:
            _queue(ctx, policy, request, QueueReason.NO_ASK, now, new=True)
        enqueued = len(requests)
    run = _run_record(
        run_id, policy, now, RunStatus.COMPLETED, decisions, asked=asked, enqueued=enqueued
    )
    ctx.store.record_run(run, _decision_records(run, decisions), _snapshot(decisions))
    return RunOutcome(run, decisions, not_asked=not_asked)


def _snapshot(decisions: Sequence[Decision]) -> list[str]:
    return [d.state_key for d in decisions if d.state_key]


def _run_record(
    run_id: str,
    policy: Policy,
    now: datetime,
    status: RunStatus,
    decisions: Sequence[Decision],
    *,
    halt: Halt | None = None,
    asked: int = 0,
    enqueued: int = 0,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        policy=policy.name,
        mode=policy.mode.value,
        started_at=now,
        status=status,
        members=len(decisions),
        counts={k.value: n for k, n in count_by_kind(decisions).items()},
        asked=asked,
        enqueued=enqueued,
        halt_check=halt.check if halt else "",
        halt_reason=halt.reason if halt else "",
    )


def _decision_records(run: RunRecord, decisions: Sequence[Decision]) -> list[DecisionRecord]:
    return [
        DecisionRecord(
            run.id,
            run.policy,
            d.state_key,
            d.member.user,
            d.kind.value,
            d.reason,
            d.evidence.to_dict(),
        )
        for d in decisions
    ]


def _new_request(
    ctx: Context, policy: Policy, run_id: str, decision: Decision, now: datetime
) -> Request:
    return Request(
        id=ctx.new_id(),
        policy=policy.name,
        group=policy.directory.group,
        user=decision.member.user,
        state_key=decision.state_key,
        run_id=run_id,
        state=RequestState.PENDING,
        created_at=now,
        updated_at=now,
        deadline=now + policy.campaign.respond_within if policy.ask_permission else None,
        reason=decision.reason,
    )


def _ledger(
    ctx: Context,
    request: Request,
    outcome: LedgerOutcome,
    now: datetime,
    detail: str = "",
    *,
    seat_freed: bool | None = None,
) -> None:
    policy = ctx.policies.get(request.policy)
    counts_money = outcome in (LedgerOutcome.REMOVED, LedgerOutcome.RESTORED)
    ctx.store.append_ledger(
        LedgerEntry(
            id=f"{request.id}:{outcome.value}",
            at=now,
            policy=request.policy,
            group=request.group,
            request_id=request.id,
            run_id=request.run_id,
            user=request.user,
            outcome=outcome,
            detail=detail,
            seat_freed=seat_freed,
            monthly_cost=policy.licence.monthly_cost if policy and counts_money else 0.0,
            currency=policy.licence.currency if policy else "",
        )
    )


def _queue(
    ctx: Context,
    policy: Policy,
    request: Request,
    reason: QueueReason,
    now: datetime,
    *,
    new: bool = False,
) -> Request:
    """Move a request to QUEUED (stored first, so the worker finds it), then send its message."""
    if new:
        queued = replace(request, state=RequestState.QUEUED, queue_reason=reason)
        ctx.store.add_request(queued)
    else:
        queued = transition(request, RequestState.QUEUED, now, queue_reason=reason)
        if not ctx.store.update_request(queued):
            return request  # another writer moved it on; it is theirs now
    _ledger(ctx, queued, LedgerOutcome.QUEUED, now, reason.value)
    ctx.queue.enqueue(_message(queued))
    return queued


def _message(request: Request) -> RemovalMessage:
    reason = request.queue_reason.value if request.queue_reason else ""
    return RemovalMessage(
        request.id,
        request.run_id,
        request.policy,
        request.group,
        request.user,
        f"{reason}: {request.reason}",
    )


def _ask(
    ctx: Context, policy: Policy, requests: list[Request], now: datetime
) -> tuple[int, dict[str, str]]:
    if not requests:
        return 0, {}
    result = ctx.adapters.campaign(policy).ask(policy, requests)
    not_asked: dict[str, str] = {}
    for request in requests:
        if request.id in result.asked:
            stored = replace(request, detail=result.asked[request.id])
            ctx.store.add_request(stored)
            _ledger(
                ctx,
                stored,
                LedgerOutcome.ASKED,
                now,
                f"{policy.campaign.channel.value}: {stored.detail}",
            )
        else:
            # Never assume asked: no open request, so the next run selects the user again.
            why = result.not_asked.get(request.id, "the channel did not confirm the ask")
            ctx.store.add_request(
                replace(request, state=RequestState.CANCELLED, detail=f"not asked: {why}")
            )
            _ledger(ctx, request, LedgerOutcome.NOT_ASKED, now, why)
            not_asked[request.user.label] = why
    return len(requests) - len(not_asked), not_asked


def _cancel_stale_requests(
    ctx: Context, policy: Policy, decisions: Sequence[Decision], now: datetime
) -> None:
    """Open requests of users who became active, were excluded or left the group are cancelled."""
    by_key = {d.state_key: d for d in decisions}
    for request in ctx.store.requests(policy.name, [RequestState.PENDING, RequestState.QUEUED]):
        decision = by_key.get(request.state_key)
        if decision is None:
            why = "left the group"
        elif decision.kind in (DecisionKind.ACTIVE, DecisionKind.EXCLUDED):
            why = f"{decision.kind.value.lower()}: {decision.reason}"
        else:
            continue
        _cancel(ctx, request, why, now)


def _cancel(ctx: Context, request: Request, why: str, now: datetime) -> bool:
    cancelled = transition(request, RequestState.CANCELLED, now, detail=why)
    if ctx.store.update_request(cancelled):
        _ledger(ctx, cancelled, LedgerOutcome.CANCELLED, now, why)
        return True
    return False


# ---- record_answer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerCommand:
    """An answer by request id, or by policy and user identifier (UPN, mail, SID, ...)."""

    value: AnswerValue
    answered_at: datetime
    request_id: str = ""
    policy: str = ""
    user: str = ""
    source: str = "webhook"


class AnswerStatus(StrEnum):
    KEPT = "kept"  # yes: protected for keep_after_yes
    QUEUED = "queued"  # no: the removal is on its way
    CANCELLED = "cancelled"  # yes after the removal was queued: it will not happen
    DUPLICATE = "duplicate"  # the same answer was recorded before: nothing changed
    RECORDED = "recorded"  # recorded; the request had already finished


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
    candidates = [r for r in ctx.store.requests(command.policy) if r.user.matches(command.user)]
    if not candidates:
        raise InputError(f"no request for user {command.user!r} under policy {command.policy!r}")
    open_ones = [r for r in candidates if r.is_open]
    return (open_ones or candidates)[-1]


def record_answer(ctx: Context, command: AnswerCommand, now: datetime) -> AnswerStatus:
    request = find_request(ctx, command)
    policy = ctx.policies.get(request.policy)
    if policy is None:
        raise InputError(
            f"policy {request.policy!r} of request {request.id} is no longer configured"
        )
    answer = Answer(request.id, command.value, command.answered_at, command.source)
    if not ctx.store.record_answer(policy.name, request.state_key, answer):
        return AnswerStatus.DUPLICATE
    yes = command.value is AnswerValue.YES
    if request.state is RequestState.PENDING:
        _ledger(
            ctx, request, LedgerOutcome.ANSWERED, now, f"{command.value.value} via {command.source}"
        )
        if yes:
            kept = transition(request, RequestState.KEPT, now, detail="answered yes")
            if ctx.store.update_request(kept):
                return AnswerStatus.KEPT
        else:
            _queue(ctx, policy, request, QueueReason.CONSENT, now)
            return AnswerStatus.QUEUED
    elif (
        request.state is RequestState.QUEUED
        and yes
        and _cancel(ctx, request, "answered yes after the removal was queued", now)
    ):
        return AnswerStatus.CANCELLED
    return AnswerStatus.RECORDED


# ---- expire_requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpiryReport:
    answers_pulled: int = 0
    queued: int = 0
    lapsed: int = 0
    finished: int = 0
    resent: int = 0  # QUEUED requests whose message was lost, sent again
    errors: list[str] = field(default_factory=list)


# A QUEUED request this old has lost its message (the send failed after the request was stored);
# the worker is idempotent by request id, so sending it again is safe.
RESEND_AFTER = timedelta(hours=1)


def expire_requests(ctx: Context, now: datetime) -> ExpiryReport:
    """Pull answers from channels that cannot push, apply on_no_response past the deadline,
    settle removals handed to an asynchronous executor, and resend lost removal messages."""
    pulled = queued = lapsed = finished = resent = 0
    errors: list[str] = []
    for policy in ctx.policies.values():
        try:
            if policy.ask_permission and policy.campaign.channel is Channel.NEXTHINK:
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
            for request in ctx.store.requests(policy.name, [RequestState.PENDING]):
                if request.deadline is None or request.deadline > now:
                    continue
                if policy.campaign.on_no_response is OnNoResponse.RECLAIM:
                    _queue(ctx, policy, request, QueueReason.NO_RESPONSE, now)
                    queued += 1
                else:
                    lapsed_request = transition(
                        request, RequestState.LAPSED, now, detail="no answer by the deadline"
                    )
                    if ctx.store.update_request(lapsed_request):
                        _ledger(
                            ctx,
                            lapsed_request,
                            LedgerOutcome.CANCELLED,
                            now,
                            "no answer; on_no_response: keep",
                        )
                        lapsed += 1
            finished += _settle_requested(ctx, policy, now)
            resent += _resend_lost(ctx, policy, now)
        except ReclaimError as error:
            errors.append(f"{policy.name}: {error}")
            log.error("expiry of %s failed: %s", policy.name, error)
    return ExpiryReport(pulled, queued, lapsed, finished, resent, errors)


def _resend_lost(ctx: Context, policy: Policy, now: datetime) -> int:
    if ctx.kill_switch:
        return 0  # messages wait on purpose, and come back by themselves
    stale = [
        r
        for r in ctx.store.requests(policy.name, [RequestState.QUEUED])
        if now - r.updated_at >= RESEND_AFTER
    ]
    for request in stale:
        ctx.queue.enqueue(_message(request))
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
            settled += _finish_removal(ctx, request, result, now)
    return settled


# ---- perform_removal ---------------------------------------------------------------------------


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


class RemovalStatus(StrEnum):
    REMOVED = "removed"
    NOT_MEMBER = "not-member"
    REQUESTED = "requested"
    FAILED = "failed"  # recorded FAILED; the message belongs in the poison queue
    CANCELLED = "cancelled"
    DEFERRED = "deferred"  # sent back to the queue to wait (kill switch, throttling)
    SKIPPED = "skipped"  # already handled: a duplicate message


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
    request = ctx.store.get_request(message.request_id)
    if request is None:
        raise MessageError(f"unknown request {message.request_id!r}")
    if request.state in FINAL_STATES or request.state in (
        RequestState.REMOVED,
        RequestState.REQUESTED,
    ):
        if request.state in _LEDGERED_STATES:
            # Delivered again after the outcome was stored but before its ledger entry was
            # (storage failed in between): write it now; ledger ids make this a no-op otherwise.
            _ledger(
                ctx, request, LedgerOutcome(request.state.value), request.updated_at, request.detail
            )
        return RemovalReport(RemovalStatus.SKIPPED, f"already {request.state.value}")
    if request.state is RequestState.PENDING:
        return RemovalReport(RemovalStatus.SKIPPED, "still waiting for an answer")
    if request.state is RequestState.REMOVING and now - request.updated_at < CLAIM_TIMEOUT:
        # Another worker holds it; come back after its claim would have expired.
        ctx.queue.enqueue(message, delay=CLAIM_TIMEOUT)
        return RemovalReport(RemovalStatus.DEFERRED, "being removed by another worker")
    policy = ctx.policies.get(request.policy)
    if policy is None:
        _cancel(ctx, request, f"policy {request.policy!r} is no longer configured", now)
        return RemovalReport(RemovalStatus.CANCELLED, "policy no longer configured")
    if ctx.kill_switch:
        ctx.queue.enqueue(message, delay=KILL_SWITCH_DELAY)
        return RemovalReport(RemovalStatus.DEFERRED, "kill switch is on")
    if request.state is RequestState.QUEUED:
        yes_at = ctx.store.latest_yes(policy.name, request.state_key)
        if yes_at is not None and now - yes_at < policy.keep_after_yes:
            _cancel(ctx, request, f"answered yes on {yes_at:%Y-%m-%d}", now)
            return RemovalReport(RemovalStatus.CANCELLED, "answered yes")

    claimed = transition(request, RequestState.REMOVING, now)
    if not ctx.store.update_request(claimed):
        return RemovalReport(RemovalStatus.SKIPPED, "claimed by another worker")
    directory = ctx.adapters.directory(policy)
    try:
        result = _remove(directory, policy, claimed)
    except UserNotFound as error:
        result = RemovalResult(RemovalOutcome.NOT_MEMBER, f"user not found: {error}")
    except TransientError as error:
        if not command.final_attempt:
            released = transition(claimed, RequestState.QUEUED, now, detail=f"retrying: {error}")
            ctx.store.update_request(released)
            delay = timedelta(seconds=30 if error.retry_after is None else error.retry_after)
            ctx.queue.enqueue(message, delay=delay)
            return RemovalReport(RemovalStatus.DEFERRED, str(error))
        return _fail(ctx, claimed, f"gave up after retries: {error}", now)
    except ReclaimError as error:
        return _fail(ctx, claimed, str(error), now)
    _finish_removal(ctx, claimed, result, now)
    status = {
        RemovalOutcome.REMOVED: RemovalStatus.REMOVED,
        RemovalOutcome.NOT_MEMBER: RemovalStatus.NOT_MEMBER,
        RemovalOutcome.REQUESTED: RemovalStatus.REQUESTED,
        RemovalOutcome.FAILED: RemovalStatus.FAILED,
    }[result.outcome]
    return RemovalReport(status, result.detail)


def _remove(directory: Directory, policy: Policy, request: Request) -> RemovalResult:
    return directory.remove(
        request.group,
        request.user,
        sku_id=policy.licence.sku_id,
        request_id=request.id,
        run_id=request.run_id,
    )


def _finish_removal(ctx: Context, request: Request, result: RemovalResult, now: datetime) -> int:
    to = RequestState(result.outcome.value)
    done = transition(request, to, now, detail=result.detail)
    if not ctx.store.update_request(done):
        return 0
    _ledger(ctx, done, LedgerOutcome(to.value), now, result.detail, seat_freed=result.seat_freed)
    return 1


def _fail(ctx: Context, request: Request, why: str, now: datetime) -> RemovalReport:
    failed = transition(request, RequestState.FAILED, now, detail=why)
    if ctx.store.update_request(failed):
        _ledger(ctx, failed, LedgerOutcome.FAILED, now, why)
    log.error("removal %s of %s failed: %s", request.id, request.user.label, why)
    return RemovalReport(RemovalStatus.FAILED, why)


# ---- restore -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreCommand:
    policy: str
    user: str = ""  # any identifier: UPN, mail, sAMAccountName, SID, object id
    run_id: str = ""  # or every removal of one run


@dataclass(frozen=True)
class RestoreReport:
    restored: list[str] = field(default_factory=list)
    already_member: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def restore(ctx: Context, command: RestoreCommand, now: datetime) -> RestoreReport:
    """Re-add removed users; a restore also counts as a "yes", so the next run keeps them."""
    policy = ctx.policies.get(command.policy)
    if policy is None:
        raise InputError(f"unknown policy {command.policy!r}")
    if bool(command.user) == bool(command.run_id):
        raise InputError("give either a user or a run id to restore")
    removed = ctx.store.requests(policy.name, [RequestState.REMOVED])
    if command.user:
        removed = [r for r in removed if r.user.matches(command.user)][-1:]
        if not removed:
            raise InputError(f"no removal of {command.user!r} under {policy.name!r} to restore")
    else:
        removed = [r for r in removed if r.run_id == command.run_id]
        if not removed:
            raise InputError(
                f"no removal in run {command.run_id!r} under {policy.name!r} to restore"
            )
    directory = ctx.adapters.directory(policy)
    report = RestoreReport()
    for request, outcome, error in _add_back(directory, removed):
        if error is not None or outcome is None:
            report.failed[request.user.label] = str(error)
            continue
        restored = transition(request, RequestState.RESTORED, now, detail=outcome.value)
        if ctx.store.update_request(restored):
            ledger_outcome = (
                LedgerOutcome.RESTORED
                if outcome is AddOutcome.ADDED
                else LedgerOutcome.ALREADY_MEMBER
            )
            _ledger(ctx, restored, ledger_outcome, now, "restored by an administrator")
            ctx.store.record_answer(
                policy.name, request.state_key, Answer(request.id, AnswerValue.YES, now, "restore")
            )
        (report.restored if outcome is AddOutcome.ADDED else report.already_member).append(
            request.user.label
        )
    return report


def _add_back(
    directory: Directory, requests: list[Request]
) -> list[tuple[Request, AddOutcome | None, ReclaimError | None]]:
    """Re-add users: in bulk where the directory batches (Graph $batch), else one at a time."""
    add_many = getattr(directory, "add_many", None)
    if add_many is not None and len(requests) > 1:
        # One group per policy, so one call; results come back in input order.
        outcomes = add_many(requests[0].group, [r.user for r in requests])
        return [(r, o.outcome, o.error) for r, o in zip(requests, outcomes, strict=True)]
    results: list[tuple[Request, AddOutcome | None, ReclaimError | None]] = []
    for request in requests:
        try:
            results.append((request, directory.add(request.group, request.user), None))
        except ReclaimError as error:
            results.append((request, None, error))
    return results


# ---- report ------------------------------------------------------------------------------------


@dataclass
class PolicyReport:
    policy: str
    currency: str = ""
    runs_completed: int = 0
    runs_planned: int = 0
    halted: list[tuple[datetime, str]] = field(default_factory=list)
    members: int = 0  # in the latest run
    candidates: int = 0
    asked: int = 0
    kept: int = 0
    removed: int = 0
    not_member: int = 0
    failed: int = 0
    restored: int = 0
    seats_freed: int = 0
    seats_not_freed: int = 0  # removed, but the licence still comes from elsewhere
    monthly_savings: float = 0.0
    # Day by day: seats freed net of restores, and the monthly savings they add (or take back).
    timeline: dict[date, tuple[int, float]] = field(default_factory=dict)

    def _freed(self, day: date, seats: int, money: float) -> None:
        self.seats_freed += seats
        self.monthly_savings += money
        old_seats, old_money = self.timeline.get(day, (0, 0.0))
        self.timeline[day] = (old_seats + seats, old_money + money)

    @property
    def yearly_savings(self) -> float:
        return self.monthly_savings * 12


def report(ctx: Context, since: datetime | None = None) -> list[PolicyReport]:
    """Per policy: runs, the latest run's members and candidates, outcomes, and savings that count
    only seats really freed (a licence still assigned another way frees nothing), net of restores."""
    reports: dict[str, PolicyReport] = {}

    def of(name: str) -> PolicyReport:
        policy = ctx.policies.get(name)
        return reports.setdefault(
            name, PolicyReport(name, policy.licence.currency if policy else "")
        )

    for run in ctx.store.runs(since):
        entry = of(run.policy)
        entry.members = run.members  # runs come oldest first: the latest run's figures stay
        entry.candidates = run.counts.get(DecisionKind.CANDIDATE.value, 0)
        if run.status is RunStatus.HALTED:
            entry.halted.append((run.started_at, run.halt_reason))
        elif run.status is RunStatus.COMPLETED:
            entry.runs_completed += 1
        else:
            entry.runs_planned += 1
    freed_by_request: dict[str, float] = {}
    for item in ctx.store.ledger(since):
        entry = of(item.policy)
        entry.currency = entry.currency or item.currency
        match item.outcome:
            case LedgerOutcome.ASKED:
                entry.asked += 1
            case LedgerOutcome.ANSWERED if item.detail.startswith("yes"):
                entry.kept += 1
            case LedgerOutcome.REMOVED:
                entry.removed += 1
                if item.seat_freed is False:
                    entry.seats_not_freed += 1
                else:
                    entry._freed(item.at.date(), 1, item.monthly_cost)
                    freed_by_request[item.request_id] = item.monthly_cost
            case LedgerOutcome.NOT_MEMBER:
                entry.not_member += 1
            case LedgerOutcome.FAILED:
                entry.failed += 1
            case LedgerOutcome.RESTORED | LedgerOutcome.ALREADY_MEMBER:
                entry.restored += 1
                if item.request_id in freed_by_request:
                    entry._freed(item.at.date(), -1, -freed_by_request.pop(item.request_id))
    return sorted(reports.values(), key=lambda r: r.policy)


def user_history(
    ctx: Context, policy: Policy, user: str
) -> tuple[list[DecisionRecord], list[LedgerEntry]]:
    """Every decision about one user under one policy, and everything that happened to them."""
    ledger = [e for e in ctx.store.ledger(policy=policy.name) if e.user.matches(user)]
    keys = {normalise_key(user)} | {e.user.state_key(policy.usage.match_on) for e in ledger}
    decisions = [d for key in sorted(keys) for d in ctx.store.user_decisions(policy.name, key)]
    return decisions, ledger
