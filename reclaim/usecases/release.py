"""release: how a due removal leaves for the queue, re-decided, capped and rate-limited.

A request is due when its user answered no, stayed silent past the deadline (on_no_response:
reclaim), was handed back by the worker (its decision had grown older than decision_max_age), or
was held back before (a disabled account released without asking included). Only a tick that has
just re-decided it releases it (the expiry tick, under the policy's lease): one reading of the
directory and the usage for the policy (decide.assess), selection re-run for the users about to
be released. A user who is now ACTIVE, EXCLUDED, KEPT, NEW, of unknown usage or no longer a
member is CANCELLED with that reason, and so is a disabled account's request once the account is
enabled again. A failing or stale source, or a guardrail (per-run caps count the releases), halts
the tick: nothing is released, the requests wait, and the halt is recorded as an "expiry" run.
The rolling rate (limits.rate: removals per window, over every release of runs and ticks; a
request released again counts once) lets out the oldest first and holds the rest; anything due
longer than limits.max_wait is cancelled, never removed late on stale grounds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from reclaim.domain.durations import format_duration
from reclaim.domain.guardrails import Halt
from reclaim.domain.holds import halt_hold, rate_hold
from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.policy import OnNoResponse, Policy
from reclaim.domain.policy.escalation import EscalateOn
from reclaim.domain.records import DecisionRecord, LedgerOutcome, RunRecord, RunStatus
from reclaim.domain.selection import Decision, count_by_kind, removes
from reclaim.usecases.bookkeeping import cancel, each, enqueue_removal, ledger
from reclaim.usecases.context import Context
from reclaim.usecases.decide import assess
from reclaim.usecases.escalation import escalates, overruled_yes
from reclaim.usecases.own_writes import settle_own_write

log = logging.getLogger("reclaim")

EXPIRY_MODE = "expiry"  # RunRecord.mode of an expiry tick's record (report tells them apart)


@dataclass(frozen=True)
class Release:
    released: int = 0
    cancelled: int = 0
    held: int = 0
    halt: Halt | None = None


def due_since(request: Request) -> datetime:
    """When it became due: a DUE request keeps that in `deadline` (see hold, record_answer)."""
    return request.deadline or request.updated_at


def due_requests(ctx: Context, policy: Policy, now: datetime) -> list[Request]:
    """DUE requests, and PENDING ones past their deadline when silence reclaims; oldest first.
    Silence the policy escalates is never released from PENDING: her approver decides it."""
    # With a notice, silence past the deadline leads to NOTICE first (send_notices), not here.
    reclaim_silent = (
        policy.campaign.on_no_response is OnNoResponse.RECLAIM
        and not escalates(policy, EscalateOn.NO_RESPONSE)
        and not policy.notice
    )
    due = [
        r
        for r in ctx.store.requests(policy.name, [RequestState.DUE, RequestState.PENDING])
        if r.state is RequestState.DUE
        or (reclaim_silent and r.deadline is not None and r.deadline <= now)
    ]
    return sorted(due, key=lambda r: (due_since(r), r.created_at, r.id))


def rate_text(policy: Policy) -> str:
    rate = policy.limits.rate
    return rate_hold(rate.count, format_duration(rate.window))


def released_in_window(ctx: Context, policy: Policy, now: datetime) -> set[str]:
    """The requests released (a QUEUED entry) in the rate's window, whatever came of them,
    whichever run or tick released them. A request released again (its worker stopped before
    an outcome, or handed it back) is one removal, counted once."""
    since = now - policy.limits.rate.window
    return {
        e.request_id
        for e in ctx.store.ledger(since, policy.name)
        if e.outcome is LedgerOutcome.QUEUED and e.at > since
    }


def allowance(policy: Policy, counted: set[str]) -> int:
    """New removals the rolling rate still allows, `counted` being released_in_window."""
    return max(0, policy.limits.rate.count - len(counted))


def hold(ctx: Context, request: Request, why: str, now: datetime) -> None:
    """Keep a due request waiting, saying why (stored on it, and once in the ledger)."""
    if request.state is RequestState.DUE and request.detail == why:
        return
    held = transition(
        request,
        RequestState.DUE,
        now,
        detail=why,
        queue_reason=request.queue_reason or QueueReason.NO_RESPONSE,
    )
    if ctx.store.update_request(held):
        # One entry per reason it waits for (the version): the report's backlog reads them.
        ledger(ctx, held, LedgerOutcome.HELD, now, why, entry_id=f"{held.id}:HELD:{held.version}")


def release_new(
    ctx: Context,
    policy: Policy,
    requests: Sequence[Request],
    now: datetime,
    reason: QueueReason = QueueReason.NO_ASK,
) -> tuple[int, int]:
    """A run without asking: its decisions are fresh, so it releases new requests itself, up to
    the rate's allowance in the order given; the rest are stored DUE, held. (released, held)"""
    left = allowance(policy, released_in_window(ctx, policy, now))
    why = rate_text(policy)

    def release(request: Request) -> None:
        enqueue_removal(ctx, policy, request, reason, now, new=True, decided_at=now)

    def hold_new(request: Request) -> None:
        held = replace(
            request,
            state=RequestState.DUE,
            queue_reason=reason,
            deadline=now,
            detail=why,
        )
        if ctx.store.add_request(held):
            ledger(ctx, held, LedgerOutcome.HELD, now, why)

    each(ctx, requests[:left], release)
    each(ctx, requests[left:], hold_new)
    released = min(left, len(requests))
    return released, len(requests) - released


def cancel_overdue(
    ctx: Context, policy: Policy, due: Sequence[Request], now: datetime
) -> list[Request]:
    """Cancel what has been due longer than limits.max_wait (unless a write of ours may already
    have removed her); the rest, still due."""
    limit = policy.limits.max_wait
    waiting: list[Request] = []
    for request in due:
        since = due_since(request)
        # A write of ours went out unanswered: whether it took her out only a reading of the
        # directory can tell, and a cancel would lose a removal we made. It waits for that read.
        if now - since <= limit or request.unanswered_writes > 0:
            waiting.append(request)
            continue
        held = request.detail if request.detail.startswith("held") else "waiting for release"
        cancel(
            ctx,
            request,
            f"{held} since {since:%Y-%m-%d %H:%M} UTC, longer than limits.max_wait "
            f"{format_duration(limit)}: not removed on stale grounds; the next run judges the "
            "user afresh",
            now,
        )
    return waiting


def release_due(ctx: Context, policy: Policy, now: datetime) -> Release:
    """Re-decide the policy's due requests on one fresh reading and release what still holds.
    The caller holds the policy's lease."""
    due = cancel_overdue(ctx, policy, due_requests(ctx, policy, now), now)
    if not due:
        return Release()
    if ctx.kill_switch:
        return Release(held=len(due))  # nothing read, nothing written: they wait as they are
    keys = {r.state_key for r in due}
    # A "yes" her approver saw before releasing her does not keep her (escalation.py).
    overruled = overruled_yes(due)
    assessment = assess(ctx, policy, now, kill_switch=False, releasing=keys, overruled=overruled)
    tick_id = ctx.new_id()
    re_decided = [d for d in assessment.decisions if d.state_key in keys]
    if assessment.halt is not None:
        halt = assessment.halt
        for request in due:
            hold(ctx, request, halt_hold(halt.check), now)
        _record_tick(ctx, policy, tick_id, now, assessment.decisions, re_decided, 0, halt)
        log.warning("expiry tick of %s halted by %s: %s", policy.name, halt.check, halt.reason)
        return Release(held=len(due), halt=halt)

    by_key = {d.state_key: d for d in assessment.decisions}
    releasable: list[Request] = []
    releasing: set[str] = set()
    cancelled = 0
    for request in due:
        decision = by_key.get(request.state_key)
        # A write of ours went out unanswered: what it did is settled first, on this reading.
        settled = settle_own_write(ctx, request, decision, now, "re-decided by the tick")
        if settled is None:
            continue
        if decision is None:
            why = "no longer a member of the group"
        elif request.state_key in releasing:
            why = "another request of this user is being released"
        elif request.queue_reason is QueueReason.DISABLED and not decision.without_asking:
            # Released because the account was disabled: re-enabled (or now protected), it is
            # judged afresh by the next run, and asked first if the policy asks.
            why = f"no longer removed as disabled: {decision.kind.value.lower()}: {decision.reason}"
        elif removes(decision):
            releasable.append(settled)
            releasing.add(request.state_key)
            continue
        else:
            why = f"{decision.kind.value.lower()}: {decision.reason}"
        cancelled += cancel(ctx, settled, f"re-decided before release: {why}", now)

    # Oldest first; a request the window already counts (released before) takes no new room.
    counted = released_in_window(ctx, policy, now)
    left = allowance(policy, counted)
    released = held = 0
    for request in releasable:
        if request.id not in counted:
            if left == 0:
                hold(ctx, request, rate_text(policy), now)
                held += 1
                continue
            left -= 1
        reason = request.queue_reason or QueueReason.NO_RESPONSE
        queued = enqueue_removal(ctx, policy, request, reason, now, decided_at=now)
        released += queued.state is RequestState.QUEUED
    _record_tick(ctx, policy, tick_id, now, assessment.decisions, re_decided, released, None)
    return Release(released, cancelled, held)


def _record_tick(
    ctx: Context,
    policy: Policy,
    tick_id: str,
    now: datetime,
    decisions: Sequence[Decision],
    re_decided: Sequence[Decision],
    released: int,
    halt: Halt | None,
) -> None:
    """The tick's decisions about the users it re-decided, as a run of mode "expiry" (explain
    and report show it). A halt the previous tick recorded already is not recorded again."""
    if halt is not None:
        ticks = [r for r in ctx.store.runs(policy=policy.name) if r.mode == EXPIRY_MODE]
        last = ticks[-1] if ticks else None
        if last and (last.halt_check, last.halt_reason) == (halt.check, halt.reason):
            return
    run = RunRecord(
        id=tick_id,
        policy=policy.name,
        mode=EXPIRY_MODE,
        started_at=now,
        status=RunStatus.HALTED if halt else RunStatus.COMPLETED,
        members=len(decisions),
        counts={k.value: n for k, n in count_by_kind(re_decided).items()},
        enqueued=released,
        halt_check=halt.check if halt else "",
        halt_reason=halt.reason if halt else "",
    )
    records = [
        DecisionRecord(
            tick_id,
            policy.name,
            d.state_key,
            d.member.user,
            d.kind.value,
            d.reason,
            d.evidence.to_dict(),
        )
        for d in re_decided
    ]
    ctx.store.record_run(run, records, None)
