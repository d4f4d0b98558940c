"""Overlapping runs of one policy make one run (issue 12, item 6), on both stores: each run
holds the policy's lease in the store, so of several started at once one acts and the others are
told it is already running. Threads stand for the concurrent "run now" calls and timer ticks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import Member, UsageRow, User
from reclaim.errors import ReclaimError
from reclaim.ports import StateStore
from tests.conftest import NOW, asking_policy, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(20)]
IDLE = [UsageRow(u.upn, 0.5) for u in USERS]  # all 20 are candidates


@pytest.fixture(params=["sqlite", "tables"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    """One store instance per caller, over the same data (one per process)."""
    if request.param == "sqlite":
        yield lambda: SqliteStore(tmp_path / "state.sqlite3")
        return
    request.applymarker(pytest.mark.azurite)
    env = request.getfixturevalue("storage_env")
    from reclaim.adapters.storage import storage_from_env
    from reclaim.adapters.tables import TableStore

    account = storage_from_env(env)
    yield lambda: TableStore.from_account(account, env["RECLAIM_TABLE_PREFIX"])


def overlapping_runs(new_store, policy, callers: int):
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]}, read_delay=0.3)
    campaign = MemoryCampaign()
    adapters = MemoryAdapters(directory, MemoryUsage(IDLE, NOW), campaign)
    queue = MemoryQueue()
    contexts = [
        usecases.Context(new_store(), queue, adapters, {policy.name: policy})
        for _ in range(callers)
    ]
    start = threading.Barrier(callers)

    def run(ctx: usecases.Context) -> str:
        start.wait()
        try:
            return usecases.run_policy(ctx, policy, NOW).run.status.value
        except ReclaimError as error:
            return str(error)

    with ThreadPoolExecutor(callers) as pool:
        results = list(pool.map(run, contexts))
    return contexts[0].store, queue, campaign, results


def test_four_overlapping_run_now_calls_open_one_request_per_user(new_store) -> None:
    store, queue, _, results = overlapping_runs(new_store, make_policy(mode="enforce"), 4)
    assert len(store.requests()) == 20  # measured on main: 80
    assert len(queue.messages) == 20  # measured on main: 80
    assert len({r.state_key for r in store.requests(states=[RequestState.QUEUED])}) == 20
    assert results.count("completed") == 1
    assert all("already running since" in r for r in results if r != "completed")
    assert len(store.runs()) == 1


def test_three_overlapping_asking_runs_ask_each_user_once(new_store) -> None:
    store, _, campaign, results = overlapping_runs(new_store, asking_policy(), 3)
    assert sorted(campaign.asked) == sorted(u.upn for u in USERS)  # measured on main: 59 asks
    assert len(store.requests(states=[RequestState.PENDING])) == 20
    assert results.count("completed") == 1


def test_the_lease_is_released_after_a_run_and_after_a_failing_one(new_store) -> None:
    policy = make_policy(mode="enforce")
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    adapters = MemoryAdapters(directory, MemoryUsage(IDLE, NOW))
    ctx = usecases.Context(new_store(), MemoryQueue(), adapters, {policy.name: policy})
    usecases.run_policy(ctx, policy, NOW)
    adapters.usage_ = None  # type: ignore[assignment]  # the next run crashes mid-way
    with pytest.raises(AttributeError):
        usecases.run_policy(ctx, policy, NOW)
    adapters.usage_ = MemoryUsage(IDLE, NOW)
    assert usecases.run_policy(ctx, policy, NOW).run.status.value == "completed"
