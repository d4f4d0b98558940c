"""Retention (issue 16, item 4): the expiry tick compacts what is older than RECLAIM_RETENTION;
the ledger stays, and explain still shows why someone was chosen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import Request, RequestState
from reclaim.domain.model import Member, UsageRow, User
from reclaim.settings import Settings, SettingsError
from tests.conftest import NOW, make_policy
from tests.support.memory import MemoryAdapters, MemoryDirectory, MemoryQueue, MemoryUsage

ADA, BOB = User(upn="ada@contoso.test"), User(upn="bob@contoso.test")


def test_the_expiry_tick_forgets_what_is_older_than_the_retention(tmp_path: Path) -> None:
    policy = make_policy()
    store = SqliteStore(tmp_path / "state.sqlite3")
    directory = MemoryDirectory({"SF": [Member(ADA), Member(BOB)]})
    usage = MemoryUsage([UsageRow(ADA.upn, 0.5), UsageRow(BOB.upn, 60.0)], NOW)
    ctx = usecases.Context(
        store, MemoryQueue(), MemoryAdapters(directory, usage), {policy.name: policy},
        retention=timedelta(days=30),
    )  # fmt: skip
    long_ago = NOW - timedelta(days=40)
    usecases.run_policy(ctx, policy, long_ago)  # dry run: ada CANDIDATE, bob ACTIVE
    store.add_request(
        Request("old", policy.name, "SF", BOB, BOB.upn, "run-0", RequestState.CANCELLED,
                long_ago, long_ago, reason="idle")
    )  # fmt: skip

    report = usecases.expire_requests(ctx, NOW)

    assert report.compacted == 2  # bob's ACTIVE decision, the cancelled request
    assert store.get_request("old") is None
    assert [d.decision for d in usecases.user_history(ctx, policy, ADA.upn)[0]] == ["CANDIDATE"]
    assert usecases.user_history(ctx, policy, BOB.upn)[0] == []
    assert len(store.runs()) == 1  # the run and its counts stay


def test_the_expiry_tick_forgets_the_histories_of_runs_older_than_the_retention(
    tmp_path: Path,
) -> None:
    policy = make_policy()
    store = SqliteStore(tmp_path / "state.sqlite3")
    directory = MemoryDirectory({"SF": [Member(ADA), Member(BOB)]})
    ctx = usecases.Context(
        store, MemoryQueue(), MemoryAdapters(directory, MemoryUsage([UsageRow(ADA.upn, 0.5)], NOW)),
        {policy.name: policy}, retention=timedelta(days=30),
    )  # fmt: skip
    usecases.run_policy(ctx, policy, NOW - timedelta(days=40))
    recent = usecases.run_policy(ctx, policy, NOW - timedelta(days=1))
    assert len(store.histories(policy.name)) == 2
    usecases.expire_requests(ctx, NOW)
    assert [h.run_id for h in store.histories(policy.name)] == [recent.run.id]


@pytest.mark.parametrize("value", ["0d", "soon", "-5d"])
def test_a_retention_that_is_not_a_duration_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match="RECLAIM_RETENTION"):
        Settings.from_env({"RECLAIM_RETENTION": value})


def test_the_retention_defaults_to_400_days() -> None:
    assert Settings.from_env({}).retention == timedelta(days=400)
