"""Three months of one policy through the real use cases, for the savings-by-month tests (unit
on SQLite, on Table storage against Azurite, and the HTML report in Chromium):

- September: a dry run, then enforcement: 5 candidates, the rolling rate (2 a day) lets 2 go and
  holds 3; both removals are verified freed. At the month's end 3 wait for the rate.
- October: a tick releases 2 more, whose removals the directory refuses (a missing permission):
  the breaker holds them. At the month's end 1 waits for the rate and 2 for the breaker.
- November: the permission granted, the worker hands the two back (their decisions are a month
  old), ticks re-decide and release all three; one seat never settles (unverified). Both
  September removals are restored, one of them on an upheld appeal.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from reclaim import usecases
from reclaim.domain.breaker import BreakerRules
from reclaim.domain.model import Member, UsageRow, User
from reclaim.domain.records import LedgerEntry, LedgerOutcome
from reclaim.errors import PermissionDenied
from reclaim.ports import StateStore
from tests.conftest import make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryDirectory,
    MemoryLicences,
    MemoryQueue,
    MemoryUsage,
)

SEPTEMBER = datetime(2026, 9, 10, 6, 0, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
REPORTED_AT = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(10)]
COST = 25.0

# What the report must say, month by month: (count, cost) per figure; backlog by cause.
EXPECTED = {
    "2026-09": {
        "potential": (5, 125.0),
        "realised": (2, 50.0),
        "unverified": (0, 0.0),
        "restored": (0, 0.0),
        "appealed": (0, 0.0),
        "backlog": {"rate": (3, 75.0)},
    },
    "2026-10": {
        "potential": None,
        "realised": (0, 0.0),
        "unverified": (0, 0.0),
        "restored": (0, 0.0),
        "appealed": (0, 0.0),
        "backlog": {"rate": (1, 25.0), "breaker": (2, 50.0)},
    },
    "2026-11": {
        "potential": None,
        "realised": (0, 0.0),  # 2 freed, 2 restored
        "unverified": (1, 25.0),
        "restored": (2, 50.0),
        "appealed": (1, 25.0),
        "backlog": {},
    },
}


def scripted_months(store: StateStore) -> usecases.Context:
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    rows = [UsageRow(u.upn, 1.0 if i < 5 else 300.0) for i, u in enumerate(USERS)]
    usage = MemoryUsage(rows, SEPTEMBER)
    licences = MemoryLicences()
    queue = MemoryQueue()
    shape = {
        "limits": {
            "max_removals_per_run": 10,
            "max_percent_of_group": 60,
            "rate": {"count": 2, "window": "1d"},
            "max_wait": "90d",
        },
        "licence": {"monthly_cost": COST, "entra_sku_id": "c5928f49-12ba-48f7-ada3-0d743a3601d5"},
    }
    enforced = make_policy(mode="enforce", **shape)
    ids = (f"id-{n:04d}" for n in itertools.count())
    ctx = usecases.Context(
        store,
        queue,
        MemoryAdapters(directory, usage, licences_=licences),
        {enforced.name: make_policy(**shape)},  # a dry run first
        new_id=lambda: next(ids),
        limits=usecases.RemovalLimits(breaker=BreakerRules(max_wait=timedelta(days=60))),
    )

    def at(moment: datetime) -> datetime:
        usage.observed_at = moment  # fresh data for every run and tick
        return moment

    def work(moment: datetime) -> None:
        for message in queue.drain():
            usecases.perform_removal(ctx, usecases.RemovalCommand(message), moment)

    usecases.run_policy(ctx, ctx.policies[enforced.name], at(SEPTEMBER))
    ctx.policies[enforced.name] = enforced
    usecases.run_policy(ctx, enforced, at(SEPTEMBER + timedelta(days=1)))
    work(SEPTEMBER + timedelta(days=1))
    usecases.expire_requests(ctx, at(SEPTEMBER + timedelta(days=1, minutes=20)))  # seats checked
    september = [e.user for e in store.ledger() if e.outcome is LedgerOutcome.REMOVED]
    assert len(september) == 2

    directory.refuse_all = PermissionDenied("Insufficient privileges", "GroupMember.ReadWrite.All")
    usecases.expire_requests(ctx, at(OCTOBER))
    work(OCTOBER)

    directory.refuse_all = None
    work(NOVEMBER)  # handed back: decided a month ago
    waiting = {r.user.upn for r in store.requests() if r.state.value == "DUE"}
    licences.pending = {sorted(waiting)[0]}  # this one's seat never settles
    for day in range(3):
        tick = NOVEMBER + timedelta(days=day)
        usecases.expire_requests(ctx, at(tick))
        work(tick)
    usecases.expire_requests(ctx, at(NOVEMBER + timedelta(days=6)))  # past seat_check_within
    removed = [e for e in store.ledger() if e.outcome is LedgerOutcome.REMOVED]
    assert len(removed) == 5, [(e.user.upn, e.at) for e in removed]

    restore_at = NOVEMBER + timedelta(days=13)
    appealed = next(e for e in removed if e.user == september[1])
    for user in september:
        usecases.restore(ctx, usecases.RestoreCommand(enforced.name, user=user.upn), restore_at)
    # An upheld appeal, as the appeal page records it besides the RESTORED entry.
    store.append_ledger(
        LedgerEntry(
            id=f"{appealed.request_id}:APPEALED",
            at=restore_at,
            policy=enforced.name,
            group=appealed.group,
            request_id=appealed.request_id,
            run_id=appealed.run_id,
            user=appealed.user,
            outcome=LedgerOutcome.APPEALED,
            detail="appeal upheld",
        )
    )
    return ctx
