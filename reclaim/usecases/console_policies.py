"""console_policies, console_policy: what the console's first pages show, read from the store.

Per policy: its mode and schedule (with the next time it comes due), its latest run, the halts
(halted runs and expiry ticks, an open circuit breaker), and the asks still waiting for an answer.
Read-only: nothing here writes, and no directory or usage source is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from reclaim.domain.breaker import Breaker
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.policy import Policy
from reclaim.domain.records import RunRecord, RunStatus
from reclaim.usecases.context import Context
from reclaim.usecases.kill_switch import kill_switch_report
from reclaim.usecases.release import EXPIRY_MODE


@dataclass(frozen=True)
class Halt:
    at: datetime
    run_id: str
    what: str  # "run" or "expiry tick"
    reason: str


@dataclass(frozen=True)
class PendingAsk:
    request_id: str
    user: str
    asked_at: datetime
    deadline: datetime | None
    reason: str


@dataclass(frozen=True)
class PolicySummary:
    policy: Policy
    next_due: datetime  # the next time on the policy's schedule after `now` (UTC)
    last_run: RunRecord | None  # the latest run that judged members (not an expiry tick)
    runs: int  # runs that judged members
    halts: list[Halt]  # newest first
    pending_asks: int
    due_removals: int  # answered no or past the deadline, waiting for a tick to release them
    removals_halted: str  # an open circuit breaker, in words ("" when none)


@dataclass(frozen=True)
class ConsoleOverview:
    policies: list[PolicySummary]  # by name
    kill_switch: str  # its state in words


@dataclass(frozen=True)
class PolicyDetail:
    summary: PolicySummary
    runs: list[RunRecord]  # newest first, expiry ticks left out
    asks: list[PendingAsk]  # oldest first


def _next_due(schedule: str, now: datetime) -> datetime:
    nxt: datetime = croniter(schedule, now.astimezone(UTC), second_at_beginning=True).get_next(
        datetime
    )
    return nxt


def _summary(
    ctx: Context, policy: Policy, runs: list[RunRecord], breakers: list[Breaker], now: datetime
) -> tuple[PolicySummary, list[PendingAsk]]:
    judged = [r for r in runs if r.mode != EXPIRY_MODE]
    halts = [
        Halt(r.started_at, r.id, "expiry tick" if r.mode == EXPIRY_MODE else "run", r.halt_reason)
        for r in runs
        if r.status is RunStatus.HALTED
    ]
    open_requests = ctx.store.requests(policy.name, [RequestState.PENDING, RequestState.DUE])
    asks = [
        PendingAsk(r.id, r.user.label, r.created_at, r.deadline, r.reason)
        for r in sorted(open_requests, key=lambda r: (r.created_at, r.id))
        if r.state is RequestState.PENDING
    ]
    breaker = next((b for b in breakers if b.policy == policy.name and b.is_open), None)
    summary = PolicySummary(
        policy,
        _next_due(policy.schedule, now),
        judged[-1] if judged else None,
        len(judged),
        sorted(halts, key=lambda h: h.at, reverse=True),
        len(asks),
        sum(1 for r in open_requests if r.state is RequestState.DUE),
        breaker.describe() if breaker else "",
    )
    return summary, asks


def console_policies(ctx: Context, now: datetime) -> ConsoleOverview:
    runs, breakers = ctx.store.runs(), ctx.store.breakers()
    summaries = [
        _summary(ctx, policy, [r for r in runs if r.policy == name], breakers, now)[0]
        for name, policy in sorted(ctx.policies.items())
    ]
    return ConsoleOverview(summaries, kill_switch_report(ctx, limit=1).state.describe())


def console_policy(ctx: Context, name: str, now: datetime) -> PolicyDetail | None:
    """None for a policy that is not configured."""
    policy = ctx.policies.get(name)
    if policy is None:
        return None
    runs = ctx.store.runs(policy=name)
    summary, asks = _summary(ctx, policy, runs, ctx.store.breakers(), now)
    judged = [r for r in runs if r.mode != EXPIRY_MODE]
    return PolicyDetail(summary, judged[::-1], asks)
