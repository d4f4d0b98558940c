"""The embedded SQLite store: idempotent writes, compare-and-set, and two processes at once."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from reclaim.adapters.sqlite import SqliteStore
from reclaim.adapters.sqlite.removal_queue import SqliteQueue
from reclaim.domain.lifecycle import Request, RequestState, transition
from reclaim.domain.model import User
from reclaim.domain.records import LedgerEntry, LedgerOutcome, RemovalMessage
from tests.conftest import NOW


def _ledger_writer(path: str, worker: int, count: int) -> None:
    store = SqliteStore(path)
    for i in range(count):
        store.append_ledger(
            LedgerEntry(
                f"e{i % 150}",
                NOW,
                "p",
                "g",
                f"r{i}",
                "run",
                User(upn=f"w{worker}@c.com"),
                LedgerOutcome.REMOVED,
            )
        )
        request = store.get_request("shared")
        if request is not None and request.state is RequestState.QUEUED:
            store.update_request(transition(request, RequestState.REMOVING, NOW))


def test_two_processes_write_at_once_without_losing_or_duplicating(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    store = SqliteStore(path)
    store.add_request(
        Request(
            "shared", "p", "g", User(upn="a@c.com"), "a@c.com", "run", RequestState.QUEUED, NOW, NOW
        )
    )
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_ledger_writer, args=(path, w, 300)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert len(store.ledger()) == 150  # both wrote e0..e149; each id landed once
    claimed = store.get_request("shared")
    assert claimed is not None and (claimed.state, claimed.version) == (RequestState.REMOVING, 1)


def test_update_is_compare_and_set_on_the_version(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    original = Request(
        "r", "p", "g", User(upn="a@c.com"), "a@c.com", "run", RequestState.QUEUED, NOW, NOW
    )
    assert store.add_request(original) is True
    assert store.add_request(original) is False
    first = transition(original, RequestState.REMOVING, NOW)
    second = transition(original, RequestState.CANCELLED, NOW)
    assert store.update_request(first) is True
    assert store.update_request(second) is False
    assert store.get_request("r") == first


def test_snapshots_keep_first_seen_dates(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    from reclaim.domain.records import RunRecord, RunStatus

    def run(at, keys):
        store.record_run(
            RunRecord(f"run-{at.isoformat()}", "p", "dry-run", at, RunStatus.PLANNED), [], keys
        )

    run(NOW, ["a", "b"])
    run(NOW + timedelta(days=7), ["b", "c"])
    state = store.policy_state("p", NOW + timedelta(days=7))
    assert state.baseline_at == NOW
    assert state.first_seen == {"b": NOW, "c": NOW + timedelta(days=7)}


def test_the_local_queue_keeps_deferred_messages(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    queue = SqliteQueue(store)
    message = RemovalMessage("r1", "run", "p", "g", User(upn="a@c.com"), "no-ask")
    queue.enqueue(message)
    queue.enqueue(replace(message, request_id="r2"), delay=timedelta(hours=1))
    taken = queue.take()
    assert RemovalMessage.from_json(taken.body) == message and taken.dequeue_count == 1
    assert queue.take() is None
    queue.delete(taken)
    assert queue.waiting() == 1


def test_a_local_message_stays_until_its_outcome_is_stored(tmp_path: Path) -> None:
    """As on Azure queues: taken is invisible for the lease, not gone. A worker killed before
    `delete` leaves the message to come back; after max_dequeue_count it is for the poison table."""
    clock = [NOW]
    store = SqliteStore(tmp_path / "s.sqlite3")
    queue = SqliteQueue(store, lambda: clock[0], lease=timedelta(minutes=5), max_dequeue_count=2)
    queue.enqueue(RemovalMessage("r1", "run", "p", "g", User(upn="a@c.com"), "no-ask"))
    first = queue.take()
    assert first is not None and queue.take() is None and queue.waiting() == 1
    clock[0] += timedelta(minutes=5)  # the worker died: the lease ran out
    again = queue.take()
    assert again is not None and again.id == first.id and again.dequeue_count == 2
    queue.delete(first)  # the first worker's receipt is stale: it cannot delete the message now
    assert queue.waiting() == 1
    queue.poison(again, "gave up")
    assert queue.waiting() == 0 and queue.poisoned() == [(again.body, "gave up")]
