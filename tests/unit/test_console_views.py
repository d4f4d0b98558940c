"""The console's view models (reclaim/usecases/console_*.py) over the real SQLite store: what the
pages count, computed from the same records as `report` and `explain`."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.breaker import Breaker, HaltKind
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.usecases.console_policies import console_policies, console_policy
from reclaim.usecases.console_run import RunFilter, console_run
from tests.conftest import NOW, asking_policy, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", display_name=f"User {i}") for i in range(6)]
USAGE = [UsageRow(f"u{i}@c.com", 1.0 if i < 3 else 120.0) for i in range(6)]  # u0..u2 idle


@pytest.fixture
def ctx(tmp_path: Path) -> usecases.Context:
    asking = asking_policy()
    tight = make_policy(name="tight", limits={"max_removals_per_run": 1})
    ids = (f"id-{n:03d}" for n in itertools.count())
    return usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        MemoryAdapters(
            MemoryDirectory({"SF": [Member(u) for u in USERS]}),
            MemoryUsage(USAGE, NOW),
            MemoryCampaign(),
        ),
        {asking.name: asking, tight.name: tight},
        new_id=lambda: next(ids),
    )


def test_the_overview_counts_runs_halts_pending_asks_and_open_breakers(
    ctx: usecases.Context,
) -> None:
    asking, tight = ctx.policies["salesforce"], ctx.policies["tight"]
    usecases.run_policy(ctx, asking, NOW)
    assert usecases.run_policy(ctx, tight, NOW).halted
    usecases.record_answer(
        ctx, usecases.AnswerCommand(AnswerValue.YES, NOW, policy="salesforce", user="u0@c.com"), NOW
    )
    assert ctx.store.save_breaker(
        Breaker("salesforce", "ad", True, HaltKind.PERMISSION, "grant it", opened_at=NOW, version=1)
    )

    overview = console_policies(ctx, NOW + timedelta(hours=1))
    by_name = {s.policy.name: s for s in overview.policies}
    assert list(by_name) == ["salesforce", "tight"]
    sales = by_name["salesforce"]
    assert (sales.runs, sales.pending_asks, sales.due_removals, sales.halts) == (1, 2, 0, [])
    assert sales.removals_halted.startswith("removals halted since")
    assert sales.last_run is not None and sales.last_run.asked == 3
    assert sales.next_due > NOW + timedelta(hours=1)
    (halt,) = by_name["tight"].halts
    assert halt.what == "run" and "max_removals_per_run 1" in halt.reason
    assert by_name["tight"].removals_halted == ""
    assert "off" in overview.kill_switch

    detail = console_policy(ctx, "salesforce", NOW)
    assert detail is not None
    assert [a.user for a in detail.asks] == ["u1@c.com", "u2@c.com"]
    assert all(a.deadline == NOW + timedelta(days=7) for a in detail.asks)
    assert console_policy(ctx, "visio", NOW) is None


def test_a_runs_decisions_filter_by_kind_and_by_any_part_of_the_user(ctx: usecases.Context) -> None:
    run_id = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW).run.id
    everything = console_run(ctx, "salesforce", run_id, RunFilter())
    assert everything is not None and everything.stored == len(everything.shown) == 6
    candidates = console_run(ctx, "salesforce", run_id, RunFilter(decision="candidate"))
    assert candidates is not None
    assert [d.user.upn for d in candidates.shown] == ["u0@c.com", "u1@c.com", "u2@c.com"]
    by_name = console_run(ctx, "salesforce", run_id, RunFilter(user="  USER 4 "))
    assert by_name is not None and [d.user.upn for d in by_name.shown] == ["u4@c.com"]
    none = console_run(ctx, "salesforce", run_id, RunFilter("ACTIVE", "u1@"))
    assert none is not None and none.shown == []
    assert console_run(ctx, "salesforce", "nope", RunFilter()) is None
    assert console_run(ctx, "visio", run_id, RunFilter()) is None
    assert console_run(ctx, "tight", run_id, RunFilter()) is None  # another policy's run
    with pytest.raises(usecases.InputError, match="expected one of"):
        console_run(ctx, "salesforce", run_id, RunFilter(decision="MAYBE"))
    with pytest.raises(usecases.InputError, match="at most 200"):
        console_run(ctx, "salesforce", run_id, RunFilter(user="x" * 201))
