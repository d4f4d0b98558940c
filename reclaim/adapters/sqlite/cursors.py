"""The schedule cursor, the run lease and the circuit breakers: small rows that runs and workers
take turns on, each written by compare-and-set."""

from __future__ import annotations

from datetime import datetime, timedelta

from reclaim.adapters.rows import breaker_from_row
from reclaim.adapters.sqlite.connection import SqliteConnection
from reclaim.adapters.sqlite.schema import dt, ts
from reclaim.domain.breaker import Breaker
from reclaim.domain.records import Lease


class CursorTables(SqliteConnection):
    """The cursors, leases and breakers tables of SqliteStore."""

    # ---- schedule ------------------------------------------------------------------------------

    def schedule_cursor(self, policy: str) -> datetime | None:
        row = self._db().execute("SELECT due FROM cursors WHERE policy=?", (policy,)).fetchone()
        return dt(row[0]) if row else None

    def advance_schedule(self, policy: str, expected: datetime | None, due: datetime) -> bool:
        with self._write() as db:
            if expected is None:
                cursor = db.execute("INSERT OR IGNORE INTO cursors VALUES (?,?)", (policy, ts(due)))
            else:
                cursor = db.execute(
                    "UPDATE cursors SET due=? WHERE policy=? AND due=?",
                    (ts(due), policy, ts(expected)),
                )
            return cursor.rowcount == 1

    # ---- run lease ---------------------------------------------------------------------------

    def take_lease(self, policy: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
        # Read and write in one immediate transaction: the write lock is taken at BEGIN, so of
        # several processes at once exactly one sees the lease free and takes it.
        with self._write() as db:
            row = db.execute(
                "SELECT holder, since, expires FROM leases WHERE policy=?", (policy,)
            ).fetchone()
            since = now
            if row is not None:
                current = Lease(
                    policy,
                    row["holder"],
                    datetime.fromisoformat(row["since"]),
                    datetime.fromisoformat(row["expires"]),
                )
                if current.holder != holder and now < current.expires:
                    return current
                if current.holder == holder:
                    since = current.since
            lease = Lease(policy, holder, since, now + ttl)
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?,?,?,?)",
                (policy, holder, ts(lease.since), ts(lease.expires)),
            )
            return lease

    def release_lease(self, policy: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE policy=? AND holder=?", (policy, holder))

    # ---- circuit breakers ----------------------------------------------------------------------

    def get_breaker(self, policy: str, directory: str) -> Breaker | None:
        row = (
            self._db()
            .execute("SELECT * FROM breakers WHERE policy=? AND directory=?", (policy, directory))
            .fetchone()
        )
        return breaker_from_row(dict(row), dt) if row else None

    def save_breaker(self, breaker: Breaker) -> bool:
        values = (
            int(breaker.is_open),
            breaker.kind.value if breaker.kind else None,
            breaker.reason,
            breaker.permission,
            ts(breaker.opened_at),
            ts(breaker.retry_at),
            breaker.outages,
            breaker.version,
        )
        with self._write() as db:
            if breaker.version == 1:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO breakers VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (breaker.policy, breaker.directory, *values),
                )
            else:
                cursor = db.execute(
                    "UPDATE breakers SET is_open=?, kind=?, reason=?, permission=?, opened_at=?, "
                    "retry_at=?, outages=?, version=? WHERE policy=? AND directory=? AND version=?",
                    (*values, breaker.policy, breaker.directory, breaker.version - 1),
                )
            return cursor.rowcount == 1

    def breakers(self) -> list[Breaker]:
        rows = self._db().execute("SELECT * FROM breakers ORDER BY policy, directory")
        return [breaker_from_row(dict(r), dt) for r in rows]
