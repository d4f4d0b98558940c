"""The state file's tables, the columns added to them since they were first made, and how values
are written in them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

SCHEMA = """
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
ADDED_COLUMNS = [
    ("requests", "attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "unanswered_writes", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "write_sent_at", "TEXT"),
    ("answers", "justification", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "approval", "TEXT NOT NULL DEFAULT ''"),  # rows.approval_json
    ("requests", "not_before", "TEXT"),
]


def add_columns(db: sqlite3.Connection) -> None:
    """Bring a state file made by an earlier version up to this schema."""
    for table, column, definition in ADDED_COLUMNS:
        present = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def renamed(row: sqlite3.Row) -> dict[str, object]:
    """A row with the domain's field names ("group" is an SQL keyword, so the column is grp)."""
    data = dict(row)
    data["group"] = data.pop("grp")
    return data
