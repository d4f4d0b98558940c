"""The embedded state store: one SQLite file, safe for several processes at once (WAL + immediate
transactions), so the CLI works with no cloud at all."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from reclaim.adapters.sqlite.cursors import CursorTables
from reclaim.adapters.sqlite.histories import SqliteHistories
from reclaim.adapters.sqlite.requests import RequestTables
from reclaim.adapters.sqlite.runs import RunTables
from reclaim.adapters.sqlite.schema import ts
from reclaim.adapters.switch_log import SqliteSwitchLog
from reclaim.domain.history import RunHistory
from reclaim.domain.lifecycle import FINAL_STATES
from reclaim.domain.switches import SwitchChange
from reclaim.ports import Compaction


class SqliteStore(RequestTables, RunTables, CursorTables):
    """reclaim.ports.StateStore on a local SQLite file."""

    write_concurrency = 1  # one writer at a time holds the file's lock: no gain in more

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self._switches = SqliteSwitchLog(self._db, self._write)
        self._histories = SqliteHistories(self._db, self._write)

    # ---- retention and run histories (reclaim.adapters.sqlite.histories) -----------------------

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
        decision_args = (policy, policy, ts(before))
        request_args = (policy, ts(before), finished)
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

    # ---- operators' switches (reclaim.adapters.switch_log) -------------------------------------

    def record_switch(self, change: SwitchChange) -> None:
        self._switches.record(change)

    def latest_switch(self, name: str) -> SwitchChange | None:
        return next(iter(self._switches.history(name, 1)), None)

    def switch_history(self, name: str, limit: int = 20) -> list[SwitchChange]:
        return self._switches.history(name, limit)
