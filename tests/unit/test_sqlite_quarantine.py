"""The SQLite store's side of "a stored row that cannot be parsed never stops a policy": the row is
skipped, recorded in the quarantine table with its reason, logged, and left in place."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.model import Member, UsageRow, User
from tests.conftest import NOW, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(4)]


def test_an_unreadable_row_is_quarantined_and_the_policy_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    policy = make_policy(mode="enforce")
    usage = MemoryUsage([UsageRow(u.upn, 0.0) for u in USERS], NOW)
    queue = MemoryQueue()
    ctx = usecases.Context(
        store,
        queue,
        MemoryAdapters(
            MemoryDirectory({"SF": [Member(u) for u in USERS]}), usage, MemoryCampaign()
        ),
        {policy.name: policy},
    )
    usecases.run_policy(ctx, policy, NOW)
    db = sqlite3.connect(store.path)
    db.execute("UPDATE requests SET state='SOMETHING_NEWER' WHERE rowid=1")
    db.execute("UPDATE ledger SET at='0001-13-01' WHERE rowid=1")
    db.commit()
    with caplog.at_level(logging.ERROR):
        assert len(store.requests(policy.name)) == 3
        assert len(store.ledger()) == len(db.execute("SELECT * FROM ledger").fetchall()) - 1
        usage.observed_at = NOW.replace(day=NOW.day + 1)
        assert not usecases.run_policy(ctx, policy, usage.observed_at).halted
        assert usecases.report(ctx)[0].removed == 0
    rows = db.execute("SELECT tbl, reason, raw FROM quarantine ORDER BY tbl").fetchall()
    assert [r[0] for r in rows] == ["ledger", "requests"]
    assert "SOMETHING_NEWER" in rows[1][1] and json.loads(rows[1][2])["state"] == "SOMETHING_NEWER"
    assert db.execute("SELECT COUNT(*) FROM requests WHERE state='SOMETHING_NEWER'").fetchone() == (
        1,
    )
    assert any("quarantine" in r.getMessage() for r in caplog.records)
