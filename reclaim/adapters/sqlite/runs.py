"""The runs with their decisions and member snapshots, the policy state a run starts from, and the
ledger of what was done."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime

from reclaim.adapters.rows import (
    decision_from_row,
    ledger_from_row,
    run_from_row,
    user_json,
)
from reclaim.adapters.sqlite.connection import SqliteConnection
from reclaim.adapters.sqlite.schema import dt, renamed, ts
from reclaim.domain.lifecycle import OPEN_STATES
from reclaim.domain.model import PolicyState
from reclaim.domain.records import DecisionRecord, LedgerEntry, RunRecord


class RunTables(SqliteConnection):
    """The runs, decisions, members, baselines and ledger tables of SqliteStore."""

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
            baseline_at=dt(baseline["taken_at"]) if baseline else None,
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
                    ts(run.started_at),
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
                self._snapshot(db, run.policy, set(snapshot), ts(run.started_at) or "")

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

    # ---- ledger, runs, decisions ---------------------------------------------------------------

    def append_ledger(self, entry: LedgerEntry) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO ledger VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    entry.id,
                    ts(entry.at),
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
        return self._parsed("ledger", rows, lambda r: ledger_from_row(renamed(r), dt))

    def runs(self, since: datetime | None = None, policy: str | None = None) -> list[RunRecord]:
        sql, args = self._filter("SELECT * FROM runs", "started_at", since, policy)
        rows = self._db().execute(sql + " ORDER BY started_at, id", args).fetchall()
        return self._parsed("runs", rows, lambda r: run_from_row(dict(r), dt))

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
            args.append(ts(since) or "")
        if policy is not None:
            clauses.append("policy = ?")
            args.append(policy)
        return (sql + (" WHERE " + " AND ".join(clauses) if clauses else "")), args
