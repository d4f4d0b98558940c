"""report and user_history: what happened, counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from reclaim.domain.model import normalise_key
from reclaim.domain.policy import Policy
from reclaim.domain.records import (
    DecisionRecord,
    LedgerEntry,
    LedgerOutcome,
    RunStatus,
)
from reclaim.domain.selection import DecisionKind
from reclaim.usecases.context import Context


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
