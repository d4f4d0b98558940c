"""reclaim.ports.WriteBudget on both stores: concurrent takers never lose an update (Table ETag,
SQLite immediate transaction), and an unreachable store is a TransientError, never a hang."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reclaim.adapters.storage import storage_from_env
from reclaim.adapters.write_budget import TABLE_OPTIONS, SqliteWriteBudget, TableWriteBudget
from reclaim.domain.write_budget import Bucket, BudgetRule, take
from reclaim.errors import TransientError
from reclaim.ports import WriteBudget

RULE = BudgetRule(rate=1e-6, burst=1000.0)  # no refill to speak of: every token is counted


def _tables(storage_env: dict[str, str]) -> Callable[[], WriteBudget]:
    service = storage_from_env(storage_env).table_service(**TABLE_OPTIONS)
    name = f"{storage_env['RECLAIM_TABLE_PREFIX']}Cursors"
    service.create_table_if_not_exists(name)
    return lambda: TableWriteBudget(lambda: service.get_table_client(name), "graph-writes:t:c")


@pytest.fixture(params=["sqlite", "tables"])
def budgets(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], WriteBudget]:
    """Builds one budget client per 'instance', all on the same stored bucket."""
    if request.param == "tables":
        return _tables(request.getfixturevalue("storage_env"))
    return lambda: SqliteWriteBudget(tmp_path / "state.sqlite3", "graph-writes:t:c")


def test_concurrent_takers_never_lose_a_token(budgets: Callable[[], WriteBudget]) -> None:
    def take_one(bucket: Bucket | None) -> tuple[Bucket, int]:
        reservation = take(bucket, 1, RULE, now=0.0)
        return reservation.bucket, len(reservation.send_at)

    taken: list[int] = []

    def instance() -> None:
        budget = budgets()
        for _ in range(15):
            taken.append(budget.change(take_one))

    threads = [threading.Thread(target=instance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    left = budgets().change(lambda bucket: (bucket or Bucket(-1, 0), bucket))
    assert sum(taken) == 60
    assert left is not None and left.tokens == pytest.approx(RULE.burst - 60)


def test_a_store_that_is_not_there_is_transient(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TransientError, match="write budget"):
        SqliteWriteBudget(tmp_path / "file" / "db").change(lambda b: (Bucket(1, 0), None))
    closed_port = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    service = storage_from_env({"AzureWebJobsStorage": closed_port}).table_service(**TABLE_OPTIONS)
    budget = TableWriteBudget(lambda: service.get_table_client("nothingCursors"))
    with pytest.raises(TransientError, match="write budget in Table storage"):
        budget.change(lambda b: (Bucket(1, 0), None))
