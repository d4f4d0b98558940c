"""The SQLite store commits each removal's facts together: every commit is an fsync, and the CLI's
AD removals spent more time committing (8 per removal) than talking to the DC."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.adapters.sqlite.removal_queue import SqliteQueue
from reclaim.domain.lifecycle import Request, RequestState, transition
from reclaim.domain.model import Member, User
from reclaim.domain.records import RemovalMessage
from tests.conftest import NOW, make_policy
from tests.support.memory import MemoryAdapters, MemoryCampaign, MemoryDirectory, MemoryUsage
from tests.unit.test_release import usage

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(12)]


class Commits:
    """Counts the COMMITs (and top-level transactions) on the store's connection."""

    def __init__(self, store: SqliteStore) -> None:
        self.count = 0
        store._db().set_trace_callback(self._seen)

    def _seen(self, statement: str) -> None:
        if statement.strip().upper().startswith("COMMIT"):
            self.count += 1


def queued_request() -> Request:
    return Request(
        id="r1",
        policy="p",
        run_id="run",
        group="SF",
        user=USERS[0],
        state_key="u0@c.com",
        state=RequestState.QUEUED,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.sqlite3")


def test_a_removal_costs_one_run_commit_and_three_worker_commits(store: SqliteStore) -> None:
    queue = SqliteQueue(store, lambda: NOW)
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    adapters = MemoryAdapters(directory, MemoryUsage(usage({}, default=0.0), NOW), MemoryCampaign())
    policy = make_policy(mode="enforce")
    ids = (f"id-{n:03d}" for n in itertools.count())
    ctx = usecases.Context(store, queue, adapters, {policy.name: policy}, new_id=lambda: next(ids))
    commits = Commits(store)

    outcome = usecases.run_policy(ctx, policy, NOW)
    run_commits = commits.count
    queue_commits = 1  # the last take, which finds nothing
    while (item := queue.take()) is not None:
        message = RemovalMessage.from_json(item.body)
        usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW)
        queue.delete(item)
        queue_commits += 2  # take and delete: the local queue's own, as Azure Queue's would be

    removals = outcome.run.enqueued
    assert removals == len(USERS) == len(directory.removed)
    # the run: one commit per candidate (request, ledger entry and message together), plus its
    # own few (the lease taken and given back, the run with its decisions and snapshot)
    assert run_commits <= removals + 4
    # the worker: the claim before the directory call, the "write sent" marker just before the
    # write goes out (usecases/own_writes.py needs it after a crash), the outcome with its ledger
    # entry after
    assert (commits.count - run_commits - queue_commits) / removals == 3


def test_atomic_commits_once_and_undoes_everything_when_it_fails(store: SqliteStore) -> None:
    request = queued_request()
    commits = Commits(store)
    with pytest.raises(RuntimeError), store.atomic():
        store.add_request(request)
        raise RuntimeError("the step after it failed")
    assert store.get_request("r1") is None and commits.count == 0

    with store.atomic():
        store.add_request(request)
        with store.atomic():  # nested: joins the outer transaction
            store.update_request(transition(request, RequestState.REMOVING, NOW))
    assert commits.count == 1
    assert store.get_request("r1").state is RequestState.REMOVING  # type: ignore[union-attr]


def test_a_failed_step_inside_atomic_is_undone_alone(store: SqliteStore) -> None:
    request = queued_request()
    with store.atomic():
        store.add_request(request)
        try:
            with store._write() as db:
                db.execute("UPDATE requests SET state='REMOVED' WHERE id='r1'")
                raise RuntimeError("this step fails after its first statement")
        except RuntimeError:
            pass
    stored = store.get_request("r1")
    assert stored is not None and stored.state is RequestState.QUEUED
