"""reclaim.ports.WriteBudget on each state store: the fleet's Graph write bucket in one record.

- Table storage: one entity in the Cursors table (PartitionKey "!budget": no policy name starts
  with "!"), replaced only while its ETag is unchanged (If-Match), created by insert-or-conflict.
- SQLite (the CLI and the local host): one row in the state database, changed inside an
  immediate transaction, so processes sharing the file take turns.

Either way a lost race reads again and recomputes; contention that outlasts `ATTEMPTS` or a store
that cannot be reached raises TransientError, and the Graph client falls back to its in-process
pacer (reclaim.adapters.graph.pacing.FleetPacer).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reclaim.domain.write_budget import Bucket
from reclaim.errors import ConfigurationError, TransientError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from reclaim.ports import WriteBudget
    from reclaim.settings import Settings

T = TypeVar("T")

BUDGET_PARTITION = "!budget"
GRAPH_WRITES = "graph-writes"
ATTEMPTS = 20  # compare-and-set rounds before giving up on the store for this take
# A budget call sits in front of every Graph write: fail fast rather than hold the write.
TABLE_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 10, "retry_total": 1}


def _pause(attempt: int) -> None:
    """Between compare-and-set rounds: short and jittered, so racing instances spread out."""
    time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 -- spacing, not secrecy


class TableWriteBudget:
    def __init__(self, table: Callable[[], TableClient], row: str = GRAPH_WRITES) -> None:
        self._connect = table  # on first use: building a Graph client needs no storage call
        self._table: TableClient | None = None
        self._row = row

    @classmethod
    def from_settings(cls, settings: Settings, row: str = GRAPH_WRITES) -> TableWriteBudget:
        def connect() -> TableClient:
            from reclaim.adapters.storage import storage_from_env

            service = storage_from_env().table_service(**TABLE_OPTIONS)
            return service.get_table_client(f"{settings.table_prefix}Cursors")

        return cls(connect, row)

    def change(self, update: Callable[[Bucket | None], tuple[Bucket, T]]) -> T:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            AzureError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        try:
            if self._table is None:
                self._table = self._connect()
            table = self._table
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    stored = table.get_entity(BUDGET_PARTITION, self._row)
                except ResourceNotFoundError as error:
                    if getattr(error, "error_code", "") == "TableNotFound":
                        raise
                    stored = None
                bucket = (
                    None
                    if stored is None
                    else Bucket(float(stored["tokens"]), float(stored["updated"]))
                )
                new, result = update(bucket)
                entity = {
                    "PartitionKey": BUDGET_PARTITION,
                    "RowKey": self._row,
                    "tokens": float(new.tokens),
                    "updated": float(new.updated),
                }
                try:
                    if stored is None:
                        table.create_entity(entity)
                    else:
                        table.update_entity(
                            entity,
                            mode=UpdateMode.REPLACE,
                            etag=stored.metadata["etag"],
                            match_condition=MatchConditions.IfNotModified,
                        )
                except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                    _pause(attempt)  # another instance changed it first
                    continue
                return result
        except AzureError as error:
            raise TransientError(f"write budget in Table storage: {type(error).__name__}") from None
        except ConfigurationError as error:  # no storage account named: the store says so too
            raise TransientError(f"write budget in Table storage: {error}") from None
        raise TransientError(f"write budget in Table storage: still contended after {ATTEMPTS}")


_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS write_budget ("
    "name TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)"
)


class SqliteWriteBudget:
    def __init__(self, path: Path | str, name: str = GRAPH_WRITES) -> None:
        self.path = str(path)
        self._name = name
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SQLITE_SCHEMA)
            self._local.db = db
        return db

    def change(self, update: Callable[[Bucket | None], tuple[Bucket, T]]) -> T:
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
            try:
                row = db.execute(
                    "SELECT tokens, updated FROM write_budget WHERE name = ?", (self._name,)
                ).fetchone()
                new, result = update(None if row is None else Bucket(row[0], row[1]))
                db.execute(
                    "INSERT INTO write_budget (name, tokens, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, "
                    "updated = excluded.updated",
                    (self._name, new.tokens, new.updated),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as error:
            raise TransientError(f"write budget in {self.path}: {error}") from None
        return result


def write_budget_from_settings(settings: Settings) -> WriteBudget:
    """The budget in the store the app keeps its state in (RECLAIM_STATE_BACKEND), one per
    app registration and tenant, as Graph counts."""
    row = f"{GRAPH_WRITES}:{settings.tenant_id}:{settings.client_id}"
    if settings.state_backend == "tables":
        return TableWriteBudget.from_settings(settings, row)
    return SqliteWriteBudget(settings.state_db, row)
