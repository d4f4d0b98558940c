"""Every removal accounted once and every request ending (issue 13, items 1-3), through the use
cases over the real SQLite store with the in-memory directory. The real directories' side of the
same rules (Graph's lost answers and 403s, a frozen Samba DC) is tested in tests/e2e."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.breaker import BreakerRules, HaltKind
from reclaim.domain.lifecycle import RequestState, transition
from reclaim.domain.model import Member, UsageRow, User
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import ConfigurationError, DirectoryOutage, PermanentError, PermissionDenied
from tests.conftest import NOW, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
    WorkerDied,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(6)]
USAGE = [UsageRow(f"u{i}@c.com", 1.0 if i < 4 else 120.0) for i in range(6)]  # u0..u3 idle
LIMITS = usecases.RemovalLimits(
    max_attempts=3,
    breaker=BreakerRules(
        backoff=timedelta(minutes=5), max_wait=timedelta(hours=1), outage_threshold=2
    ),
)
S = usecases.RemovalStatus


class BreakableWiring(MemoryAdapters):
    """Once broken, the directory cannot even be built (a setting is missing): the worker
    finds out after it claimed the removal."""

    broken = False

    def directory(self, policy):  # type: ignore[no-untyped-def]
        if self.broken:
            raise ConfigurationError("the Entra ID (Graph) path needs RECLAIM_TENANT_ID")
        return super().directory(policy)


@pytest.fixture
def world(tmp_path: Path):
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    queue = MemoryQueue()
    ids = (f"id-{n:03d}" for n in itertools.count())
    policy = make_policy(mode="enforce", limits={"max_removals_per_run": 10})

    def context(adapters: MemoryAdapters | None = None) -> usecases.Context:
        return usecases.Context(
            SqliteStore(tmp_path / "s.sqlite3"),
            queue,
            adapters or MemoryAdapters(directory, MemoryUsage(USAGE, NOW)),
            {policy.name: policy},
            new_id=lambda: next(ids),
            limits=LIMITS,
        )

    return context, directory, queue


def deliver(ctx: usecases.Context, queue: MemoryQueue, now=NOW) -> list[usecases.RemovalStatus]:
    return [
        usecases.perform_removal(ctx, usecases.RemovalCommand(m), now).status for m in queue.drain()
    ]


def deliver_one(ctx: usecases.Context, message, now) -> usecases.RemovalStatus:  # type: ignore[no-untyped-def]
    return usecases.perform_removal(ctx, usecases.RemovalCommand(message), now).status


def request_of(ctx: usecases.Context, upn: str):
    (found,) = [r for r in ctx.store.requests() if r.user.upn == upn]
    return found


# ---- 1. our own write, recognised ---------------------------------------------------------------


def test_a_removal_whose_answer_was_lost_is_removed_and_restorable(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.lost_answers = {"u0@c.com"}  # Graph applied the DELETE, the connection dropped
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    first = deliver(ctx, queue)
    assert first.count(S.DEFERRED) == 1 and request_of(ctx, "u0@c.com").attempts == 1
    assert deliver(ctx, queue, NOW + timedelta(minutes=1)) == [S.REMOVED]  # the retry: 404
    request = request_of(ctx, "u0@c.com")
    assert request.state is RequestState.REMOVED
    assert request.detail.startswith("confirmed absent after our write")
    removed = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMOVED]
    assert {e.user.upn for e in removed} == {"u0@c.com", "u1@c.com", "u2@c.com", "u3@c.com"}
    assert usecases.report(ctx)[0].removed == 4  # counted, with its savings
    restored = usecases.restore(
        ctx, usecases.RestoreCommand("salesforce", "u0@c.com", ""), NOW + timedelta(hours=1)
    )
    assert restored.restored == ["u0@c.com"] and directory.holds("SF", "u0@c.com")


def test_a_user_gone_before_our_first_write_stays_not_member(world) -> None:
    context, directory, queue = world
    ctx = context()
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    directory.groups["SF"] = [m for m in directory.groups["SF"] if m.user.upn != "u1@c.com"]
    assert sorted(deliver(ctx, queue)) == sorted([S.REMOVED] * 3 + [S.NOT_MEMBER])
    assert request_of(ctx, "u1@c.com").state is RequestState.NOT_MEMBER


# ---- 2. no request without an end ----------------------------------------------------------------


def test_a_transient_error_that_never_clears_ends_failed_after_max_attempts(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0])]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    directory.transient_failures = 1_000  # every delivery is a new message: no dequeue count
    statuses = []
    for minute in range(10):
        statuses += deliver(ctx, queue, NOW + timedelta(minutes=minute))
        if not queue.messages:
            break
    assert statuses == [S.DEFERRED, S.DEFERRED, S.FAILED]  # max_attempts 3
    request = request_of(ctx, "u0@c.com")
    assert request.state is RequestState.FAILED and "throttled" in request.detail
    assert request.attempts == 3 and queue.messages == []


def test_deferrals_that_never_reached_the_directory_are_not_attempts(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0])]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    ctx.kill_switch = True
    for _ in range(5):
        assert deliver(ctx, queue) == [S.DEFERRED]
    ctx.kill_switch = False
    assert directory.remove_calls == 0 and request_of(ctx, "u0@c.com").attempts == 0
    assert deliver(ctx, queue) == [S.REMOVED]


def test_a_failure_after_the_claim_does_not_leave_the_request_removing(world) -> None:
    """RECLAIM_TENANT_ID unset: the directory fails to build after the claim. The request waits
    behind the policy's breaker with the reason (no copy per delivery), then is cancelled."""
    context, directory, queue = world
    wiring = BreakableWiring(directory, MemoryUsage(USAGE, NOW))
    ctx = context(wiring)
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    wiring.broken = True  # the worker's process lacks the setting
    assert deliver(ctx, queue) == [S.DEFERRED] * 4
    assert {r.state for r in ctx.store.requests()} == {RequestState.QUEUED}
    assert len(queue.messages) == 4  # one message each, none multiplied
    assert all(delay == LIMITS.breaker.backoff for _, delay in queue.messages)
    assert "RECLAIM_TENANT_ID" in usecases.report(ctx)[0].removals_halted
    (breaker,) = ctx.store.breakers()
    assert breaker.is_open and breaker.kind is HaltKind.CONFIGURATION
    assert deliver(ctx, queue, NOW + timedelta(minutes=10)) == [S.DEFERRED] * 4  # still refused
    # One HELD entry per removal while the breaker is open (the report's backlog), not per try.
    held = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.HELD]
    assert len(held) == 4 and len({e.request_id for e in held}) == 4
    assert all("circuit breaker is open" in e.detail for e in held)
    assert deliver(ctx, queue, NOW + timedelta(hours=1)) == [S.CANCELLED] * 4
    assert {r.state for r in ctx.store.requests()} == {RequestState.CANCELLED}
    assert all("RECLAIM_TENANT_ID" in r.detail for r in ctx.store.requests())


def test_a_claim_older_than_its_lease_is_recovered_by_the_expiry_tick(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0]), Member(USERS[1])]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    queue.drain()  # the worker took the messages and died (the local queue used to delete them)
    for upn, attempts in (("u0@c.com", 0), ("u1@c.com", LIMITS.max_attempts)):
        request = request_of(ctx, upn)
        dying = transition(request, RequestState.REMOVING, NOW, attempts=attempts)
        assert ctx.store.update_request(dying)
    assert usecases.expire_requests(ctx, NOW + timedelta(minutes=1)).recovered == 0  # leased
    later = NOW + LIMITS.claim_lease
    assert usecases.expire_requests(ctx, later).recovered == 2
    # Handed back and re-decided by the same tick, never taken over: u0 is released on a fresh
    # decision; u1's attempts are spent, so it ends without another write.
    assert sorted(deliver(ctx, queue, later)) == sorted([S.REMOVED, S.FAILED])
    assert request_of(ctx, "u1@c.com").detail.startswith("gave up after retries (3 attempt(s))")
    assert request_of(ctx, "u0@c.com").state is RequestState.REMOVED
    assert directory.removed == [("SF", "u0@c.com")]
    assert usecases.expire_requests(ctx, later + timedelta(minutes=1)).recovered == 0


def test_a_recovered_claim_is_released_again_when_the_rate_is_used_up(world) -> None:
    """The rate counts removals: a request whose worker died is the same removal when the tick
    releases it again. Counting its second release too held it until limits.max_wait cancelled
    it (seen after an Azurite restart, where workers stop between claim and outcome)."""
    context, directory, queue = world
    rated = make_policy(
        mode="enforce", limits={"max_removals_per_run": 10, "rate": {"count": 4, "window": "1d"}}
    )
    ctx = replace(context(), policies={rated.name: rated})
    usecases.run_policy(ctx, rated, NOW)
    messages = queue.drain()
    assert len(messages) == 4  # u0..u3: the whole day's rate
    for message in messages[1:]:
        deliver_one(ctx, message, NOW)
    dying = transition(request_of(ctx, "u0@c.com"), RequestState.REMOVING, NOW, attempts=0)
    assert ctx.store.update_request(dying)  # its worker died holding the claim
    later = NOW + LIMITS.claim_lease
    assert usecases.expire_requests(ctx, later).recovered == 1
    assert deliver(ctx, queue, later) == [S.REMOVED]
    assert sorted(u for _, u in directory.removed) == [
        "u0@c.com",
        "u1@c.com",
        "u2@c.com",
        "u3@c.com",
    ]
    assert not [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.HELD]


def test_a_dead_workers_claim_on_an_old_decision_is_re_decided_not_acted_on(world) -> None:
    """An incident: the kill switch stayed on for days while a claim was left by a dead worker.
    Taking the claim over would remove her on a days-old decision; she is re-decided instead,
    and she has since become active."""
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0])]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    (message,) = queue.drain()
    dying = transition(request_of(ctx, "u0@c.com"), RequestState.REMOVING, NOW, attempts=0)
    assert ctx.store.update_request(dying)
    later = NOW + timedelta(days=3)
    ctx.adapters.usage_ = MemoryUsage([UsageRow("u0@c.com", 600.0)], later)  # type: ignore[attr-defined]
    assert deliver_one(ctx, message, later) is S.HANDED_BACK
    usecases.expire_requests(ctx, later + timedelta(minutes=1))
    assert request_of(ctx, "u0@c.com").state is RequestState.CANCELLED
    assert directory.holds("SF", "u0@c.com") and queue.drain() == []


def test_a_lost_write_of_a_dead_worker_is_recognised_when_re_decided(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0])]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    (message,) = queue.drain()
    # The worker sent the DELETE, the directory applied it, and the worker died before the answer.
    dying = transition(
        request_of(ctx, "u0@c.com"), RequestState.REMOVING, NOW, attempts=1, unanswered_writes=1
    )
    assert ctx.store.update_request(dying)
    directory.groups["SF"] = [Member(USERS[4])]  # u0 is gone; u4 (active) stays
    later = NOW + timedelta(days=2)
    ctx.adapters.usage_ = MemoryUsage(USAGE, later)  # type: ignore[attr-defined]
    assert deliver_one(ctx, message, later) is S.HANDED_BACK
    usecases.expire_requests(ctx, later + timedelta(minutes=1))
    request = request_of(ctx, "u0@c.com")
    assert request.state is RequestState.REMOVED
    assert request.detail.startswith("confirmed absent after our write")
    assert [e.user.upn for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMOVED] == [
        "u0@c.com"
    ]


def test_a_write_that_never_went_out_does_not_make_a_later_absence_ours(world) -> None:
    """The directory refused the connection (nothing sent); meanwhile someone else removed her.
    The retry's "not a member" is not reclaim's work: NOT_MEMBER, not counted as a removal."""
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0])]
    directory.unreachable = 1
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert deliver(ctx, queue) == [S.DEFERRED]
    directory.groups["SF"] = []
    assert deliver(ctx, queue, NOW + timedelta(minutes=1)) == [S.NOT_MEMBER]
    assert request_of(ctx, "u0@c.com").attempts == 2  # the refused call still counted: bounded


# ---- 3. circuit breakers -------------------------------------------------------------------------


def test_a_missing_permission_stops_removals_at_the_first_and_a_probe_resumes_them(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.refuse_all = PermissionDenied(
        "Graph denied remove (403 Authorization_RequestDenied): grant GroupMember.ReadWrite.All",
        "GroupMember.ReadWrite.All",
    )
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert deliver(ctx, queue) == [S.DEFERRED] * 4
    assert directory.remove_calls == 1  # not 4 of 4
    (breaker,) = ctx.store.breakers()
    assert breaker.kind is HaltKind.PERMISSION and breaker.permission == "GroupMember.ReadWrite.All"
    halted = usecases.report(ctx)[0].removals_halted
    assert "grant GroupMember.ReadWrite.All" in halted and "4 removal(s) waiting" in halted
    assert {r.attempts for r in ctx.store.requests(states=[RequestState.QUEUED])} == {0}
    # Still refused at the first probe: one more call, the others keep waiting.
    probe_time = NOW + LIMITS.breaker.backoff
    assert deliver(ctx, queue, probe_time) == [S.DEFERRED] * 4 and directory.remove_calls == 2
    directory.refuse_all = None  # the permission was granted
    later = probe_time + LIMITS.breaker.backoff
    assert deliver(ctx, queue, later) == [S.REMOVED] * 4
    assert directory.remove_calls == 6 and not ctx.store.breakers()[0].is_open
    assert usecases.report(ctx)[0].removals_halted == ""


def test_a_refusal_about_one_user_fails_that_removal_only(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.failures["u2@c.com"] = PermanentError(
        "Graph denied remove u2 for this object only (restricted management unit)"
    )
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert sorted(deliver(ctx, queue)) == sorted([S.REMOVED] * 3 + [S.FAILED])
    assert request_of(ctx, "u2@c.com").state is RequestState.FAILED
    assert all(not b.is_open for b in ctx.store.breakers())


def test_consecutive_outages_treat_the_directory_as_down_for_a_back_off(world) -> None:
    context, directory, queue = world
    ctx = context()
    directory.refuse_all = DirectoryOutage("ad.example.test did not answer within 10 s")
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert deliver(ctx, queue) == [S.DEFERRED] * 4
    assert directory.remove_calls == 2  # outage_threshold, then no timeout is spent per message
    (breaker,) = ctx.store.breakers()
    assert breaker.is_open and breaker.kind is HaltKind.OUTAGE
    # The removals the open breaker holds back are in the ledger for the report's backlog.
    held = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.HELD]
    assert len({e.request_id for e in held}) == len(held) == 4
    directory.refuse_all = None  # the DC is back
    assert deliver(ctx, queue, NOW + timedelta(minutes=6)) == [S.REMOVED] * 4
    assert not ctx.store.breakers()[0].is_open and ctx.store.breakers()[0].outages == 0


def test_removals_waiting_behind_an_open_breaker_are_not_resent_as_lost(world) -> None:
    """A wait changes nothing on the request, so after an hour it looks like a lost message:
    resending it every tick would add a copy each time, all waiting together."""
    context, directory, queue = world
    ctx = context()
    directory.refuse_all = PermissionDenied("grant GroupMember.ReadWrite.All", "GroupMember")
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    deliver(ctx, queue)
    assert len(queue.messages) == 4
    later = NOW + usecases.RESEND_AFTER + timedelta(minutes=1)
    assert usecases.expire_requests(ctx, later).resent == 0 and len(queue.messages) == 4


# ---- a worker that dies mid-removal (found by the chaos runs) ------------------------------------


def test_a_user_re_added_after_a_dead_workers_write_is_not_removed_again(world) -> None:
    """Our DELETE was applied, the worker died before the answer, and someone re-added her before
    the claim was recovered. Taking the claim over removed her a second time on the old decision;
    the request is re-decided instead: our write took her out (REMOVED, restorable), and the
    re-added membership is left alone."""
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0], added_at=NOW - timedelta(days=90))]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    directory.dies = "after"
    with pytest.raises(WorkerDied):
        deliver(ctx, queue)
    assert not directory.holds("SF", "u0@c.com")
    back_at = NOW + timedelta(seconds=30)
    directory.groups["SF"].append(Member(USERS[0], added_at=back_at, added_from="audit log"))
    later = NOW + LIMITS.claim_lease
    for step in range(3):  # recovery by the expiry tick and the worker, as often as it takes
        usecases.expire_requests(ctx, later + timedelta(minutes=step))
        deliver(ctx, queue, later + timedelta(minutes=step))
    assert directory.removed == [("SF", "u0@c.com")]  # once
    assert directory.holds("SF", "u0@c.com")
    request = request_of(ctx, "u0@c.com")
    assert request.state is RequestState.REMOVED
    assert "re-added by someone else" in request.detail
    assert [e.user.upn for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMOVED] == [
        "u0@c.com"
    ]


def test_a_worker_that_died_before_sending_does_not_make_someone_elses_removal_ours(world) -> None:
    """The worker claimed the removal and died before its write went out; then someone else took
    her out. Our write was never sent: NOT_MEMBER, not a removal of ours."""
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0], added_at=NOW - timedelta(days=90))]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    directory.dies = "before"
    with pytest.raises(WorkerDied):
        deliver(ctx, queue)
    assert request_of(ctx, "u0@c.com").unanswered_writes == 0  # the marker was never stored
    directory.groups["SF"] = []  # someone else removed her
    later = NOW + LIMITS.claim_lease
    for step in range(3):
        usecases.expire_requests(ctx, later + timedelta(minutes=step))
        deliver(ctx, queue, later + timedelta(minutes=step))
    request = request_of(ctx, "u0@c.com")
    assert request.state is RequestState.NOT_MEMBER, request.detail
    assert "no write of ours had gone out" in request.detail
    assert not [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMOVED]


def test_a_dead_workers_write_that_was_not_applied_is_settled_and_decided_afresh(world) -> None:
    """The write was sent but never applied (the worker died with it in flight): she is still a
    member since before it. The marker is cleared and a fresh decision removes her, once."""
    context, directory, queue = world
    ctx = context()
    directory.groups["SF"] = [Member(USERS[0], added_at=NOW - timedelta(days=90))]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    (message,) = queue.drain()
    sent = replace(
        transition(
            request_of(ctx, "u0@c.com"), RequestState.REMOVING, NOW, attempts=1, unanswered_writes=1
        ),
        write_sent_at=NOW,
    )
    assert ctx.store.update_request(sent)
    later = NOW + LIMITS.claim_lease
    usecases.expire_requests(ctx, later)
    assert "did not take her out" in request_of(ctx, "u0@c.com").detail
    assert deliver(ctx, queue, later) == [S.REMOVED]
    assert directory.removed == [("SF", "u0@c.com")]
    assert deliver_one(ctx, message, later) is S.SKIPPED  # the dead worker's message, redelivered


def test_a_policy_lease_whose_holder_process_died_here_is_taken_at_once(world) -> None:
    """Found by the chaos run: `run` killed during its selection kept the policy's lease for
    its whole TTL (30 min), so no `expire` or `work` could re-decide the claims its dead worker
    left. A holder that names a process of this machine that is gone no longer blocks."""
    import os
    import socket
    import subprocess
    import sys

    context, _, _ = world
    ctx = context()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"cli:0123456789ab:{socket.gethostname()}:{gone.pid}"
    assert ctx.store.take_lease("salesforce", dead, NOW, usecases.LEASE_TTL).holder == dead
    with usecases.policy_lease(ctx, "salesforce", NOW, "expiry") as holder:
        assert holder != dead
    alive = f"cli:0123456789ab:{socket.gethostname()}:{os.getpid()}"
    assert ctx.store.take_lease("salesforce", alive, NOW, usecases.LEASE_TTL).holder == alive
    with pytest.raises(usecases.PolicyBusy), usecases.policy_lease(ctx, "salesforce", NOW, "x"):
        pass


def test_a_run_longer_than_the_lease_ttl_keeps_its_lease(world, monkeypatch) -> None:
    """A CLI run against a throttling directory can outlast LEASE_TTL: its lease must not lapse
    while it works (another run would start on the same policy), and must be gone once it ends."""
    import threading
    import time

    from reclaim.usecases import lease

    monkeypatch.setattr(lease, "LEASE_TTL", timedelta(seconds=1))
    monkeypatch.setattr(lease, "LEASE_RENEW_EVERY", timedelta(seconds=0.2), raising=False)
    context, _, _ = world
    ctx = context()
    holding, done = threading.Event(), threading.Event()

    def long_run() -> None:
        with lease.policy_lease(ctx, "salesforce", NOW, "run"):
            holding.set()
            done.wait(10)

    runner = threading.Thread(target=long_run)
    runner.start()
    assert holding.wait(5)
    started = time.monotonic()
    time.sleep(2.5)  # two and a half TTLs into the run
    later = NOW + timedelta(seconds=time.monotonic() - started)
    with pytest.raises(usecases.PolicyBusy), lease.policy_lease(ctx, "salesforce", later, "x"):
        pass
    done.set()
    runner.join()
    # Released, and no renewal after the release takes it back.
    time.sleep(0.5)
    with lease.policy_lease(ctx, "salesforce", later, "next") as holder:
        assert holder.startswith("next:")
