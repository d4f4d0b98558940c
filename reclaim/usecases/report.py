"""report and user_history: what happened, counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import Answer, normalise_key
from reclaim.domain.policy import Limits, Policy
from reclaim.domain.records import (
    SCHEDULER_MODE,
    DecisionRecord,
    LedgerEntry,
    LedgerOutcome,
    RunStatus,
)
from reclaim.domain.savings import (
    PolicySavings,
    Price,
    RemovalSeat,
    removal_seats,
    savings_by_month,
)
from reclaim.domain.selection import DecisionKind
from reclaim.usecases.context import Context
from reclaim.usecases.release import EXPIRY_MODE, due_since


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
    seats_freed: int = 0  # verified: Entra ID no longer assigns the SKU (net of restores)
    seats_not_freed: int = 0  # verified: removed, but the licence still comes from elsewhere
    monthly_savings: float = 0.0  # of the verified seats only
    unverified: int = 0  # removals nobody confirmed freed a seat (not restored)
    unverified_monthly: float = 0.0  # what they would save if they did; never in monthly_savings
    potential_monthly: float = 0.0  # the latest run's candidates x the licence's monthly cost
    # Due removals waiting for release (held by the rate, a cap, a halt): how many, and why.
    held: list[tuple[datetime, str]] = field(default_factory=list)
    # Day by day: verified seats freed net of restores, and the monthly savings they add.
    timeline: dict[date, tuple[int, float]] = field(default_factory=dict)
    # An open circuit breaker: why removals wait, and how many wait (usecases/breaker.py).
    removals_halted: str = ""
    appealed: int = 0  # removals the user took back herself (appeal_within, APPEALED entries)
    appeals_offered: bool = False  # the policy sets appeal_within
    # Month by month: potential, realised, unverified, restored, appealed and the backlog.
    savings: PolicySavings | None = None

    @property
    def appeal_rate(self) -> float | None:
        """Appeals per removal (None before any removal): how often a removal was wrong."""
        return self.appealed / self.removed if self.removed else None

    def _freed(self, day: date, seats: int, money: float) -> None:
        self.seats_freed += seats
        self.monthly_savings += money
        old_seats, old_money = self.timeline.get(day, (0, 0.0))
        self.timeline[day] = (old_seats + seats, old_money + money)

    @property
    def yearly_savings(self) -> float:
        return self.monthly_savings * 12


def report(
    ctx: Context, since: datetime | None = None, now: datetime | None = None
) -> list[PolicyReport]:
    """Per policy: runs, the latest run's members and candidates, outcomes, and three kinds of
    money kept apart: verified savings (seats Entra ID confirmed freed, net of restores), what
    unverified removals would save, and the potential of the latest run's candidates; and the
    same month by month with the backlog held at each month's end (at `now` for the last; None:
    at the latest recorded moment). One read of the period's runs and one of its ledger."""
    reports: dict[str, PolicyReport] = {}

    def of(name: str) -> PolicyReport:
        policy = ctx.policies.get(name)
        return reports.setdefault(
            name,
            PolicyReport(
                name,
                policy.licence.currency if policy else "",
                appeals_offered=bool(policy and policy.appeal_within),
            ),
        )

    runs = ctx.store.runs(since)
    for run in runs:
        entry = of(run.policy)
        if run.mode in (EXPIRY_MODE, SCHEDULER_MODE):  # a tick: only its halts are news here
            if run.status is RunStatus.HALTED:
                tick = "expiry tick" if run.mode == EXPIRY_MODE else "scheduled run"
                entry.halted.append((run.started_at, f"{tick}: {run.halt_reason}"))
            continue
        entry.members = run.members  # runs come oldest first: the latest run's figures stay
        entry.candidates = run.counts.get(DecisionKind.CANDIDATE.value, 0)
        policy = ctx.policies.get(run.policy)
        entry.potential_monthly = entry.candidates * (policy.licence.monthly_cost if policy else 0)
        if run.status is RunStatus.HALTED:
            entry.halted.append((run.started_at, run.halt_reason))
        elif run.status is RunStatus.COMPLETED:
            entry.runs_completed += 1
        else:
            entry.runs_planned += 1
    # Read from earlier than `since` by the longest a hold may last, so that a request held
    # since before the period still counts in its backlog; everything else counts from `since`.
    waits = [
        ctx.limits.breaker.max_wait,
        Limits.max_wait,  # the default, for policies no longer configured
        *(p.limits.max_wait for p in ctx.policies.values()),
    ]
    ledger = ctx.store.ledger(since - max(waits) if since else None)
    in_period = [item for item in ledger if since is None or item.at >= since]
    for item in in_period:
        entry = of(item.policy)
        entry.currency = entry.currency or item.currency
        match item.outcome:
            case LedgerOutcome.ASKED:
                entry.asked += 1
            case LedgerOutcome.ANSWERED if item.detail.startswith("yes"):
                entry.kept += 1
            case LedgerOutcome.REMOVED:
                entry.removed += 1
            case LedgerOutcome.NOT_MEMBER:
                entry.not_member += 1
            case LedgerOutcome.FAILED:
                entry.failed += 1
            case LedgerOutcome.RESTORED | LedgerOutcome.ALREADY_MEMBER:
                entry.restored += 1
            case LedgerOutcome.APPEALED:
                entry.appealed += 1
    for seat in removal_seats(in_period):
        _count_seat(of(seat.removal.policy), seat)
    for request in ctx.store.requests(states=[RequestState.DUE]):
        of(request.policy).held.append((due_since(request), request.detail))
    for halt in ctx.store.breakers():
        if halt.is_open:
            waiting = len(ctx.store.requests(halt.policy, [RequestState.QUEUED]))
            of(halt.policy).removals_halted = f"{halt.describe()} ({waiting} removal(s) waiting)"
    prices = {
        p.name: Price(p.licence.monthly_cost, p.licence.currency) for p in ctx.policies.values()
    }
    policy_runs = [run for run in runs if run.mode != EXPIRY_MODE]
    moment = now or max([e.at for e in ledger] + [r.started_at for r in runs], default=None)
    if moment is not None:
        for savings in savings_by_month(policy_runs, ledger, prices, since, moment):
            of(savings.policy).savings = savings
    return sorted(reports.values(), key=lambda r: r.policy)


def _count_seat(entry: PolicyReport, seat: RemovalSeat) -> None:
    removal, restore = seat.removal, seat.restore
    if seat.freed is True:
        entry._freed(removal.at.date(), 1, removal.monthly_cost)
        if restore is not None:
            entry._freed(restore.at.date(), -1, -removal.monthly_cost)
    elif seat.freed is False:
        entry.seats_not_freed += 1
    elif restore is None:
        entry.unverified += 1
        entry.unverified_monthly += removal.monthly_cost


def user_history(
    ctx: Context, policy: Policy, user: str
) -> tuple[list[DecisionRecord], list[LedgerEntry]]:
    """Every decision about one user under one policy, and everything that happened to them."""
    ledger = [e for e in ctx.store.ledger(policy=policy.name) if e.user.matches(user)]
    keys = {normalise_key(user)} | {e.user.state_key(policy.usage.match_on) for e in ledger}
    decisions = [d for key in sorted(keys) for d in ctx.store.user_decisions(policy.name, key)]
    return decisions, ledger


@dataclass(frozen=True)
class AnswerLine:
    """One recorded answer with the user it came from and the reason given."""

    policy: str
    user: str
    answer: Answer


def answers_report(ctx: Context, since: datetime | None = None) -> list[AnswerLine]:
    """Every answer recorded since `since` by the users the ledger shows answering (or asked),
    with its justification: "why did she keep Visio?" for the whole organisation at once."""
    users: dict[tuple[str, str], str] = {}
    seen: set[str] = set()  # a request is asked, then answered: looked up once
    for entry in ctx.store.ledger(since):
        if entry.outcome not in (LedgerOutcome.ASKED, LedgerOutcome.ANSWERED):
            continue
        if entry.request_id in seen:
            continue
        seen.add(entry.request_id)
        # The request knows the key its answers are stored under; a compacted one is found
        # again through the policy, when the policy is still configured.
        request = ctx.store.get_request(entry.request_id)
        policy = ctx.policies.get(entry.policy)
        if request is not None:
            users.setdefault((request.policy, request.state_key), entry.user.label)
        elif policy is not None:
            key = entry.user.state_key(policy.usage.match_on)
            users.setdefault((entry.policy, key), entry.user.label)
    lines = [
        AnswerLine(policy, label, answer)
        for (policy, state_key), label in sorted(users.items())
        for answer in ctx.store.answers(policy, state_key)
        if since is None or answer.answered_at >= since
    ]
    return sorted(lines, key=lambda line: (line.policy, line.answer.answered_at, line.user))
