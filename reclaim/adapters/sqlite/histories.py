"""Run histories (reclaim.adapters.history) in the SQLite store: one row per run, its packed
pieces joined in one BLOB (SQLite has no size limit that a run's history reaches)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from reclaim.adapters.history import HistoryError, pack, unpack
from reclaim.domain.history import RunHistory

log = logging.getLogger("reclaim.adapters.sqlite")

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS histories (
    run_id TEXT PRIMARY KEY, policy TEXT NOT NULL, started_at TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS histories_by_time ON histories (policy, started_at);
"""


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


class SqliteHistories:
    """The histories table of reclaim.adapters.sqlite.SqliteStore, over its connection."""

    def __init__(
        self,
        db: Callable[[], sqlite3.Connection],
        write: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._db = db
        self._write = write
        with self._write() as connection:
            for statement in filter(str.strip, SQLITE_SCHEMA.split(";")):
                connection.execute(statement)

    def record(self, history: RunHistory) -> None:
        with self._write() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO histories VALUES (?,?,?,?)",
                (history.run_id, history.policy, _ts(history.started_at), b"".join(pack(history))),
            )

    def read(self, policy: str, since: datetime | None) -> list[RunHistory]:
        rows = self._db().execute(
            "SELECT * FROM histories WHERE policy=? AND started_at>=? ORDER BY started_at, run_id",
            (policy, _ts(since) if since else ""),
        )
        found = []
        for row in rows.fetchall():
            try:
                found.append(unpack([row["data"]]))
            except HistoryError as error:
                log.error("run history %s skipped: %s", row["run_id"], error)
        return found

    def compact(self, policy: str, before: datetime) -> int:
        """Forget the histories of runs that started before `before` (retention)."""
        query = "FROM histories WHERE policy=? AND started_at<?"
        if not self._db().execute("SELECT COUNT(*) " + query, (policy, _ts(before))).fetchone()[0]:
            return 0
        with self._write() as connection:
            return connection.execute("DELETE " + query, (policy, _ts(before))).rowcount
