"""One contract for every StateStore: the SQLite store (CLI) and the Table storage store (the
function app, against real Azurite) must behave the same, so the use cases cannot tell them apart.
Each test runs once per store; a second instance of the same store stands for another process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.approval import Approval
from reclaim.domain.breaker import Breaker, BreakerRules, HaltKind
from reclaim.domain.lifecycle import QueueReason, Request, RequestState, transition
from reclaim.domain.model import Answer, AnswerValue, User
from reclaim.domain.policy.escalation import EscalateOn
from reclaim.domain.records import (
    DecisionRecord,
    LedgerEntry,
    LedgerOutcome,
    RunRecord,
    RunStatus,
)
from reclaim.domain.switches import KILL_SWITCH, SwitchChange
from reclaim.ports import StateStore
from tests.conftest import NOW

# State keys as the domain makes them, including characters Table keys forbid.
ODD_KEY = "object_id:a/b\\c#d?e|f"
KEYS = ["ada@contoso.test", "bob@contoso.test", ODD_KEY]

StoreFactory = Callable[[], StateStore]


@pytest.fixture(params=["sqlite", "tables"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes instances of one store over the same data (two instances: two processes)."""
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite3"
        yield lambda: SqliteStore(path)
        return
    request.applymarker(pytest.mark.azurite)
    env = request.getfixturevalue("storage_env")
    from reclaim.adapters.storage import storage_from_env
    from reclaim.adapters.tables import TableStore

    account = storage_from_env(env)
    yield lambda: TableStore.from_account(account, env["RECLAIM_TABLE_PREFIX"])


@pytest.fixture
def store(stores: StoreFactory) -> StateStore:
    return stores()


def a_request(request_id: str = "r1", state_key: str = "ada@contoso.test", **changes) -> Request:
    base = Request(
        id=request_id,
        policy="salesforce",
        group="SF",
        user=User(object_id="0001", upn=state_key, display_name="Ada"),
        state_key=state_key,
        run_id="run-1",
        state=RequestState.PENDING,
        created_at=NOW,
        updated_at=NOW,
        deadline=NOW + timedelta(days=7),
        reason="used 1m of 5m in 90d",
    )
    return replace(base, **changes)


def a_run(run_id: str, at=NOW, policy: str = "salesforce", **changes) -> RunRecord:
    return replace(
        RunRecord(
            run_id,
            policy,
            "enforce",
            at,
            RunStatus.COMPLETED,
            members=3,
            counts={"CANDIDATE": 1, "ACTIVE": 2},
            asked=1,
        ),
        **changes,
    )


def an_entry(entry_id: str, at=NOW, policy: str = "salesforce", **changes) -> LedgerEntry:
    return replace(
        LedgerEntry(
            entry_id,
            at,
            policy,
            "SF",
            "r1",
            "run-1",
            User(upn="ada@contoso.test"),
            LedgerOutcome.REMOVED,
            detail="removed",
            seat_freed=True,
            monthly_cost=25.0,
            currency="EUR",
        ),
        **changes,
    )


# ---- policy state and first-seen snapshots ---------------------------------------------------


def test_an_untouched_policy_has_no_state(store: StateStore) -> None:
    state = store.policy_state("salesforce", NOW)
    assert (state.baseline_at, dict(state.first_seen), dict(state.last_yes)) == (None, {}, {})
    assert dict(state.open_requests) == {}


def test_the_first_snapshot_is_the_baseline_and_later_ones_date_newcomers(
    store: StateStore,
) -> None:
    later = NOW + timedelta(days=7)
    store.record_run(a_run("run-1"), [], ["ada@contoso.test", ODD_KEY])
    store.record_run(a_run("run-2", later), [], ["bob@contoso.test", ODD_KEY])
    store.record_run(a_run("run-3", later + timedelta(days=1)), [], None)  # no snapshot: no change

    state = store.policy_state("salesforce", later)
    assert state.baseline_at == NOW
    assert dict(state.first_seen) == {ODD_KEY: NOW, "bob@contoso.test": later}
    assert store.policy_state("other", later).baseline_at is None


def test_policy_state_lists_open_requests_and_the_latest_yes(store: StateStore) -> None:
    store.add_request(a_request("r1", "ada@contoso.test"))
    store.add_request(a_request("r2", "bob@contoso.test", state=RequestState.QUEUED))
    store.add_request(a_request("r3", ODD_KEY, state=RequestState.KEPT))
    store.add_request(a_request("r4", "eve@contoso.test", policy="other"))
    store.record_answer("salesforce", ODD_KEY, Answer("r0", AnswerValue.YES, NOW, "webhook"))
    store.record_answer(
        "salesforce", ODD_KEY, Answer("r3", AnswerValue.YES, NOW + timedelta(hours=1))
    )
    store.record_answer(
        "salesforce", ODD_KEY, Answer("r3", AnswerValue.NO, NOW + timedelta(hours=2))
    )

    state = store.policy_state("salesforce", NOW)
    assert dict(state.open_requests) == {"ada@contoso.test": "r1", "bob@contoso.test": "r2"}
    assert dict(state.last_yes) == {ODD_KEY: NOW + timedelta(hours=1)}


# ---- requests ----------------------------------------------------------------------------------


def test_add_request_is_idempotent_and_keeps_every_field(store: StateStore) -> None:
    request = a_request(
        "r/1#?", queue_reason=QueueReason.CONSENT, detail="d", state=RequestState.QUEUED
    )
    assert store.add_request(request) is True
    assert store.add_request(replace(request, reason="changed")) is False
    assert store.get_request("r/1#?") == request
    assert store.get_request("missing") is None
    stored = store.get_request("r/1#?")
    assert stored is not None and stored.created_at.tzinfo is not None


def test_update_request_is_compare_and_set_on_the_version(stores: StoreFactory) -> None:
    first_process, second_process = stores(), stores()
    original = a_request(state=RequestState.QUEUED)
    first_process.add_request(original)
    assert second_process.get_request(original.id) == original  # it has read version 0 too

    claim = transition(original, RequestState.REMOVING, NOW + timedelta(minutes=1))
    rival = transition(original, RequestState.CANCELLED, NOW + timedelta(minutes=1))
    assert first_process.update_request(claim) is True
    assert second_process.update_request(rival) is False  # based on a version that moved on
    assert first_process.update_request(claim) is False  # the same step twice
    done = transition(claim, RequestState.REMOVED, NOW + timedelta(minutes=2), detail="ok")
    assert second_process.update_request(done) is True
    assert first_process.get_request(original.id) == done
    assert first_process.update_request(a_request("never-added", version=1)) is False


def test_requests_filter_by_policy_and_state_in_creation_order(store: StateStore) -> None:
    store.add_request(a_request("b", created_at=NOW + timedelta(seconds=1)))
    store.add_request(a_request("a", created_at=NOW + timedelta(seconds=1)))
    store.add_request(a_request("c", state=RequestState.QUEUED))
    store.add_request(a_request("d", policy="other"))

    assert [r.id for r in store.requests()] == ["c", "d", "a", "b"]
    assert [r.id for r in store.requests("salesforce")] == ["c", "a", "b"]
    assert [r.id for r in store.requests("salesforce", [RequestState.PENDING])] == ["a", "b"]
    assert [r.id for r in store.requests(states=[RequestState.QUEUED])] == ["c"]
    assert store.requests("salesforce", []) == []


# ---- answers -----------------------------------------------------------------------------------


def test_record_answer_is_idempotent_and_latest_yes_reads_only_yes(store: StateStore) -> None:
    yes = Answer("r1", AnswerValue.YES, NOW, "webhook")
    assert store.record_answer("salesforce", "ada@contoso.test", yes) is True
    assert store.record_answer("salesforce", "ada@contoso.test", yes) is False
    assert (
        store.record_answer(
            "salesforce", "ada@contoso.test", replace(yes, answered_at=NOW + timedelta(1))
        )
        is False
    )  # the same answer to the same request, whenever it arrives
    store.record_answer(
        "salesforce", "ada@contoso.test", Answer("r2", AnswerValue.YES, NOW + timedelta(days=3))
    )
    store.record_answer(
        "salesforce", "ada@contoso.test", Answer("r3", AnswerValue.NO, NOW + timedelta(days=9))
    )
    store.record_answer("salesforce", "ada@contoso.testx", Answer("r4", AnswerValue.YES, NOW))

    assert store.latest_yes("salesforce", "ada@contoso.test") == NOW + timedelta(days=3)
    assert store.latest_yes("other", "ada@contoso.test") is None
    assert store.latest_yes("salesforce", "bob@contoso.test") is None


def test_an_answer_keeps_its_justification_and_reads_back_in_time_order(
    store: StateStore,
) -> None:
    reason = 'I present the "Q4 plan" in Visio — weekly, =SUM(A1) ünïcode'
    store.record_answer(
        "salesforce", ODD_KEY, Answer("r2", AnswerValue.YES, NOW + timedelta(1), "webhook", reason)
    )
    store.record_answer("salesforce", ODD_KEY, Answer("r1", AnswerValue.NO, NOW, "nexthink"))
    store.record_answer("salesforce", ODD_KEY + "x", Answer("r3", AnswerValue.YES, NOW))
    # The same answer again with another reason is still the same answer: the first one stays.
    store.record_answer(
        "salesforce", ODD_KEY, Answer("r2", AnswerValue.YES, NOW, "webhook", "changed my mind")
    )

    assert store.answers("salesforce", ODD_KEY) == [
        Answer("r1", AnswerValue.NO, NOW, "nexthink", ""),
        Answer("r2", AnswerValue.YES, NOW + timedelta(1), "webhook", reason),
    ]
    assert store.answers("other", ODD_KEY) == []


def test_answers_stored_before_justifications_still_read(
    stores: StoreFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A row written by the previous version (no justification anywhere) reads as "none"."""
    old_row = {"request_id": "r1", "value": "yes", "answered_at": NOW, "source": "webhook"}
    if request.node.callspec.params["stores"] == "sqlite":
        import sqlite3

        db = sqlite3.connect(tmp_path / "state.sqlite3")
        db.execute(  # the answers table as the previous version created it
            "CREATE TABLE answers (request_id TEXT NOT NULL, value TEXT NOT NULL, answered_at "
            "TEXT NOT NULL, source TEXT NOT NULL, policy TEXT NOT NULL, state_key TEXT NOT NULL, "
            "PRIMARY KEY (request_id, value))"
        )
        db.execute(
            "INSERT INTO answers VALUES (?,?,?,?,?,?)",
            ("r1", "yes", NOW.isoformat(), "webhook", "salesforce", "ada@contoso.test"),
        )
        db.commit()
        db.close()
        store = stores()
    else:
        store = stores()
        from reclaim.adapters.tables.keys import key

        names: list[str] = store.table_names  # type: ignore[attr-defined]
        table = next(name for name in names if name.endswith("Answers"))
        answers = store._service.get_table_client(table)  # type: ignore[attr-defined]
        answers.create_entity(
            {
                "PartitionKey": key("salesforce"),
                "RowKey": f"{key('ada@contoso.test')}|{key('r1')}|yes",
                **old_row,
                "policy": "salesforce",
                "state_key": "ada@contoso.test",
            }
        )
    assert store.answers("salesforce", "ada@contoso.test") == [
        Answer("r1", AnswerValue.YES, NOW, "webhook", "")
    ]
    assert store.latest_yes("salesforce", "ada@contoso.test") == NOW
    assert store.record_answer(
        "salesforce", "ada@contoso.test", Answer("r2", AnswerValue.YES, NOW, "webhook", "needed")
    )
    assert [a.justification for a in store.answers("salesforce", "ada@contoso.test")] == [
        "",
        "needed",
    ]


# ---- the scheduler's cursor --------------------------------------------------------------------


def test_the_schedule_cursor_is_compare_and_set(stores: StoreFactory) -> None:
    one, two = stores(), stores()
    monday, next_monday = NOW, NOW + timedelta(days=7)
    assert one.schedule_cursor("salesforce") is None
    assert one.advance_schedule("salesforce", None, monday) is True
    assert two.advance_schedule("salesforce", None, monday) is False  # initialised already
    assert two.schedule_cursor("salesforce") == monday

    assert two.advance_schedule("salesforce", monday, next_monday) is True
    assert one.advance_schedule("salesforce", monday, next_monday) is False  # the rival tick
    assert one.schedule_cursor("salesforce") == next_monday
    assert one.schedule_cursor("visio") is None
    assert one.advance_schedule("visio", monday, next_monday) is False  # nothing to compare


# ---- ledger, runs, decisions -------------------------------------------------------------------


def test_append_ledger_is_idempotent_and_keeps_order_and_fields(store: StateStore) -> None:
    later = NOW + timedelta(days=1)
    assert store.append_ledger(an_entry("r1:REMOVED", later)) is True
    assert store.append_ledger(an_entry("r1:REMOVED", later, detail="again")) is False
    store.append_ledger(an_entry("r1:QUEUED", NOW, outcome=LedgerOutcome.QUEUED, seat_freed=None))
    # Same time: kept in the order written (report() relies on it for restores).
    store.append_ledger(an_entry("r1:RESTORED", later, outcome=LedgerOutcome.RESTORED))
    store.append_ledger(an_entry("x:QUEUED", later, policy="visio", seat_freed=False))

    entries = store.ledger()
    assert [e.id for e in entries] == ["r1:QUEUED", "r1:REMOVED", "r1:RESTORED", "x:QUEUED"]
    assert entries[1] == an_entry("r1:REMOVED", later)
    assert entries[0].seat_freed is None and entries[3].seat_freed is False
    assert [e.id for e in store.ledger(since=later)] == ["r1:REMOVED", "r1:RESTORED", "x:QUEUED"]
    assert [e.id for e in store.ledger(policy="visio")] == ["x:QUEUED"]
    assert [e.id for e in store.ledger(since=later, policy="salesforce")] == [
        "r1:REMOVED",
        "r1:RESTORED",
    ]


def test_runs_are_kept_whole_and_filtered(store: StateStore) -> None:
    halted = a_run(
        "run-2",
        NOW + timedelta(days=7),
        status=RunStatus.HALTED,
        halt_check="max_removals_per_run",
        halt_reason="60 candidates exceed 50",
    )
    store.record_run(halted, [], None)
    store.record_run(a_run("run-1"), [], None)
    store.record_run(a_run("run-3", NOW + timedelta(days=7), policy="visio"), [], None)

    assert store.runs() == [
        a_run("run-1"),
        halted,
        a_run("run-3", NOW + timedelta(days=7), policy="visio"),
    ]
    assert [r.id for r in store.runs(since=NOW + timedelta(days=1))] == ["run-2", "run-3"]
    assert [r.id for r in store.runs(policy="salesforce")] == ["run-1", "run-2"]


def test_user_decisions_follow_one_user_through_runs(store: StateStore) -> None:
    def decision(run_id: str, state_key: str, kind: str) -> DecisionRecord:
        return DecisionRecord(
            run_id, "salesforce", state_key, User(upn=state_key), kind, f"{kind} because",
            {"used": 1.0, "window": "90d"},
        )  # fmt: skip

    later = NOW + timedelta(days=7)
    # Keys that share a prefix must not leak into each other's history.
    keys = ["a", "ab", "a|b", ODD_KEY]
    store.record_run(a_run("run-2", later), [decision("run-2", k, "CANDIDATE") for k in keys], None)
    store.record_run(a_run("run-1"), [decision("run-1", k, "NEW") for k in keys], None)

    for key in keys:
        history = store.user_decisions("salesforce", key)
        assert [(d.run_id, d.decision) for d in history] == [
            ("run-1", "NEW"),
            ("run-2", "CANDIDATE"),
        ]
        assert history[0] == decision("run-1", key, "NEW")
    assert store.user_decisions("other", "a") == []


def test_a_run_with_many_decisions_and_members_is_stored_whole(store: StateStore) -> None:
    """Above the 100 operations of one Table transaction."""
    keys = [f"user{n:04d}@contoso.test" for n in range(250)]
    decisions = [
        DecisionRecord("run-1", "salesforce", k, User(upn=k), "ACTIVE", "used it", {}) for k in keys
    ]
    store.record_run(a_run("run-1"), decisions, keys)
    store.record_run(a_run("run-2", NOW + timedelta(days=1)), [], keys[100:])

    assert len(store.policy_state("salesforce", NOW).first_seen) == 150
    assert [d.run_id for d in store.user_decisions("salesforce", keys[249])] == ["run-1"]


def test_run_decisions_are_one_runs_whole_and_survive_retention(store: StateStore) -> None:
    def decision(run_id: str, state_key: str, kind: str) -> DecisionRecord:
        return DecisionRecord(
            run_id, "salesforce", state_key, User(upn=state_key), kind, f"{kind} because", {"used": 1.0}
        )  # fmt: skip

    # Above one partition of 1,000 decisions, beside another run and another policy's run.
    keys = [f"user{n:04d}@contoso.test" for n in range(1_200)] + [ODD_KEY]
    old = NOW - timedelta(days=500)
    store.record_run(a_run("run-1", old), [decision("run-1", k, "ACTIVE") for k in keys[:3]]
                     + [decision("run-1", keys[3], "CANDIDATE")], None)  # fmt: skip
    store.record_run(a_run("run-2"), [decision("run-2", k, "NEW") for k in keys], None)
    other = replace(decision("run-3", "a", "NEW"), policy="other")
    store.record_run(a_run("run-3", policy="other"), [other], None)

    stored = store.run_decisions("salesforce", "run-2")
    assert [d.state_key for d in stored] == sorted(keys)
    assert stored[0] == decision("run-2", sorted(keys)[0], "NEW")
    assert [d.decision for d in store.run_decisions("salesforce", "run-1")] == [
        "ACTIVE", "ACTIVE", "ACTIVE", "CANDIDATE"
    ]  # fmt: skip
    assert store.run_decisions("other", "run-3") == [other]
    assert store.run_decisions("salesforce", "run-3") == []  # another policy's run
    assert store.run_decisions("salesforce", "no-such-run") == []

    store.compact("salesforce", NOW - timedelta(days=400))  # keeps the CANDIDATE decisions only
    assert [(d.state_key, d.decision) for d in store.run_decisions("salesforce", "run-1")] == [
        (keys[3], "CANDIDATE")
    ]


def a_flip(on: bool, at=NOW, name: str = KILL_SWITCH, **changes) -> SwitchChange:
    fields = {"by": "ada@contoso.test (oid 1f0c)", "via": "cli on vm1", "reason": "", **changes}
    return SwitchChange(name, on, at, fields["by"], fields["via"], fields["reason"])


def test_a_switch_never_set_has_no_state(store: StateStore) -> None:
    assert store.latest_switch(KILL_SWITCH) is None
    assert store.switch_history(KILL_SWITCH) == []


def test_the_newest_flip_decides_and_every_flip_is_kept(stores: StoreFactory) -> None:
    store, other = stores(), stores()  # another process: the function app and the CLI
    on = a_flip(True, reason="incident 42: wrong group — ünïcode, 'quotes' and | / \\ # ?")
    store.record_switch(on)
    assert other.latest_switch(KILL_SWITCH) == on
    off = a_flip(False, NOW + timedelta(minutes=5), by="bob", via="POST /api/manage/kill-switch")
    other.record_switch(off)
    late_but_older = a_flip(True, NOW + timedelta(minutes=1), by="carol")  # a skewed clock
    store.record_switch(late_but_older)
    assert store.latest_switch(KILL_SWITCH) == off
    assert store.switch_history(KILL_SWITCH) == [off, late_but_older, on]
    assert store.switch_history(KILL_SWITCH, limit=2) == [off, late_but_older]
    assert store.latest_switch("another_switch") is None


def test_flips_at_the_same_instant_keep_the_order_they_were_written(store: StateStore) -> None:
    first, second = a_flip(True, by="first"), a_flip(False, by="second")
    store.record_switch(first)
    store.record_switch(second)
    assert store.switch_history(KILL_SWITCH) == [second, first]
    assert store.switch_history(KILL_SWITCH)[0].at == NOW  # timezone-aware UTC back


def test_the_run_lease_has_one_holder_until_it_is_released_or_lapses(
    stores: StoreFactory,
) -> None:
    one, two = stores(), stores()
    ttl = timedelta(minutes=30)
    mine = one.take_lease("salesforce", "run-now:a", NOW, ttl)
    assert (mine.holder, mine.since, mine.expires) == ("run-now:a", NOW, NOW + ttl)
    theirs = two.take_lease("salesforce", "scheduler:b", NOW + timedelta(minutes=1), ttl)
    assert theirs == mine  # refused: the stored lease comes back, with its holder and since
    assert two.take_lease("visio", "scheduler:b", NOW, ttl).holder == "scheduler:b"  # per policy
    # The holder extends its own lease and keeps its start.
    extended = one.take_lease("salesforce", "run-now:a", NOW + timedelta(minutes=10), ttl)
    assert (extended.since, extended.expires) == (NOW, NOW + timedelta(minutes=40))
    two.release_lease("salesforce", "scheduler:b")  # not theirs: nothing happens
    assert two.take_lease("salesforce", "scheduler:b", NOW, ttl).holder == "run-now:a"
    one.release_lease("salesforce", "run-now:a")
    assert two.take_lease("salesforce", "scheduler:b", NOW, ttl).holder == "scheduler:b"
    # A holder that crashed never releases: its lease lapses at its expiry.
    lapsed = one.take_lease("salesforce", "expiry:c", NOW + ttl, ttl)
    assert (lapsed.holder, lapsed.since) == ("expiry:c", NOW + ttl)


def test_of_many_callers_at_once_exactly_one_takes_the_lease(stores: StoreFactory) -> None:
    callers = 8
    instances = [stores() for _ in range(callers)]  # one per process
    start = threading.Barrier(callers)

    def take(index: int) -> str:
        start.wait()
        lease = instances[index].take_lease(
            "salesforce", f"run-now:{index}", NOW, timedelta(minutes=30)
        )
        return lease.holder

    with ThreadPoolExecutor(callers) as pool:
        holders = list(pool.map(take, range(callers)))
    assert len(set(holders)) == 1  # every caller sees the same winner
    assert holders.count(holders[0]) == callers


def test_the_attempts_of_a_request_are_kept_with_its_claim(stores: StoreFactory) -> None:
    writer, reader = stores(), stores()
    queued = a_request(state=RequestState.QUEUED, attempts=2)
    writer.add_request(queued)
    claim = transition(queued, RequestState.REMOVING, NOW, attempts=3)
    assert writer.update_request(claim)
    assert reader.get_request(queued.id) == claim and claim.attempts == 3
    assert [r.attempts for r in reader.requests(states=[RequestState.REMOVING])] == [3]


def test_a_request_waiting_for_its_approver_keeps_the_approval(stores: StoreFactory) -> None:
    """escalation: the state, the approvers (any identifiers), the times and the approver's
    deadline read back the same from another process, and a request without one has none."""
    writer, reader = stores(), stores()
    pending = a_request()
    writer.add_request(pending)
    escalated = replace(
        transition(pending, RequestState.AWAITING_APPROVAL, NOW, detail="answered yes"),
        deadline=NOW + timedelta(days=3),
        approval=Approval(EscalateOn.KEEP, NOW),
    )
    assert writer.update_request(escalated)
    assert reader.get_request(pending.id) == escalated
    boss = User(object_id="0002", upn="grace@contoso.test", mail="g@c.test", display_name="Grace")
    approval = replace(
        escalated.approval, approvers=(boss,), via="manager", asked_at=NOW + timedelta(hours=1)
    )
    asked = replace(
        transition(escalated, RequestState.AWAITING_APPROVAL, NOW + timedelta(hours=1)),
        approval=approval,
    )
    assert writer.update_request(asked)
    assert reader.requests(states=[RequestState.AWAITING_APPROVAL]) == [asked]
    assert reader.policy_state("salesforce", NOW).open_requests == {pending.state_key: pending.id}
    released = transition(
        asked, RequestState.DUE, NOW + timedelta(hours=2), queue_reason=QueueReason.APPROVER
    )
    assert reader.update_request(released)
    stored = writer.get_request(pending.id)
    assert stored == released and stored.approval is not None
    assert stored.approval.allows("G@C.TEST") and not stored.approval.allows("ada@contoso.test")
    other = a_request("r2", "bob@contoso.test")
    writer.add_request(other)
    assert reader.get_request("r2") == other and other.approval is None


def test_a_notice_waits_in_its_own_state_with_the_date_it_told(stores: StoreFactory) -> None:
    writer, reader = stores(), stores()
    asked = a_request()
    writer.add_request(asked)
    decided = replace(
        transition(asked, RequestState.NOTICE, NOW, queue_reason=QueueReason.CONSENT), deadline=NOW
    )
    assert writer.update_request(decided)
    assert reader.get_request(asked.id) == decided and decided.not_before is None
    told = replace(
        transition(decided, RequestState.NOTICE, NOW, detail="notice sent"),
        not_before=NOW + timedelta(days=3),
    )
    assert reader.update_request(told)
    assert writer.update_request(replace(told, not_before=NOW)) is False  # compare-and-set
    assert writer.requests(states=[RequestState.NOTICE]) == [told]
    assert writer.policy_state("salesforce", NOW).open_requests == {asked.state_key: asked.id}
    due = transition(told, RequestState.DUE, NOW + timedelta(days=3))
    assert writer.update_request(due)
    assert reader.get_request(asked.id) == due and due.not_before == NOW + timedelta(days=3)


def test_a_sent_write_is_marked_on_the_request_and_the_mark_can_be_cleared(
    stores: StoreFactory,
) -> None:
    """perform_removal's marker (a write sent, when) reads back, and a settled one is gone."""
    writer, reader = stores(), stores()
    queued = a_request(state=RequestState.QUEUED)
    writer.add_request(queued)
    claim = transition(queued, RequestState.REMOVING, NOW, attempts=1)
    assert writer.update_request(claim)
    sent_at = NOW + timedelta(seconds=1, microseconds=250)
    marked = replace(
        transition(claim, RequestState.REMOVING, sent_at, unanswered_writes=1),
        write_sent_at=sent_at,
    )
    assert writer.update_request(marked)
    assert reader.get_request(queued.id) == marked
    assert [r.write_sent_at for r in reader.requests(states=[RequestState.REMOVING])] == [sent_at]
    settled = replace(
        transition(marked, RequestState.DUE, sent_at, unanswered_writes=0), write_sent_at=None
    )
    assert writer.update_request(settled)
    assert reader.get_request(queued.id) == settled


def test_a_circuit_breaker_is_shared_and_compare_and_set(stores: StoreFactory) -> None:
    first_process, second_process = stores(), stores()
    rules = BreakerRules(backoff=timedelta(minutes=5))
    assert first_process.get_breaker("sales/force", "entra") is None
    closed = Breaker("sales/force", "entra")
    opened = closed.tripped(
        HaltKind.PERMISSION,
        "grant GroupMember.ReadWrite.All",
        rules,
        NOW,
        "GroupMember.ReadWrite.All",
    )
    assert first_process.save_breaker(opened) is True
    assert second_process.save_breaker(opened) is False  # version 1 exists already
    assert second_process.get_breaker("sales/force", "entra") == opened
    probe = opened.probing(rules, NOW + timedelta(minutes=5))
    assert second_process.save_breaker(probe) is True
    assert first_process.save_breaker(opened.probing(rules, NOW)) is False  # a rival probe
    assert first_process.save_breaker(probe.closed()) is True
    assert second_process.get_breaker("sales/force", "entra") == probe.closed()
    other = Breaker("sales/force", "ad").outage("timed out", rules, NOW)
    assert second_process.save_breaker(other) is True
    assert [(b.directory, b.is_open) for b in first_process.breakers()] == [
        ("ad", False),
        ("entra", False),
    ]
    assert first_process.get_breaker("sales/force", "ad").outages == 1  # type: ignore[union-attr]


# ---- retention (issue 16, item 4) --------------------------------------------------------------


def test_requests_by_policy_and_user_match_any_of_the_users_identifiers(store: StateStore) -> None:
    ada = User(object_id="0001", upn="Ada@contoso.test", mail="ada.l@contoso.test")
    store.add_request(a_request("r1", user=ada, state=RequestState.CANCELLED))
    store.add_request(a_request("r2", user=ada, created_at=NOW + timedelta(days=1)))
    store.add_request(a_request("r3", "bob@contoso.test", user=User(upn="bob@contoso.test")))
    store.add_request(a_request("r4", user=ada, policy="other"))
    for identifier in ("ada@contoso.test", " ADA.L@contoso.test", "0001"):
        assert [r.id for r in store.user_requests("salesforce", identifier)] == ["r1", "r2"]
    assert store.user_requests("salesforce", "eve@contoso.test") == []
    assert store.user_requests("salesforce", "") == []
    updated = transition(store.get_request("r2"), RequestState.KEPT, NOW)
    assert store.update_request(updated)
    assert store.user_requests("salesforce", "0001")[-1] == updated  # the index follows


def test_retention_keeps_what_chose_someone_and_forgets_finished_requests(
    store: StateStore,
) -> None:
    def decision(run_id: str, state_key: str, kind: str) -> DecisionRecord:
        return DecisionRecord(
            run_id, "salesforce", state_key, User(upn=state_key), kind, f"{kind} because", {}
        )

    old, recent = NOW - timedelta(days=500), NOW - timedelta(days=10)
    keys = ["ada@contoso.test", "bob@contoso.test", ODD_KEY]
    store.record_run(
        a_run("run-old", old),
        [decision("run-old", keys[0], "CANDIDATE")] + [decision("run-old", k, "ACTIVE") for k in keys[1:]],
        None,
    )  # fmt: skip
    store.record_run(
        a_run("run-new", recent), [decision("run-new", k, "ACTIVE") for k in keys], None
    )
    long_ago = {"created_at": old, "updated_at": old}
    store.add_request(a_request("gone", state=RequestState.CANCELLED, **long_ago))
    store.add_request(a_request("kept-open", "bob@contoso.test", **long_ago))
    store.add_request(a_request("kept-removed", ODD_KEY, state=RequestState.REMOVED, **long_ago))
    store.add_request(a_request("kept-recent", state=RequestState.KEPT))
    store.add_request(
        a_request("other-policy", policy="other", state=RequestState.KEPT, **long_ago)
    )
    store.append_ledger(an_entry("e-old", old, request_id="gone"))

    compaction = store.compact("salesforce", NOW - timedelta(days=400))

    assert (compaction.runs, compaction.decisions, compaction.requests) == (1, 2, 1)
    assert [(d.run_id, d.decision) for d in store.user_decisions("salesforce", keys[0])] == [
        ("run-old", "CANDIDATE"),  # kept whole: what explain shows
        ("run-new", "ACTIVE"),
    ]
    for state_key in keys[1:]:
        assert [d.run_id for d in store.user_decisions("salesforce", state_key)] == ["run-new"]
    assert store.get_request("gone") is None
    assert [r.id for r in store.requests("salesforce")] == [
        "kept-open",
        "kept-removed",
        "kept-recent",
    ]
    assert store.user_requests("salesforce", "ada@contoso.test")[-1].id == "kept-recent"
    assert store.get_request("other-policy") is not None
    assert [e.id for e in store.ledger()] == ["e-old"]  # the ledger is kept
    assert [r.id for r in store.runs(policy="salesforce")] == ["run-old", "run-new"]
    again = store.compact("salesforce", NOW - timedelta(days=400))
    assert (again.runs, again.decisions, again.requests) == (0, 0, 0)
