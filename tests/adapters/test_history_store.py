"""Run histories in both stores (SQLite and Table storage on Azurite): kept whole however many
pieces they take, read in time order by policy and window, forgotten by retention."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim.adapters.history import PIECE, pack
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.history import MemberInputs, RunHistory
from reclaim.domain.policy import MatchOn
from reclaim.domain.selection import DecisionKind
from reclaim.ports import StateStore
from tests.conftest import NOW

ODD_KEY = "object_id:a/b\\c#d?e|f"


@pytest.fixture(params=["sqlite", "tables"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "state.sqlite3")
        return
    env = request.getfixturevalue("storage_env")
    from reclaim.adapters.storage import storage_from_env
    from reclaim.adapters.tables import TableStore

    yield TableStore.from_account(storage_from_env(env), env["RECLAIM_TABLE_PREFIX"])


def history(run_id: str, days_ago: float, size: int = 3, policy: str = "salesforce") -> RunHistory:
    at = NOW - timedelta(days=days_ago)
    keys = [ODD_KEY, "ada@contoso.test"] + [
        f"{hashlib.sha1(f'{run_id}{n}'.encode()).hexdigest()[:14]}@contoso.test"
        for n in range(size - 2)
    ]
    members = tuple(
        MemberInputs(
            key, DecisionKind.CANDIDATE if n % 3 else DecisionKind.ACTIVE, matched=n > 0,
            used=n * 0.7, tracked=at - timedelta(days=n % 50), yes_at=at - timedelta(hours=n),
            answer="yes" if n == 1 else "", pending=n % 5 == 0,
        )
        for n, key in enumerate(keys)
    )  # fmt: skip
    return RunHistory(
        run_id, policy, at, MatchOn.MAIL, timedelta(days=90), 5.0, timedelta(days=30),
        at - timedelta(hours=2), 1234, 3, True, False, members,
    )  # fmt: skip


def test_histories_are_kept_whole_in_time_order_and_by_policy(store: StateStore) -> None:
    large = history("run-large", 10, size=6000)
    assert len(pack(large)) > 1 and all(len(p) <= PIECE for p in pack(large))
    older, other = history("run-old", 30), history("run-x", 20, policy="other")
    for recorded in (large, older, other, large):  # recorded twice: still one
        store.record_history(recorded)
    assert store.histories("salesforce") == [older, large]
    assert store.histories("salesforce", NOW - timedelta(days=15)) == [large]
    assert store.histories("other") == [other]
    assert store.histories("nobody") == []


def test_retention_forgets_the_histories_of_old_runs(store: StateStore) -> None:
    for recorded in (history("run-1", 500), history("run-2", 450), history("run-3", 10)):
        store.record_history(recorded)
    store.record_history(history("run-9", 500, policy="other"))
    compaction = store.compact("salesforce", NOW - timedelta(days=400))
    assert compaction.histories == 2
    assert [h.run_id for h in store.histories("salesforce")] == ["run-3"]
    assert [h.run_id for h in store.histories("other")] == ["run-9"]
