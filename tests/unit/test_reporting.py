"""Report figures from a scripted history: seats really freed, savings net of restores, halts."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

from reclaim import reporting, usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.model import Member, UsageRow, User
from tests.conftest import NOW, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryLicences,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(20)]


def scripted_history(
    tmp_path: Path, *, pending: frozenset[str] = frozenset(), sku: bool = True
) -> usecases.Context:
    """Week 0: 4 removed, one of them still licensed through another group, seats verified 20
    minutes later (`pending`: licence processing never settles for them). Week 1: a run halted
    by its cap. Week 2: one restore."""
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    licences = MemoryLicences(still_licensed={"u3@c.com"}, pending=set(pending))
    usage = MemoryUsage([UsageRow(f"u{i}@c.com", 1.0 if i < 4 else 90.0) for i in range(20)], NOW)
    policy = make_policy(
        mode="enforce",
        limits={"max_removals_per_run": 5, "max_percent_of_group": 25},
        licence={"entra_sku_id": "c5928f49-12ba-48f7-ada3-0d743a3601d5"} if sku else {},
    )
    queue = MemoryQueue()
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        queue,
        MemoryAdapters(directory, usage, MemoryCampaign(), licences),
        {policy.name: policy},
    )
    usecases.run_policy(ctx, policy, NOW)
    for message in queue.drain():
        usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW)
    checked = usecases.expire_requests(ctx, NOW + timedelta(minutes=20)).seats_checked
    assert checked == (4 - len(pending) if sku else 0)
    usage.rows = [UsageRow(f"u{i}@c.com", 0.0) for i in range(20)]
    usage.observed_at = NOW + timedelta(days=7)
    halted = usecases.run_policy(ctx, policy, NOW + timedelta(days=7))
    assert halted.halted
    usecases.restore(
        ctx, usecases.RestoreCommand(policy.name, user="u0@c.com"), NOW + timedelta(days=14)
    )
    return ctx


def test_report_figures(tmp_path: Path) -> None:
    (r,) = usecases.report(scripted_history(tmp_path))
    assert (r.runs_completed, len(r.halted), r.members, r.candidates) == (1, 1, 16, 16)
    assert (r.removed, r.restored, r.seats_not_freed, r.seats_freed) == (4, 1, 1, 2)
    assert (r.monthly_savings, r.yearly_savings) == (50.0, 600.0)
    assert "16 candidates exceed max_removals_per_run 5" in r.halted[0][1]
    assert r.timeline == {NOW.date(): (3, 75.0), (NOW + timedelta(days=14)).date(): (-1, -25.0)}


def test_unverified_and_potential_savings_are_apart_from_verified(tmp_path: Path) -> None:
    (r,) = usecases.report(scripted_history(tmp_path, pending=frozenset({"u2@c.com"})))
    # u0 freed then restored, u1 freed, u2 never settled, u3 still licensed elsewhere
    assert (r.seats_freed, r.monthly_savings, r.seats_not_freed) == (1, 25.0, 1)
    assert (r.unverified, r.unverified_monthly) == (1, 25.0)
    assert r.potential_monthly == 16 * 25.0  # the latest (halted) run's candidates


def test_removals_nobody_verified_are_not_counted_as_freed_seats(tmp_path: Path) -> None:
    """Issue 13 defect: a removal whose seat was not checked counted as freed."""
    (r,) = usecases.report(scripted_history(tmp_path, sku=False))
    assert (r.removed, r.restored, r.seats_freed, r.monthly_savings) == (4, 1, 0, 0.0)
    assert (r.unverified, r.unverified_monthly) == (3, 75.0)  # u0 was restored: not counted
    assert r.timeline == {}


def test_since_limits_the_window(tmp_path: Path) -> None:
    ctx = scripted_history(tmp_path)
    (r,) = usecases.report(ctx, since=NOW + timedelta(days=10))
    assert (r.removed, r.restored, r.seats_freed, r.monthly_savings) == (0, 1, 0, 0.0)


def test_csv_and_json_carry_the_same_figures(tmp_path: Path) -> None:
    reports = usecases.report(scripted_history(tmp_path))
    (row,) = list(csv.DictReader(io.StringIO(reporting.as_csv(reports))))
    assert (row["unverified"], row["unverified_monthly"], row["potential_monthly"]) == (
        "0",
        "0.0",
        "400.0",
    )
    assert (row["seats_freed"], row["monthly_savings"], row["yearly_savings"]) == (
        "2",
        "50.0",
        "600.0",
    )
    (data,) = json.loads(reporting.as_json(reports))
    assert data["seats_freed"] == 2 and data["halted_runs"][0]["reason"].startswith("16 candidates")
    assert [p["seats_freed"] for p in data["timeline"]] == [3, -1]


def test_html_is_one_self_contained_file(tmp_path: Path) -> None:
    page = reporting.as_html(usecases.report(scripted_history(tmp_path)), NOW, timedelta(days=90))
    assert '<svg id="savings-chart"' in page and "50.00 USD" in page and "600.00 USD" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
