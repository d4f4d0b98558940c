"""Savings by month from both state stores: the same three scripted months (HELD entries for
the rate and the breaker, seat checks, restores, an appeal) give the same months from SQLite and
from Table storage (real Azurite), in one read of the period's ledger."""

from __future__ import annotations

import json
from pathlib import Path

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
