"""The operators' switch log (reclaim.domain.switches) in both state stores.

Every flip is a row of its own and is never overwritten, so the log is the switch's history; the
newest row (by the flip's time) decides. SQLite keeps the rows in a `switches` table; Table storage
in `<prefix>Switches`, PartitionKey = the switch's name, RowKey = the time inverted, so the newest
flip is the first row of the partition and reading the switch is one small query.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from reclaim.adapters.rows import edm_time
from reclaim.domain.switches import SwitchChange

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS switches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, is_on INTEGER NOT NULL,
    at TEXT NOT NULL, set_by TEXT NOT NULL, via TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS switches_by_time ON switches (name, at);
"""

_MAX_MICROSECONDS = 10**17 - 1  # past the year 5000
_MAX_NANOSECONDS = 10**20 - 1


def _change(name: str, on: Any, at: datetime, by: str, via: str, reason: str) -> SwitchChange:
    return SwitchChange(name, bool(on), at, by, via, reason)


class SqliteSwitchLog:
    """The switch log of reclaim.adapters.sqlite.SqliteStore, over its connection."""

    def __init__(
        self, db: Callable[[], Any], write: Callable[[], AbstractContextManager[Any]]
    ) -> None:
        self._db = db
        self._write = write
        with self._write() as connection:
            for statement in filter(str.strip, SQLITE_SCHEMA.split(";")):
                connection.execute(statement)

    def record(self, change: SwitchChange) -> None:
        with self._write() as connection:
            connection.execute(
                "INSERT INTO switches (name, is_on, at, set_by, via, reason) VALUES (?,?,?,?,?,?)",
                (
                    change.name,
                    int(change.on),
                    change.at.astimezone(UTC).isoformat(),
                    change.by,
                    change.via,
                    change.reason,
                ),
            )

    def history(self, name: str, limit: int) -> list[SwitchChange]:
        rows = self._db().execute(
            "SELECT name, is_on, at, set_by, via, reason FROM switches WHERE name=? "
            "ORDER BY at DESC, seq DESC LIMIT ?",
            (name, limit),
        )
        return [_change(r[0], r[1], datetime.fromisoformat(r[2]), r[3], r[4], r[5]) for r in rows]


class TableSwitchLog:
    """The switch log of reclaim.adapters.tables.TableStore, in its own table."""

    def __init__(self, table: Any) -> None:  # azure.data.tables.TableClient
        self._table = table

    @staticmethod
    def _row_key(at: datetime) -> str:
        # Inverted times sort the newest first; the second part orders flips of the same instant
        # by when they were written, and the last keeps two writers apart.
        moment = at.astimezone(UTC)
        micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
        return (
            f"{_MAX_MICROSECONDS - micros:017d}:{_MAX_NANOSECONDS - time.time_ns():020d}:"
            f"{uuid.uuid4().hex[:8]}"
        )

    def record(self, change: SwitchChange) -> None:
        self._table.create_entity(
            {
                "PartitionKey": quote(change.name, safe=""),
                "RowKey": self._row_key(change.at),
                "name": change.name,
                "on": change.on,
                "at": change.at.astimezone(UTC),
                "by": change.by,
                "via": change.via,
                "reason": change.reason,
            }
        )

    def history(self, name: str, limit: int) -> list[SwitchChange]:
        rows: Iterator[Any] = iter(
            self._table.query_entities(
                "PartitionKey eq @p",
                parameters={"p": quote(name, safe="")},
                results_per_page=limit,
            )
        )
        return [
            _change(
                e["name"],
                e["on"],
                edm_time(e["at"]),
                e["by"],
                e["via"],
                e.get("reason", ""),
            )
            for e in itertools.islice(rows, limit)
        ]
