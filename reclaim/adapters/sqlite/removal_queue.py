"""The CLI's durable local removal queue, in the same SQLite file as the state (SqliteStore)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reclaim.adapters.sqlite.store import SqliteStore
from reclaim.domain.records import RemovalMessage


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()  # as SqliteStore stores times: comparable as text


@dataclass(frozen=True)
class LocalMessage:
    """A message taken from the local queue; dequeue_count doubles as its pop receipt."""

    id: int
    body: str
    dequeue_count: int


class SqliteQueue:
    """reclaim.ports.WorkQueue for the CLI: removal messages kept in the state file until a worker
    settles them, so a message deferred by throttling or the kill switch is not lost.

    As on Azure queues, a message taken stays invisible for `lease` and is deleted only once its
    outcome is stored (`delete`); a worker that dies holding it lets it reappear after the lease.
    After `max_dequeue_count` deliveries (workers dying each time) it goes to the poison table."""

    def __init__(
        self,
        store: SqliteStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        lease: timedelta = timedelta(minutes=5),
        max_dequeue_count: int = 5,
    ) -> None:
        self._store = store
        self._clock = clock
        self.lease = lease
        self.max_dequeue_count = max_dequeue_count
        with store._write() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "body TEXT NOT NULL, visible_at TEXT NOT NULL, dequeue_count INTEGER NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS queue_poison (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "body TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)"
            )

    def enqueue(self, message: RemovalMessage, delay: timedelta | None = None) -> None:
        visible = self._clock() + (delay or timedelta(0))
        with self._store._write() as db:
            db.execute(
                "INSERT INTO queue (body, visible_at, dequeue_count) VALUES (?,?,0)",
                (message.to_json(), _ts(visible)),
            )

    def take(self) -> LocalMessage | None:
        """The next visible message, now invisible for the lease; None when none is visible."""
        now = self._clock()
        with self._store._write() as db:
            row = db.execute(
                "SELECT id, body, dequeue_count FROM queue WHERE visible_at <= ? ORDER BY id LIMIT 1",
                (_ts(now),),
            ).fetchone()
            if row is None:
                return None
            taken = LocalMessage(row["id"], row["body"], row["dequeue_count"] + 1)
            db.execute(
                "UPDATE queue SET visible_at=?, dequeue_count=? WHERE id=?",
                (_ts(now + self.lease), taken.dequeue_count, taken.id),
            )
            return taken

    def delete(self, message: LocalMessage) -> None:
        """Settled: gone for good (unless its lease ran out and another worker took it since)."""
        with self._store._write() as db:
            db.execute(
                "DELETE FROM queue WHERE id=? AND dequeue_count=?",
                (message.id, message.dequeue_count),
            )

    def poison(self, message: LocalMessage, reason: str) -> None:
        """Given up on: kept in queue_poison with the reason, for an operator to inspect."""
        with self._store._write() as db:
            db.execute(
                "INSERT INTO queue_poison (body, reason, at) VALUES (?,?,?)",
                (message.body, reason, _ts(self._clock())),
            )
            db.execute("DELETE FROM queue WHERE id=?", (message.id,))

    def waiting(self) -> int:
        return self._store._db().execute("SELECT COUNT(*) FROM queue").fetchone()[0]

    def poisoned(self) -> list[tuple[str, str]]:
        """(message text, reason) of every message given up on, oldest first."""
        rows = self._store._db().execute("SELECT body, reason FROM queue_poison ORDER BY id")
        return [(r["body"], r["reason"]) for r in rows]
