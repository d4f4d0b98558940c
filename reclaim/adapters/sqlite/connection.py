"""The store's connection to its file: one per thread, transactions and savepoints, and the
quarantine that keeps a row which does not read back from stopping a policy."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from reclaim.adapters.rows import stored_rows
from reclaim.adapters.sqlite.schema import SCHEMA, add_columns, ts
from reclaim.errors import ConfigurationError

log = logging.getLogger("reclaim.adapters.sqlite")
T = TypeVar("T")


class SqliteConnection:
    """The file that each part of SqliteStore (RequestTables, RunTables, CursorTables, all its
    bases) reads and writes through; made ready for this version of the schema on opening."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            self._db().executescript(SCHEMA)  # runs in its own transaction
            with self._write() as db:
                add_columns(db)
        except sqlite3.Error as error:
            raise ConfigurationError(
                f"state database {self.path}: {error} (RECLAIM_STATE_DB)"
            ) from None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # autocommit mode: transactions are explicit, so a write takes the lock up front
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; inside atomic() a savepoint of the enclosing one (a failed step is
        undone alone, and the whole commits once)."""
        db = self._db()
        depth = getattr(self._local, "depth", 0)
        begin, undo, done = (
            ("BEGIN IMMEDIATE", "ROLLBACK", "COMMIT")
            if depth == 0
            else (f"SAVEPOINT s{depth}", f"ROLLBACK TO s{depth}", f"RELEASE s{depth}")
        )
        db.execute(begin)
        self._local.depth = depth + 1
        try:
            yield db
        except BaseException:
            db.execute(undo)
            if depth:
                db.execute(done)
            raise
        finally:
            self._local.depth = depth
        db.execute(done)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """The writes inside commit together: each commit is an fsync, and a removal's steps
        (request, ledger, queue message) are one fact."""
        with self._write():
            yield

    def _parsed(
        self, table: str, rows: Iterable[sqlite3.Row], parse: Callable[[sqlite3.Row], T]
    ) -> list[T]:
        """`parse` of every row; one that does not parse is skipped and recorded in the
        quarantine table (left in place: a newer reclaim may have written it)."""
        return stored_rows(rows, parse, lambda row, why: self._quarantine(table, row, why))

    def _quarantine(self, table: str, row: sqlite3.Row, reason: str) -> None:
        data = dict(row)
        row_key = str(data.get("id") or json.dumps(data, default=str, sort_keys=True)[:200])
        log.error("stored row %s %r skipped (recorded in the quarantine table): %s", table,
                  row_key, reason)  # fmt: skip
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO quarantine VALUES (?,?,?,?,?)",
                (table, row_key, reason, json.dumps(data, default=str), ts(datetime.now(UTC))),
            )
