"""Savings by month (reclaim.domain.savings) over generated ledgers: realised money never holds an
unverified removal, the months add up to the totals, a restore takes back exactly what its
removal gave, and the backlog at each month's end is what a request-by-request replay says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reclaim.domain.holds import HoldCause, breaker_hold, halt_hold, hold_cause, rate_hold
from reclaim.domain.model import User
from reclaim.domain.records import LedgerEntry, LedgerOutcome, RunRecord, RunStatus
from reclaim.domain.savings import (
    Amount,
    Price,
    month_of,
    months_between,
    next_month,
    savings_by_month,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=240)
PRICES = {"visio": Price(10.0, "EUR"), "adobe": Price(55.5, "EUR")}
HOLD_TEXTS = {
    HoldCause.RATE: rate_hold(5, "1d"),
    HoldCause.CAP: halt_hold("max_removals_per_run"),
    HoldCause.HALT: halt_hold("stale_usage"),
    HoldCause.BREAKER: breaker_hold("removals halted since 2026-03-01 10:00 (outage): 503"),
}
ENDS = [
    LedgerOutcome.QUEUED,
    LedgerOutcome.CANCELLED,
    LedgerOutcome.REMOVED,
    LedgerOutcome.FAILED,
    LedgerOutcome.NOT_MEMBER,
]
hours = st.integers(min_value=0, max_value=150 * 24)  # everything ends before NOW


def entry(
    rid: str, policy: str, at: datetime, outcome: LedgerOutcome, **fields: object
) -> LedgerEntry:
    return LedgerEntry(
        id=f"{rid}:{outcome.value}:{at.isoformat()}",
        at=at,
        policy=policy,
        group="G",
        request_id=rid,
        run_id="run",
        user=User(upn=f"{rid}@c.test"),
        outcome=outcome,
        **fields,  # type: ignore[arg-type]
    )


@st.composite
def removal(draw: st.DrawFn, rid: str) -> list[LedgerEntry]:
    """A removal, maybe its seat check (freed, still licensed, unverified), maybe a restore
    (and an upheld appeal besides it)."""
    policy = draw(st.sampled_from(sorted(PRICES)))
    cost = PRICES[policy].monthly_cost
    at = START + timedelta(hours=draw(hours))
    entries = [entry(rid, policy, at, LedgerOutcome.REMOVED, monthly_cost=cost, currency="EUR")]
    check = draw(st.sampled_from(["freed", "still", "unsettled", "unchecked"]))
    checked = at + timedelta(minutes=draw(st.integers(15, 48 * 60)))
    freed = {"freed": True, "still": False, "unsettled": None}.get(check)
    if check != "unchecked":
        entries.append(entry(rid, policy, checked, LedgerOutcome.SEAT_CHECKED, seat_freed=freed))
    if draw(st.booleans()):
        back = checked + timedelta(hours=draw(st.integers(1, 80 * 24)))
        entries.append(entry(rid, policy, back, LedgerOutcome.RESTORED, monthly_cost=cost))
        if draw(st.booleans()):
            entries.append(entry(rid, policy, back, LedgerOutcome.APPEALED))
    return entries


@st.composite
def hold(draw: st.DrawFn, rid: str) -> list[LedgerEntry]:
    """A due request held for one cause, maybe for another later, maybe let go in the end."""
    policy = draw(st.sampled_from(sorted(PRICES)))
    at = START + timedelta(hours=draw(hours))
    causes = draw(st.lists(st.sampled_from(list(HoldCause)), min_size=1, max_size=3))
    entries = []
    for cause in causes:
        entries.append(entry(rid, policy, at, LedgerOutcome.HELD, detail=HOLD_TEXTS[cause]))
        at += timedelta(hours=draw(st.integers(1, 25 * 24)))
    if draw(st.booleans()):
        cost = PRICES[policy].monthly_cost  # an end may be the removal itself
        entries.append(entry(rid, policy, at, draw(st.sampled_from(ENDS)), monthly_cost=cost))
    return entries


@st.composite
def ledgers(draw: st.DrawFn) -> list[LedgerEntry]:
    removals = draw(st.integers(0, 12))
    holds = draw(st.integers(0, 8))
    entries = [e for i in range(removals) for e in draw(removal(f"r{i}"))]
    entries += [e for i in range(holds) for e in draw(hold(f"h{i}"))]
    return sorted(entries, key=lambda e: e.at)


def by_policy(entries: list[LedgerEntry], start: datetime | None = START) -> dict[str, object]:
    return {s.policy: s for s in savings_by_month([], entries, PRICES, start, NOW)}


def seat_checks(entries: list[LedgerEntry]) -> dict[str, bool | None]:
    return {e.request_id: e.seat_freed for e in entries if e.outcome is LedgerOutcome.SEAT_CHECKED}


@settings(max_examples=80, deadline=None)
@given(ledgers())
def test_realised_counts_only_verified_freed_seats_net_of_their_restores(
    entries: list[LedgerEntry],
) -> None:
    checks = seat_checks(entries)
    restored = {e.request_id: e for e in entries if e.outcome is LedgerOutcome.RESTORED}
    for policy in PRICES:
        expected: dict[date, int] = {}
        for e in entries:
            if e.policy != policy or e.outcome is not LedgerOutcome.REMOVED:
                continue
            if checks.get(e.request_id) is True:
                expected[month_of(e.at)] = expected.get(month_of(e.at), 0) + 1
                if (back := restored.get(e.request_id)) is not None:
                    expected[month_of(back.at)] = expected.get(month_of(back.at), 0) - 1
        found = {s.policy: s for s in savings_by_month([], entries, PRICES, START, NOW)}
        months = found[policy].months if policy in found else ()
        got = {m.month: m.realised.count for m in months if m.realised.count}
        assert got == {m: n for m, n in expected.items() if n}
        for m in months:
            assert m.realised.cost == pytest.approx(m.realised.count * PRICES[policy].monthly_cost)


@settings(max_examples=80, deadline=None)
@given(ledgers(), st.data())
def test_unverified_removals_never_change_realised(
    entries: list[LedgerEntry], data: st.DataObject
) -> None:
    """Dropping the seat check of any removal (so nobody confirmed it) moves it out of realised
    into unverified, and changes no other removal's realised seat."""
    checks = [e for e in entries if e.outcome is LedgerOutcome.SEAT_CHECKED and e.seat_freed]
    if not checks:
        return
    dropped = data.draw(st.sampled_from(checks))
    without = [e for e in entries if e is not dropped]
    before, after = by_policy(entries), by_policy(without)
    policy = dropped.policy
    was, unchecked = before[policy], after[policy]
    restored = any(
        e.outcome is LedgerOutcome.RESTORED and e.request_id == dropped.request_id for e in entries
    )
    assert was.realised.count - unchecked.realised.count == (0 if restored else 1)  # type: ignore[attr-defined]
    assert unchecked.unverified.count - was.unverified.count == (0 if restored else 1)  # type: ignore[attr-defined]
    for other in set(PRICES) - {policy}:
        if other in before:
            assert before[other] == after[other]


@settings(max_examples=80, deadline=None)
@given(ledgers())
def test_the_months_add_up_to_the_totals(entries: list[LedgerEntry]) -> None:
    checks = seat_checks(entries)
    restores = [e for e in entries if e.outcome is LedgerOutcome.RESTORED]
    appeals = [e for e in entries if e.outcome is LedgerOutcome.APPEALED]
    restored_ids = {e.request_id for e in restores}
    for savings in savings_by_month([], entries, PRICES, START, NOW):
        mine = [e for e in entries if e.policy == savings.policy]
        removed = [e for e in mine if e.outcome is LedgerOutcome.REMOVED]
        freed = [e for e in removed if checks.get(e.request_id) is True]
        unverified = [
            e
            for e in removed
            if checks.get(e.request_id) is None and e.request_id not in restored_ids
        ]
        cost = PRICES[savings.policy].monthly_cost
        assert savings.months[0].month == month_of(START) and savings.months[-1].month == (
            month_of(NOW)
        )
        assert savings.realised.count == sum(m.realised.count for m in savings.months)
        assert savings.realised.count == len(freed) - len(
            [e for e in freed if e.request_id in restored_ids]
        )
        assert savings.unverified == Amount(len(unverified), pytest.approx(len(unverified) * cost))
        assert savings.restored.count == len([e for e in restores if e.policy == savings.policy])
        assert savings.appealed.count == len([e for e in appeals if e.policy == savings.policy])
        # What the restores took back is what the verified seats they undid had given.
        gross = sum(cost for _ in freed)
        assert savings.realised.cost + savings.restored.cost == pytest.approx(gross)
        assert savings.appealed.cost <= savings.restored.cost + 1e-9


@settings(max_examples=80, deadline=None)
@given(ledgers())
def test_restoring_every_freed_seat_nets_realised_to_zero(entries: list[LedgerEntry]) -> None:
    checks = seat_checks(entries)
    restored = {e.request_id for e in entries if e.outcome is LedgerOutcome.RESTORED}
    late = NOW - timedelta(days=1)
    extra = [
        entry(e.request_id, e.policy, late, LedgerOutcome.RESTORED, monthly_cost=e.monthly_cost)
        for e in entries
        if e.outcome is LedgerOutcome.REMOVED
        and checks.get(e.request_id) is True
        and e.request_id not in restored
    ]
    for savings in savings_by_month([], entries + extra, PRICES, START, NOW):
        assert savings.realised.count == 0
        assert savings.realised.cost == pytest.approx(0.0)


def replayed_backlog(entries: list[LedgerEntry], policy: str, cutoff: datetime, inclusive: bool):
    """Request by request: its last hold-relevant entry before the cutoff is a HELD one."""
    counts: dict[HoldCause, int] = {}
    for rid in {e.request_id for e in entries if e.policy == policy}:
        mine = [
            e
            for e in entries
            if e.request_id == rid
            and (e.at <= cutoff if inclusive else e.at < cutoff)
            and (e.outcome is LedgerOutcome.HELD or e.outcome in ENDS)
        ]
        if mine and mine[-1].outcome is LedgerOutcome.HELD:
            cause = hold_cause(mine[-1].detail)
            assert cause is not None
            counts[cause] = counts.get(cause, 0) + 1
    return counts


@settings(max_examples=80, deadline=None)
@given(ledgers(), st.integers(0, 200))
def test_the_backlog_at_each_month_end_is_what_waits_then(
    entries: list[LedgerEntry], start_day: int
) -> None:
    """Also when the period starts after some holds began: they still count while they wait."""
    start = START + timedelta(days=start_day)
    found = by_policy(entries, start)
    for policy in PRICES:
        cost = PRICES[policy].monthly_cost
        for month in months_between(month_of(start), month_of(NOW)):
            end = datetime(next_month(month).year, next_month(month).month, 1, tzinfo=UTC)
            last = end > NOW
            expected = replayed_backlog(entries, policy, NOW if last else end, last)
            savings = found.get(policy)
            got = {}
            if savings is not None:
                (row,) = [m for m in savings.months if m.month == month]  # type: ignore[attr-defined]
                got = {cause: a.count for cause, a in row.backlog}
                assert row.backlog_total.cost == pytest.approx(sum(expected.values()) * cost)
            assert got == expected


def test_potential_is_the_latest_run_of_each_month_and_no_run_is_not_zero() -> None:
    def run(run_id: str, at: datetime, candidates: int, status=RunStatus.PLANNED) -> RunRecord:
        counts = {"CANDIDATE": candidates, "ACTIVE": 3}
        return RunRecord(run_id, "visio", "dry-run", at, status, 10, counts)

    runs = [
        run("a", START + timedelta(days=3), 7),
        run("b", START + timedelta(days=20), 4),  # January's latest
        run("c", START + timedelta(days=70), 2, RunStatus.COMPLETED),  # March
    ]
    (savings,) = savings_by_month(runs, [], PRICES, START, START + timedelta(days=75))
    potential = {f"{m.month:%Y-%m}": m.potential for m in savings.months}
    assert potential == {
        "2026-01": Amount(4, 40.0),
        "2026-02": None,  # no run recorded: unknown, not zero
        "2026-03": Amount(2, 20.0),
    }
    assert savings.potential == Amount(2, 20.0)  # a snapshot, never a sum


def test_a_policy_no_longer_configured_is_priced_from_its_ledger() -> None:
    removed = entry("r1", "gone", START, LedgerOutcome.REMOVED, monthly_cost=12.0, currency="GBP")
    held = entry("r2", "gone", START, LedgerOutcome.HELD, detail=rate_hold(1, "1d"))
    (savings,) = savings_by_month([], [removed, held], PRICES, START, START + timedelta(days=1))
    assert savings.currency == "GBP"
    assert savings.backlog == Amount(1, 12.0)
    assert savings.unverified == Amount(1, 12.0)


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (rate_hold(50, "1d"), HoldCause.RATE),
        (halt_hold("max_percent_of_group"), HoldCause.CAP),
        (halt_hold("max_removals_per_run"), HoldCause.CAP),
        (halt_hold("coverage"), HoldCause.HALT),
        (breaker_hold("removals halted (permission): grant it"), HoldCause.BREAKER),
        ("handed back by the worker: the decision is old", None),
    ],
)
def test_each_hold_text_names_its_cause(text: str, cause: HoldCause | None) -> None:
    assert hold_cause(text) is cause
