"""The requests (compare-and-set on their version) and the answers to them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime

from reclaim.adapters.rows import approval_json, request_from_row, user_json
from reclaim.adapters.sqlite.connection import SqliteConnection
from reclaim.adapters.sqlite.schema import dt, renamed, ts
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import Answer, AnswerValue


class RequestTables(SqliteConnection):
    """The requests and answers tables of SqliteStore."""

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
            ts(r.created_at),
            ts(r.updated_at),
            ts(r.deadline),
            r.reason,
            r.queue_reason.value if r.queue_reason else None,
            r.detail,
            r.version,
            r.attempts,
            r.unanswered_writes,
            approval_json(r.approval),
            ts(r.not_before),
            ts(r.write_sent_at),
        )

    @staticmethod
    def _request(row: sqlite3.Row) -> Request:
        return request_from_row(renamed(row), dt)

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
                    ts(request.updated_at),
                    ts(request.deadline),
                    request.queue_reason.value if request.queue_reason else None,
                    request.detail,
                    request.version,
                    request.attempts,
                    request.unanswered_writes,
                    approval_json(request.approval),
                    ts(request.not_before),
                    ts(request.write_sent_at),
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
                    ts(answer.answered_at),
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
        return dt(row[0])
