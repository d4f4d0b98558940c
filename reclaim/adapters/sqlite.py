"""The embedded state store: one SQLite file, safe for several processes at once (WAL + immediate
transactions), so the CLI works with no cloud at all."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from reclaim.adapters.rows import (
    approval_json,
    breaker_from_row,
    decision_from_row,
    ledger_from_row,
    request_from_row,
    run_from_row,
    stored_rows,
    user_json,
)
from reclaim.adapters.sqlite_history import SqliteHistories
from reclaim.adapters.switch_log import SqliteSwitchLog
from reclaim.domain.breaker import Breaker
from reclaim.domain.history import RunHistory
from reclaim.domain.lifecycle import FINAL_STATES, OPEN_STATES, Request, RequestState
from reclaim.domain.model import Answer, AnswerValue, PolicyState
from reclaim.domain.records import (
    DecisionRecord,
    Lease,
    LedgerEntry,
    RunRecord,
)
from reclaim.domain.switches import SwitchChange
from reclaim.errors import ConfigurationError
from reclaim.ports import Compaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, policy TEXT NOT NULL, mode TEXT NOT NULL, started_at TEXT NOT NULL,
    status TEXT NOT NULL, members INTEGER NOT NULL, counts TEXT NOT NULL, asked INTEGER NOT NULL,
    enqueued INTEGER NOT NULL, halt_check TEXT NOT NULL, halt_reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL, policy TEXT NOT NULL, state_key TEXT NOT NULL, user TEXT NOT NULL,
    decision TEXT NOT NULL, reason TEXT NOT NULL, evidence TEXT NOT NULL,
    PRIMARY KEY (run_id, state_key));
CREATE INDEX IF NOT EXISTS decisions_by_user ON decisions (policy, state_key);
CREATE TABLE IF NOT EXISTS members (
    policy TEXT NOT NULL, state_key TEXT NOT NULL, first_seen TEXT NOT NULL,
    PRIMARY KEY (policy, state_key));
CREATE TABLE IF NOT EXISTS baselines (policy TEXT PRIMARY KEY, taken_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, policy TEXT NOT NULL, grp TEXT NOT NULL, user TEXT NOT NULL,
    state_key TEXT NOT NULL, run_id TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, deadline TEXT, reason TEXT NOT NULL, queue_reason TEXT,
    detail TEXT NOT NULL, version INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    unanswered_writes INTEGER NOT NULL DEFAULT 0, not_before TEXT, write_sent_at TEXT);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (policy, state);
CREATE TABLE IF NOT EXISTS answers (
    request_id TEXT NOT NULL, value TEXT NOT NULL, answered_at TEXT NOT NULL, source TEXT NOT NULL,
    policy TEXT NOT NULL, state_key TEXT NOT NULL, PRIMARY KEY (request_id, value));
CREATE INDEX IF NOT EXISTS answers_by_user ON answers (policy, state_key);
CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY, at TEXT NOT NULL, policy TEXT NOT NULL, grp TEXT NOT NULL,
    request_id TEXT NOT NULL, run_id TEXT NOT NULL, user TEXT NOT NULL, outcome TEXT NOT NULL,
    detail TEXT NOT NULL, seat_freed INTEGER, monthly_cost REAL NOT NULL, currency TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_by_time ON ledger (at);
CREATE TABLE IF NOT EXISTS cursors (policy TEXT PRIMARY KEY, due TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    tbl TEXT NOT NULL, row_key TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL,
    at TEXT NOT NULL, PRIMARY KEY (tbl, row_key));
CREATE TABLE IF NOT EXISTS leases (
    policy TEXT PRIMARY KEY, holder TEXT NOT NULL, since TEXT NOT NULL, expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS breakers (
    policy TEXT NOT NULL, directory TEXT NOT NULL, is_open INTEGER NOT NULL, kind TEXT,
    reason TEXT NOT NULL, permission TEXT NOT NULL, opened_at TEXT, retry_at TEXT,
    outages INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (policy, directory));
"""
# Columns added after a table was first created: (table, column, definition).
_ADDED_COLUMNS = [
    ("requests", "attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "unanswered_writes", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "write_sent_at", "TEXT"),
    ("answers", "justification", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "approval", "TEXT NOT NULL DEFAULT ''"),  # rows.approval_json
    ("requests", "not_before", "TEXT"),
]


log = logging.getLogger("reclaim.adapters.sqlite")
T = TypeVar("T")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _renamed(row: sqlite3.Row) -> dict[str, object]:
    """A row with the domain's field names ("group" is an SQL keyword, so the column is grp)."""
    data = dict(row)
    data["group"] = data.pop("grp")
    return data


class SqliteStore:
    """reclaim.ports.StateStore on a local SQLite file."""

    write_concurrency = 1  # one writer at a time holds the file's lock: no gain in more

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            self._db().executescript(_SCHEMA)  # runs in its own transaction
            self._add_columns()
        except sqlite3.Error as error:
            raise ConfigurationError(
                f"state database {self.path}: {error} (RECLAIM_STATE_DB)"
            ) from None
        self._switches = SqliteSwitchLog(self._db, self._write)
        self._histories = SqliteHistories(self._db, self._write)

    def _add_columns(self) -> None:
        """Bring a state file made by an earlier version up to this schema."""
        with self._write() as db:
            for table, column, definition in _ADDED_COLUMNS:
                present = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

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
                (table, row_key, reason, json.dumps(data, default=str), _ts(datetime.now(UTC))),
            )

    # ---- policy state --------------------------------------------------------------------------

    def policy_state(self, policy: str, now: datetime) -> PolicyState:
        db = self._db()
        baseline = db.execute("SELECT taken_at FROM baselines WHERE policy=?", (policy,)).fetchone()
        first_seen = {
            r["state_key"]: datetime.fromisoformat(r["first_seen"])
            for r in db.execute(
                "SELECT state_key, first_seen FROM members WHERE policy=?", (policy,)
            )
        }
        last_yes = {
            r["state_key"]: datetime.fromisoformat(r["at"])
            for r in db.execute(
                "SELECT state_key, MAX(answered_at) AS at FROM answers "
                "WHERE policy=? AND value='yes' GROUP BY state_key",
                (policy,),
            )
        }
        open_states = [s.value for s in OPEN_STATES]
        open_requests = {
            r["state_key"]: r["id"]
            for r in db.execute(
                # only "?" placeholders are formatted in; values stay parameters
                f"SELECT state_key, id FROM requests WHERE policy=? AND state IN "  # noqa: S608
                f"({','.join('?' * len(open_states))})",
                (policy, *open_states),
            )
        }
        return PolicyState(
            baseline_at=_dt(baseline["taken_at"]) if baseline else None,
            first_seen=first_seen,
            last_yes=last_yes,
            open_requests=open_requests,
        )

    def record_run(
        self, run: RunRecord, decisions: Sequence[DecisionRecord], snapshot: Iterable[str] | None
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.id,
                    run.policy,
                    run.mode,
                    _ts(run.started_at),
                    run.status.value,
                    run.members,
                    json.dumps(run.counts),
                    run.asked,
                    run.enqueued,
                    run.halt_check,
                    run.halt_reason,
                ),
            )
            db.executemany(
                "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        d.run_id,
                        d.policy,
                        d.state_key,
                        user_json(d.user),
                        d.decision,
                        d.reason,
                        json.dumps(d.evidence),
                    )
                    for d in decisions
                ],
            )
            if snapshot is not None:
                self._snapshot(db, run.policy, set(snapshot), _ts(run.started_at) or "")

    @staticmethod
    def _snapshot(db: sqlite3.Connection, policy: str, keys: set[str], at: str) -> None:
        known = {
            r[0] for r in db.execute("SELECT state_key FROM members WHERE policy=?", (policy,))
        }
        db.executemany(
            "DELETE FROM members WHERE policy=? AND state_key=?",
            [(policy, k) for k in known - keys],
        )
        db.executemany(
            "INSERT INTO members VALUES (?,?,?)", [(policy, k, at) for k in keys - known]
        )
        db.execute("INSERT OR IGNORE INTO baselines VALUES (?,?)", (policy, at))

    # ---- requests ------------------------------------------------------------------------------

    @staticmethod
    def _request_row(r: Request) -> tuple:
        return (
            r.id,
            r.policy,
            r.group,
            user_json(r.user),
            r.state_key,
            r.run_id,
            r.state.value,
            _ts(r.created_at),
            _ts(r.updated_at),
            _ts(r.deadline),
            r.reason,
            r.queue_reason.value if r.queue_reason else None,
            r.detail,
            r.version,
            r.attempts,
            r.unanswered_writes,
            approval_json(r.approval),
            _ts(r.not_before),
            _ts(r.write_sent_at),
        )

    @staticmethod
    def _request(row: sqlite3.Row) -> Request:
        return request_from_row(_renamed(row), _dt)

    def add_request(self, request: Request) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO requests (id, policy, grp, user, state_key, run_id, state, "
                "created_at, updated_at, deadline, reason, queue_reason, detail, version, attempts, "
                "unanswered_writes, approval, not_before, write_sent_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                self._request_row(request),
            )
            return cursor.rowcount == 1

    def update_request(self, request: Request) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE requests SET state=?, updated_at=?, deadline=?, queue_reason=?, detail=?, "
                "version=?, attempts=?, unanswered_writes=?, approval=?, not_before=?, "
                "write_sent_at=? "
                "WHERE id=? AND version=?",
                (
                    request.state.value,
                    _ts(request.updated_at),
                    _ts(request.deadline),
                    request.queue_reason.value if request.queue_reason else None,
                    request.detail,
                    request.version,
                    request.attempts,
                    request.unanswered_writes,
                    approval_json(request.approval),
                    _ts(request.not_before),
                    _ts(request.write_sent_at),
                    request.id,
                    request.version - 1,
                ),
            )
            return cursor.rowcount == 1

    def get_request(self, request_id: str, policy: str | None = None) -> Request | None:
        row = self._db().execute("SELECT * FROM requests WHERE id=?", (request_id,)).fetchone()
        found = self._parsed("requests", [row] if row else [], self._request)
        return found[0] if found else None

    def requests(
        self, policy: str | None = None, states: Iterable[RequestState] | None = None
    ) -> list[Request]:
        sql, args = "SELECT * FROM requests WHERE 1=1", []
        if policy is not None:
            sql += " AND policy=?"
            args.append(policy)
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" AND state IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        rows = self._db().execute(sql + " ORDER BY created_at, id", args).fetchall()
        return self._parsed("requests", rows, self._request)

    def compact(self, policy: str, before: datetime) -> Compaction:
        decisions_sql = (
            "FROM decisions WHERE policy=? AND decision!='CANDIDATE' AND run_id IN "
            "(SELECT id FROM runs WHERE policy=? AND started_at<?)"
        )
        requests_sql = (
            "FROM requests WHERE policy=? AND updated_at<? AND state IN "
            "(SELECT value FROM json_each(?))"
        )
        finished = json.dumps(sorted(s.value for s in FINAL_STATES))
        decision_args = (policy, policy, _ts(before))
        request_args = (policy, _ts(before), finished)
        # Counted first without the write lock: most expiry ticks find nothing to compact.
        db = self._db()
        histories = self._histories.compact(policy, before)
        if not (
            db.execute("SELECT COUNT(*) " + decisions_sql, decision_args).fetchone()[0]
            or db.execute("SELECT COUNT(*) " + requests_sql, request_args).fetchone()[0]
        ):
            return Compaction(histories=histories)
        with self._write() as db:
            runs = db.execute(
                "SELECT COUNT(DISTINCT run_id) " + decisions_sql, decision_args
            ).fetchone()[0]
            decisions = db.execute("DELETE " + decisions_sql, decision_args).rowcount
            requests = db.execute("DELETE " + requests_sql, request_args).rowcount
        return Compaction(runs, decisions, requests, histories)

    def record_history(self, history: RunHistory) -> None:
        self._histories.record(history)

    def histories(self, policy: str, since: datetime | None = None) -> list[RunHistory]:
        return self._histories.read(policy, since)

    def user_requests(self, policy: str, user: str) -> list[Request]:
        return [r for r in self.requests(policy) if r.user.matches(user)]

    # ---- answers -------------------------------------------------------------------------------

    def record_answer(self, policy: str, state_key: str, answer: Answer) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO answers (request_id, value, answered_at, source, policy, "
                "state_key, justification) VALUES (?,?,?,?,?,?,?)",
                (
                    answer.request_id,
                    answer.value.value,
                    _ts(answer.answered_at),
                    answer.source,
                    policy,
                    state_key,
                    answer.justification,
                ),
            )
            return cursor.rowcount == 1

    def answers(self, policy: str, state_key: str) -> list[Answer]:
        rows = (
            self._db()
            .execute(
                "SELECT request_id, value, answered_at, source, justification FROM answers "
                "WHERE policy=? AND state_key=? ORDER BY answered_at, request_id, value",
                (policy, state_key),
            )
            .fetchall()
        )
        return [
            Answer(
                r["request_id"],
                AnswerValue(r["value"]),
                datetime.fromisoformat(r["answered_at"]),
                r["source"],
                r["justification"],
            )
            for r in rows
        ]

    def latest_yes(self, policy: str, state_key: str) -> datetime | None:
        row = (
            self._db()
            .execute(
                "SELECT MAX(answered_at) FROM answers WHERE policy=? AND state_key=? AND value='yes'",
                (policy, state_key),
            )
            .fetchone()
        )
        return _dt(row[0])

    # ---- schedule ------------------------------------------------------------------------------

    def schedule_cursor(self, policy: str) -> datetime | None:
        row = self._db().execute("SELECT due FROM cursors WHERE policy=?", (policy,)).fetchone()
        return _dt(row[0]) if row else None

    def advance_schedule(self, policy: str, expected: datetime | None, due: datetime) -> bool:
        with self._write() as db:
            if expected is None:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO cursors VALUES (?,?)", (policy, _ts(due))
                )
            else:
                cursor = db.execute(
                    "UPDATE cursors SET due=? WHERE policy=? AND due=?",
                    (_ts(due), policy, _ts(expected)),
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
                (policy, holder, _ts(lease.since), _ts(lease.expires)),
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
        return breaker_from_row(dict(row), _dt) if row else None

    def save_breaker(self, breaker: Breaker) -> bool:
        values = (
            int(breaker.is_open),
            breaker.kind.value if breaker.kind else None,
            breaker.reason,
            breaker.permission,
            _ts(breaker.opened_at),
            _ts(breaker.retry_at),
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
        return [breaker_from_row(dict(r), _dt) for r in rows]

    # ---- ledger, runs, decisions ---------------------------------------------------------------

    def append_ledger(self, entry: LedgerEntry) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO ledger VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    entry.id,
                    _ts(entry.at),
                    entry.policy,
                    entry.group,
                    entry.request_id,
                    entry.run_id,
                    user_json(entry.user),
                    entry.outcome.value,
                    entry.detail,
                    None if entry.seat_freed is None else int(entry.seat_freed),
                    entry.monthly_cost,
                    entry.currency,
                ),
            )
            return cursor.rowcount == 1

    def ledger(self, since: datetime | None = None, policy: str | None = None) -> list[LedgerEntry]:
        sql, args = self._filter("SELECT * FROM ledger", "at", since, policy)
        rows = self._db().execute(sql + " ORDER BY at, rowid", args).fetchall()
        return self._parsed("ledger", rows, lambda r: ledger_from_row(_renamed(r), _dt))

    def runs(self, since: datetime | None = None, policy: str | None = None) -> list[RunRecord]:
        sql, args = self._filter("SELECT * FROM runs", "started_at", since, policy)
        rows = self._db().execute(sql + " ORDER BY started_at, id", args).fetchall()
        return self._parsed("runs", rows, lambda r: run_from_row(dict(r), _dt))

    def user_decisions(self, policy: str, state_key: str) -> list[DecisionRecord]:
        rows = (
            self._db()
            .execute(
                "SELECT d.* FROM decisions d JOIN runs r ON r.id = d.run_id "
                "WHERE d.policy=? AND d.state_key=? ORDER BY r.started_at",
                (policy, state_key),
            )
            .fetchall()
        )
        return self._parsed("decisions", rows, lambda r: decision_from_row(dict(r)))

    def run_decisions(self, policy: str, run_id: str) -> list[DecisionRecord]:
        sql = "SELECT * FROM decisions WHERE policy=? AND run_id=? ORDER BY state_key"
        rows = self._db().execute(sql, (policy, run_id)).fetchall()
        return self._parsed("decisions", rows, lambda r: decision_from_row(dict(r)))

    @staticmethod
    def _filter(
        sql: str, time_column: str, since: datetime | None, policy: str | None
    ) -> tuple[str, list[str]]:
        clauses, args = [], []
        if since is not None:
            clauses.append(f"{time_column} >= ?")
            args.append(_ts(since) or "")
        if policy is not None:
            clauses.append("policy = ?")
            args.append(policy)
        return (sql + (" WHERE " + " AND ".join(clauses) if clauses else "")), args

    # ---- operators' switches (reclaim.adapters.switch_log) -------------------------------------

    def record_switch(self, change: SwitchChange) -> None:
        self._switches.record(change)

    def latest_switch(self, name: str) -> SwitchChange | None:
        return next(iter(self._switches.history(name, 1)), None)

    def switch_history(self, name: str, limit: int = 20) -> list[SwitchChange]:
        return self._switches.history(name, limit)
