"""The report's savings by month over three scripted months of real use cases (SQLite): each
figure per month, the months adding up to the report's totals, one read of the period, and the
CLI's forms of it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from reclaim import reporting, savings_output, usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.savings import Amount, SavingsMonth
from tests.support.savings_history import EXPECTED, OCTOBER, REPORTED_AT, scripted_months


def figures(month: SavingsMonth) -> dict[str, Any]:
    def pair(amount: Amount | None) -> tuple[int, float] | None:
        return None if amount is None else (amount.count, round(amount.cost, 2))

    return {
        "potential": pair(month.potential),
        "realised": pair(month.realised),
        "unverified": pair(month.unverified),
        "restored": pair(month.restored),
        "appealed": pair(month.appealed),
        "backlog": {cause.value: pair(a) for cause, a in month.backlog},
    }


def test_each_month_shows_its_potential_realised_unverified_restores_and_backlog(
    tmp_path: Path,
) -> None:
    ctx = scripted_months(SqliteStore(tmp_path / "s.sqlite3"))
    (r,) = usecases.report(ctx, None, REPORTED_AT)
    assert r.savings is not None
    assert {f"{m.month:%Y-%m}": figures(m) for m in r.savings.months} == EXPECTED


def test_the_months_add_up_to_the_reports_totals(tmp_path: Path) -> None:
    ctx = scripted_months(SqliteStore(tmp_path / "s.sqlite3"))
    (r,) = usecases.report(ctx, None, REPORTED_AT)
    assert r.savings is not None
    months = r.savings.months
    assert sum(m.realised.count for m in months) == r.seats_freed == 2
    assert sum(m.realised.cost for m in months) == r.monthly_savings == 50.0
    assert sum(m.unverified.count for m in months) == r.unverified == 1
    assert sum(m.unverified.cost for m in months) == r.unverified_monthly
    assert sum(m.restored.count for m in months) == r.restored == 2
    assert r.savings.potential is not None
    assert r.savings.potential.cost == r.potential_monthly  # the latest run's, not a sum
    assert r.savings.backlog == Amount() and r.held == []  # nothing waits at the end


def test_since_counts_from_its_month_and_keeps_holds_that_began_before(tmp_path: Path) -> None:
    """From 5 October: September's removals are out (so their restores take nothing back from
    November), but the request the rate has held since September still waits at October's end."""
    ctx = scripted_months(SqliteStore(tmp_path / "s.sqlite3"))
    (r,) = usecases.report(ctx, OCTOBER.replace(day=5), REPORTED_AT)
    assert r.savings is not None
    october, november = r.savings.months
    assert figures(october)["backlog"] == {"rate": (1, 25.0), "breaker": (2, 50.0)}
    assert figures(november) == EXPECTED["2026-11"] | {
        "realised": (2, 50.0),
        "restored": (2, 0.0),
        "appealed": (1, 0.0),
    }


class CountingStore(SqliteStore):
    reads: list[str]

    def ledger(self, since=None, policy=None):  # type: ignore[no-untyped-def]
        self.reads.append("ledger")
        return super().ledger(since, policy)

    def runs(self, since=None, policy=None):  # type: ignore[no-untyped-def]
        self.reads.append("runs")
        return super().runs(since, policy)


def test_the_report_reads_the_period_once_whatever_the_number_of_months(tmp_path: Path) -> None:
    ctx = scripted_months(SqliteStore(tmp_path / "s.sqlite3"))
    counting = CountingStore(tmp_path / "s.sqlite3")
    counting.reads = []
    ctx.store = counting
    usecases.report(ctx, None, REPORTED_AT)
    assert sorted(counting.reads) == ["ledger", "runs"]


def test_csv_and_json_carry_the_months(tmp_path: Path) -> None:
    ctx = scripted_months(SqliteStore(tmp_path / "s.sqlite3"))
    reports = usecases.report(ctx, None, REPORTED_AT)
    (policy,) = json.loads(reporting.as_json(reports))
    by_month = {m["month"]: m for m in policy["months"]}
    assert by_month["2026-10"]["potential"] is None
    assert by_month["2026-10"]["backlog"] == {
        "count": 3,
        "monthly": 75.0,
        "by_cause": {
            "rate": {"count": 1, "monthly": 25.0},
            "breaker": {"count": 2, "monthly": 50.0},
        },
    }
    assert by_month["2026-11"]["appealed"] == {"count": 1, "monthly": 25.0}
    rows = list(csv.DictReader(io.StringIO(savings_output.as_csv(reporting.savings(reports)))))
    assert [row["month"] for row in rows] == ["2026-09", "2026-10", "2026-11"]
    september = rows[0]
    assert (september["potential"], september["potential_monthly"]) == ("5", "125.0")
    assert (september["backlog"], september["backlog_rate"], september["backlog_monthly"]) == (
        "3",
        "3",
        "75.0",
    )
    assert rows[1]["potential"] == "" and rows[1]["backlog_breaker"] == "2"
    table = reporting.as_table(reports)
    assert "2026-10" in table and "no run" in table and "rate 1 (25.00 USD)" in table


def test_the_cli_prints_the_months_as_csv_and_refuses_them_as_json(tmp_path: Path) -> None:
    from reclaim import cli

    scripted_months(SqliteStore(tmp_path / "s.sqlite3"))
    env = {"RECLAIM_STATE_DB": str(tmp_path / "s.sqlite3")}
    out, err = io.StringIO(), io.StringIO()
    args = ["report", "--months", "--format", "csv"]
    code = cli.main(args, now=REPORTED_AT, env=env, out=out, err=err)
    assert code == 0, err.getvalue()
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(row["month"], row["realised"], row["backlog"]) for row in rows] == [
        ("2026-09", "2", "3"),
        ("2026-10", "0", "3"),
        ("2026-11", "0", "0"),
    ]
    args = ["report", "--months", "--format", "json"]
    code = cli.main(args, now=REPORTED_AT, env=env, out=out, err=err)
    assert code == 2 and "--months: use --format table or --format csv" in err.getvalue()
