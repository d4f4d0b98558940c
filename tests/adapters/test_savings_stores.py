"""Savings by month from both state stores: the same three scripted months (HELD entries for
the rate and the breaker, seat checks, restores, an appeal) give the same months from SQLite and
from Table storage (real Azurite), in one read of the period's ledger."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reclaim import reporting, usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.ports import StateStore
from tests.support.savings_history import EXPECTED, REPORTED_AT, scripted_months
from tests.unit.test_savings_report import figures


def table_store(env: dict[str, str]) -> StateStore:
    from reclaim.adapters.storage import storage_from_env
    from reclaim.adapters.tables import TableStore

    return TableStore.from_account(storage_from_env(env), env["RECLAIM_TABLE_PREFIX"])


@pytest.mark.azurite
def test_table_storage_gives_the_months_sqlite_gives(
    tmp_path: Path, storage_env: dict[str, str]
) -> None:
    months = {}
    for name, store in (
        ("sqlite", SqliteStore(tmp_path / "s.sqlite3")),
        ("tables", table_store(storage_env)),
    ):
        (r,) = usecases.report(scripted_months(store), None, REPORTED_AT)
        assert r.savings is not None
        assert {f"{m.month:%Y-%m}": figures(m) for m in r.savings.months} == EXPECTED, name
        (months[name],) = json.loads(reporting.as_json([r]))
    assert months["tables"]["months"] == months["sqlite"]["months"]


@pytest.mark.azurite
def test_the_report_queries_the_ledger_and_the_runs_tables_once_for_all_months(
    storage_env: dict[str, str],
) -> None:
    """No query per month: three months (and the holds before them) come from one query of the
    Ledger table and one of the Runs table."""
    store = table_store(storage_env)
    ctx = scripted_months(store)
    access = store._ledger._access  # type: ignore[attr-defined]
    queries: Counter[str] = Counter()
    query = access.query

    def counted(table: Any, query_filter: str, parameters: Any = None) -> Any:
        queries[table.table_name.removeprefix(storage_env["RECLAIM_TABLE_PREFIX"])] += 1
        return query(table, query_filter, parameters)

    access.query = counted
    (r,) = usecases.report(ctx, REPORTED_AT.replace(month=9, day=1), REPORTED_AT)
    assert r.savings is not None and len(r.savings.months) == 3
    assert (queries["Ledger"], queries["Runs"]) == (1, 1), queries
