"""Savings by policy and month: potential, realised, unverified, restored, appealed, and the
backlog that caps, the rolling rate, halts and breakers hold back.

Pure: the report reads the period's runs and ledger once and passes them in; the CLI's formats
and the console's pages render the same typed result. Every amount is a count and what those
seats cost per month, in the policy's currency. Realised money counts only seats Entra ID
confirmed freed (DESIGN §8 (6)); unverified removals and the potential are kept apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from reclaim.domain.holds import HoldCause, hold_cause
from reclaim.domain.records import LedgerEntry, LedgerOutcome, RunRecord
from reclaim.domain.selection import DecisionKind

RESTORES = frozenset({LedgerOutcome.RESTORED, LedgerOutcome.ALREADY_MEMBER})
# What a held request becomes next: released, removed, or given up. Any of them ends its wait.
HOLD_ENDS = frozenset(
    {
        LedgerOutcome.QUEUED,
        LedgerOutcome.REQUESTED,
        LedgerOutcome.REMOVED,
        LedgerOutcome.NOT_MEMBER,
        LedgerOutcome.FAILED,
        LedgerOutcome.CANCELLED,
    }
)


@dataclass(frozen=True)
class Amount:
    """How many seats (or requests), and what they cost per month."""

    count: int = 0
    cost: float = 0.0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.count + other.count, self.cost + other.cost)

    def __sub__(self, other: Amount) -> Amount:
        return Amount(self.count - other.count, self.cost - other.cost)


@dataclass(frozen=True)
class Price:
    monthly_cost: float = 0.0
    currency: str = ""


@dataclass(frozen=True)
class SavingsMonth:
    month: date  # its first day (UTC)
    # The candidates of the month's latest recorded run (dry-run or enforce); None: no run.
    potential: Amount | None
    # Verified freed seats of the month's removals, less the verified seats restored this month.
    realised: Amount
    # The month's removals nobody confirmed freed a seat (and not restored): never realised.
    unverified: Amount
    # Restores this month; cost: the verified savings they took back out of `realised`.
    restored: Amount
    # Upheld appeals this month (each also restored, so counted in `restored` too).
    appealed: Amount
    # Requests waiting with a hold at the month's end (at the report's moment for the last month).
    backlog: tuple[tuple[HoldCause, Amount], ...] = ()

    @property
    def backlog_total(self) -> Amount:
        return sum((amount for _, amount in self.backlog), Amount())


@dataclass(frozen=True)
class PolicySavings:
    policy: str
    currency: str
    months: tuple[SavingsMonth, ...]

    def _sum(self, pick: str) -> Amount:
        return sum((getattr(m, pick) for m in self.months), Amount())

    @property
    def realised(self) -> Amount:
        return self._sum("realised")

    @property
    def unverified(self) -> Amount:
        return self._sum("unverified")

    @property
    def restored(self) -> Amount:
        return self._sum("restored")

    @property
    def appealed(self) -> Amount:
        return self._sum("appealed")

    @property
    def potential(self) -> Amount | None:
        """The latest run's candidates: a snapshot, never a sum over months."""
        return next((m.potential for m in reversed(self.months) if m.potential is not None), None)

    @property
    def backlog(self) -> Amount:
        """Waiting at the report's moment."""
        return self.months[-1].backlog_total if self.months else Amount()


@dataclass(frozen=True)
class RemovalSeat:
    """One removal and what came of its seat: freed True, still licensed False, None unverified."""

    removal: LedgerEntry
    freed: bool | None
    restore: LedgerEntry | None


def seat_freed(removal: LedgerEntry, check: LedgerEntry | None) -> bool | None:
    """True freed, False still licensed, None unverified. A removal recorded before seats were
    verified after the fact carries the check made before its DELETE: "another source holds the
    SKU" (False) still stands, "freed" (True) was never confirmed and counts as unverified."""
    if check is not None:
        return check.seat_freed
    return False if removal.seat_freed is False else None


def removal_seats(entries: Iterable[LedgerEntry]) -> list[RemovalSeat]:
    """Every REMOVED entry with its seat check and its restore, in the order removed."""
    removals: dict[str, LedgerEntry] = {}
    checks: dict[str, LedgerEntry] = {}
    restores: dict[str, LedgerEntry] = {}
    for entry in entries:
        if entry.outcome is LedgerOutcome.REMOVED:
            removals[entry.request_id] = entry
        elif entry.outcome is LedgerOutcome.SEAT_CHECKED:
            checks[entry.request_id] = entry
        elif entry.outcome in RESTORES:
            restores[entry.request_id] = entry
    return [
        RemovalSeat(removal, seat_freed(removal, checks.get(rid)), restores.get(rid))
        for rid, removal in removals.items()
    ]


def month_of(moment: datetime) -> date:
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def months_between(first: date, last: date) -> list[date]:
    months = []
    while first <= last:
        months.append(first)
        first = next_month(first)
    return months


def savings_by_month(
    runs: Iterable[RunRecord],
    ledger: Iterable[LedgerEntry],
    prices: Mapping[str, Price],
    start: datetime | None,
    now: datetime,
) -> list[PolicySavings]:
    """Per policy, one SavingsMonth for every month from `start` (or the first record) to `now`.

    `runs`: the recorded policy runs (expiry ticks left out), oldest first. `ledger`: oldest
    first; it may begin before `start`, so that a request held since earlier still counts in
    the backlog; everything else counts from `start`. `prices`: each configured policy's
    licence; a policy no longer configured is priced from its ledger entries."""
    entries = list(ledger)
    in_period = [e for e in entries if start is None or e.at >= start]
    recorded = [r for r in runs if start is None or r.started_at >= start]
    moments = [e.at for e in in_period] + [r.started_at for r in recorded]
    if not moments and start is None:
        return []
    last = max([now, *moments])
    first = month_of(start) if start is not None else month_of(min(moments))
    months = months_between(first, month_of(last))
    price = _prices(prices, entries)

    flows: dict[tuple[str, date], dict[str, Amount]] = {}

    def add(policy: str, moment: datetime, flow: str, amount: Amount) -> None:
        cell = flows.setdefault((policy, month_of(moment)), {})
        cell[flow] = cell.get(flow, Amount()) + amount

    potential: dict[tuple[str, date], Amount] = {}
    for run in recorded:  # oldest first: the month's latest run stays
        candidates = run.counts.get(DecisionKind.CANDIDATE.value, 0)
        cost = price.get(run.policy, Price()).monthly_cost
        potential[(run.policy, month_of(run.started_at))] = Amount(candidates, candidates * cost)

    took_back: dict[str, float] = {}  # restore entry id -> the verified savings it undid
    for seat in removal_seats(in_period):
        removal, cost = seat.removal, seat.removal.monthly_cost
        if seat.freed is True:
            add(removal.policy, removal.at, "realised", Amount(1, cost))
            if seat.restore is not None:
                add(removal.policy, seat.restore.at, "realised", Amount(-1, -cost))
                took_back[seat.restore.id] = cost
        elif seat.freed is None and seat.restore is None:
            add(removal.policy, removal.at, "unverified", Amount(1, cost))
    undone = {e.request_id: took_back[e.id] for e in in_period if e.id in took_back}
    for entry in in_period:
        if entry.outcome in RESTORES:
            add(entry.policy, entry.at, "restored", Amount(1, took_back.get(entry.id, 0.0)))
        elif entry.outcome is LedgerOutcome.APPEALED:
            add(entry.policy, entry.at, "appealed", Amount(1, undone.get(entry.request_id, 0.0)))

    backlog = _backlog(entries, months, last, price)
    policies = sorted({p for p, _ in flows} | {p for p, _ in potential} | {p for p, _ in backlog})
    result = []
    for policy in policies:
        rows = []
        for month in months:
            cell = flows.get((policy, month), {})
            rows.append(
                SavingsMonth(
                    month=month,
                    potential=potential.get((policy, month)),
                    realised=cell.get("realised", Amount()),
                    unverified=cell.get("unverified", Amount()),
                    restored=cell.get("restored", Amount()),
                    appealed=cell.get("appealed", Amount()),
                    backlog=backlog.get((policy, month), ()),
                )
            )
        result.append(PolicySavings(policy, price.get(policy, Price()).currency, tuple(rows)))
    return result


def _prices(configured: Mapping[str, Price], entries: Sequence[LedgerEntry]) -> dict[str, Price]:
    """The configured price, else the latest one the policy's ledger entries carry."""
    price: dict[str, Price] = {}
    for entry in entries:
        if entry.monthly_cost:
            price[entry.policy] = Price(entry.monthly_cost, entry.currency)
        elif entry.policy not in price and entry.currency:
            price[entry.policy] = Price(0.0, entry.currency)
    return {**price, **configured}


def _backlog(
    entries: Sequence[LedgerEntry],
    months: Sequence[date],
    last: datetime,
    price: Mapping[str, Price],
) -> dict[tuple[str, date], tuple[tuple[HoldCause, Amount], ...]]:
    """One sweep of the ledger: the requests held, with their cause, at each month's end."""
    held: dict[str, tuple[str, HoldCause]] = {}  # request id -> (policy, cause)
    result: dict[tuple[str, date], tuple[tuple[HoldCause, Amount], ...]] = {}
    ordered = sorted(entries, key=lambda e: e.at)  # stable: the store's order within a moment
    position = 0
    for month in months:
        end = month_start(next_month(month))
        while position < len(ordered) and (
            ordered[position].at < end if end <= last else ordered[position].at <= last
        ):
            entry = ordered[position]
            position += 1
            cause = hold_cause(entry.detail) if entry.outcome is LedgerOutcome.HELD else None
            if cause is not None:
                held[entry.request_id] = (entry.policy, cause)
            elif entry.outcome in HOLD_ENDS:
                held.pop(entry.request_id, None)
        counts: dict[str, dict[HoldCause, int]] = {}
        for policy, cause in held.values():
            by_cause = counts.setdefault(policy, {})
            by_cause[cause] = by_cause.get(cause, 0) + 1
        for policy, by_cause in counts.items():
            cost = price.get(policy, Price()).monthly_cost
            result[(policy, month)] = tuple(
                (cause, Amount(by_cause[cause], by_cause[cause] * cost))
                for cause in HoldCause
                if cause in by_cause
            )
    return result
