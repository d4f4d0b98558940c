"""Removals are released only by a tick that has just re-decided them (issue 12, items 1 and 2):
the deadline with no run in between, after a halted run, the per-run caps on deadline releases,
the rolling rate, max_wait, and the worker's decision age. Real SQLite store, in-memory
directory, usage and campaign."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState, transition
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.records import LedgerOutcome, RemovalMessage, RunStatus
from reclaim.errors import SourceError
from tests.conftest import NOW, asking_policy, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

DAY = timedelta(days=1)
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(12)]


def usage(minutes: dict[int, float], default: float = 120.0) -> list[UsageRow]:
    return [UsageRow(u.upn, minutes.get(i, default)) for i, u in enumerate(USERS)]


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
        self.usage = MemoryUsage(usage({0: 1.0}), NOW)
        self.adapters = MemoryAdapters(self.directory, self.usage, MemoryCampaign())
        self.queue = MemoryQueue()
        self.store = SqliteStore(tmp_path / "state.sqlite3")
        self.ids = (f"id-{n:03d}" for n in itertools.count())

    def ctx(self, policy) -> usecases.Context:
        return usecases.Context(
            self.store,
            self.queue,
            self.adapters,
            {policy.name: policy},
            new_id=lambda: next(self.ids),
        )

    def export(self, at, minutes: dict[int, float]) -> None:
        """The usage source now reports this, observed at `at` (a fresh export)."""
        self.usage.rows = usage(minutes)
        self.usage.observed_at = at

    def work(self, ctx: usecases.Context, now) -> list[usecases.RemovalStatus]:
        return [
            usecases.perform_removal(ctx, usecases.RemovalCommand(m), now).status
            for m in self.queue.drain()
        ]

    def removed(self) -> list[str]:
        return [label for _, label in self.directory.removed]

    def request(self, index: int):
        (found,) = [r for r in self.store.requests() if r.user == USERS[index]]
        return found


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_user_active_since_the_ask_is_not_removed_at_the_deadline_without_a_run(world) -> None:
    """Measured on main: asked on day 0, 600 minutes on day 3, removed on day 8."""
    ctx = world.ctx(asking_policy())
    assert usecases.run_policy(ctx, ctx.policies["salesforce"], NOW).run.asked == 1
    world.export(NOW + 8 * DAY, {0: 600.0})  # she used it on day 3; nobody ran the policy

    report = usecases.expire_requests(ctx, NOW + 8 * DAY)
    world.work(ctx, NOW + 8 * DAY)

    assert world.removed() == []
    request = world.request(0)
    assert request.state is RequestState.CANCELLED
    assert "re-decided before release: active: used 10h" in request.detail
    assert (report.queued, report.cancelled) == (0, 1)
    (tick,) = [r for r in ctx.store.runs() if r.mode == "expiry"]
    assert (tick.status, tick.counts["ACTIVE"]) == (RunStatus.COMPLETED, 1)


def test_nor_after_a_run_halted_by_a_cap(world) -> None:
    ctx = world.ctx(asking_policy(limits={"max_removals_per_run": 2}))
    policy = ctx.policies["salesforce"]
    assert usecases.run_policy(ctx, policy, NOW).run.asked == 1
    world.export(NOW + 7 * DAY, {0: 600.0, 1: 0.0, 2: 0.0, 3: 0.0})  # three others stopped
    halted = usecases.run_policy(ctx, policy, NOW + 7 * DAY)
    assert halted.halt is not None and halted.halt.check == "max_removals_per_run"

    world.export(NOW + 8 * DAY, {0: 600.0, 1: 0.0, 2: 0.0, 3: 0.0})
    usecases.expire_requests(ctx, NOW + 8 * DAY)
    world.work(ctx, NOW + 8 * DAY)

    assert world.removed() == []
    assert world.request(0).state is RequestState.CANCELLED


def test_deadline_releases_beyond_the_per_run_cap_halt_the_tick_all_or_nothing(world) -> None:
    """Four runs' asks falling due in one tick (daily runs with a 30-day deadline, and the
    expiry timer down for three days): measured on main, 12 removals released past a cap of 3."""
    policy = make_policy(
        mode="enforce",
        ask_permission=True,
        limits={"max_removals_per_run": 3, "max_percent_of_group": 100},
        campaign={"channel": "webhook", "url": "https://s.example/a", "respond_within": "30d"},
    )
    ctx = world.ctx(policy)
    idle: dict[int, float] = {}
    for day in range(4):
        idle |= {i: 0.0 for i in range(3 * day, 3 * day + 3)}
        world.export(NOW + day * DAY, idle)
        assert usecases.run_policy(ctx, policy, NOW + day * DAY).run.asked == 3
    now = NOW + 33 * DAY
    world.export(now, idle)

    report = usecases.expire_requests(ctx, now)

    assert report.queued == 0 and world.queue.messages == []
    assert report.halted and "max_removals_per_run" in report.halted[0]
    assert "12 candidates exceed max_removals_per_run 3" in report.halted[0]
    assert {r.state for r in ctx.store.requests()} == {RequestState.DUE}
    (summary,) = usecases.report(ctx)
    assert any("expiry tick" in why and "12 candidates" in why for _, why in summary.halted)
    # The same halt on the next tick is not recorded twice.
    usecases.expire_requests(ctx, now + timedelta(minutes=15))
    assert len([r for r in ctx.store.runs() if r.mode == "expiry"]) == 1


def test_a_stale_or_failing_source_at_the_deadline_releases_nothing(world) -> None:
    ctx = world.ctx(asking_policy())
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    report = usecases.expire_requests(ctx, NOW + 8 * DAY)  # the export is 8 days old
    assert report.queued == 0 and "stale_usage" in report.halted[0]
    assert world.request(0).state is RequestState.DUE
    assert "held: the expiry tick halted (stale_usage)" in world.request(0).detail
    world.export(NOW + 8 * DAY, {0: 1.0})
    assert usecases.expire_requests(ctx, NOW + 8 * DAY).queued == 1
    assert world.work(ctx, NOW + 8 * DAY) == [usecases.RemovalStatus.REMOVED]


def test_a_no_is_released_by_the_next_tick_which_re_decides_it(world) -> None:
    ctx = world.ctx(asking_policy())
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    no = usecases.AnswerCommand(AnswerValue.NO, NOW, policy="salesforce", user="u0@c.com")
    assert usecases.record_answer(ctx, no, NOW + DAY) is usecases.AnswerStatus.QUEUED
    assert world.queue.messages == []
    world.export(
        NOW + DAY,
        {0: 1.0},
    )
    world.directory.groups["SF"] = world.directory.groups["SF"][1:]  # she left meanwhile
    usecases.expire_requests(ctx, NOW + DAY)
    assert world.request(0).state is RequestState.CANCELLED
    assert "no longer a member" in world.request(0).detail and world.queue.messages == []


def test_the_rolling_rate_releases_the_oldest_first_then_cancels_after_max_wait(world) -> None:
    policy = asking_policy(
        limits={"rate": {"count": 2, "window": "1d"}, "max_wait": "36h"},
    )
    ctx = world.ctx(policy)
    world.export(NOW, {i: 0.0 for i in range(5)})
    assert usecases.run_policy(ctx, policy, NOW).run.asked == 5
    for i in (4, 3, 2, 1, 0):  # u4 answers first
        answer = usecases.AnswerCommand(
            AnswerValue.NO, NOW, policy="salesforce", user=f"u{i}@c.com"
        )
        usecases.record_answer(ctx, answer, NOW + timedelta(minutes=10 - i))
    world.export(NOW + timedelta(hours=1), {i: 0.0 for i in range(5)})

    first = usecases.expire_requests(ctx, NOW + timedelta(hours=1))
    assert (first.queued, first.held) == (2, 3)
    world.work(ctx, NOW + timedelta(hours=1))
    assert world.removed() == ["u4@c.com", "u3@c.com"]
    held = world.request(2)
    assert (held.state, held.detail) == (
        RequestState.DUE,
        "held by the rate limit (limits.rate: 2 per 1d)",
    )
    assert [e.outcome for e in ctx.store.ledger() if e.request_id == held.id][-1] is (
        LedgerOutcome.HELD
    )
    assert usecases.expire_requests(ctx, NOW + timedelta(hours=2)).queued == 0  # none left today

    world.export(NOW + DAY + timedelta(hours=2), {i: 0.0 for i in range(5)})
    second = usecases.expire_requests(ctx, NOW + DAY + timedelta(hours=2))
    assert (second.queued, second.held) == (2, 1)
    world.work(ctx, NOW + DAY + timedelta(hours=2))
    assert world.removed() == ["u4@c.com", "u3@c.com", "u2@c.com", "u1@c.com"]

    world.export(NOW + 2 * DAY, {i: 0.0 for i in range(5)})
    third = usecases.expire_requests(ctx, NOW + 2 * DAY)
    assert (third.queued, third.cancelled) == (0, 0)  # u0 waited 47h50m: beyond max_wait 36h
    last = world.request(0)
    assert last.state is RequestState.CANCELLED
    assert last.detail.startswith("held by the rate limit (limits.rate: 2 per 1d) since 2026-11-28")
    assert "longer than limits.max_wait 1d12h: not removed on stale grounds" in last.detail
    # In any day, at most 2 releases.
    releases = sorted(e.at for e in ctx.store.ledger() if e.outcome is LedgerOutcome.QUEUED)
    assert all(len([t for t in releases if start <= t < start + DAY]) <= 2 for start in releases)


def test_a_run_without_asking_releases_at_most_the_allowance(world) -> None:
    policy = make_policy(mode="enforce", limits={"rate": {"count": 2, "window": "7d"}})
    ctx = world.ctx(policy)
    world.export(NOW, {i: 0.0 for i in range(4)})
    outcome = usecases.run_policy(ctx, policy, NOW)
    assert (outcome.run.enqueued, outcome.held) == (2, 2)
    assert len(world.queue.messages) == 2
    assert len(ctx.store.requests(states=[RequestState.DUE])) == 2
    assert usecases.expire_requests(ctx, NOW + DAY).held == 2  # the window is a week


def test_each_new_reason_a_request_waits_for_is_in_the_ledger_and_the_backlog(world) -> None:
    """Held by the rate, then by a tick halted on stale data: two HELD entries (on main the
    second was dropped as a duplicate id), and the report's backlog names the halt."""
    policy = make_policy(mode="enforce", limits={"rate": {"count": 2, "window": "7d"}})
    ctx = world.ctx(policy)
    world.export(NOW, {i: 0.0 for i in range(4)})
    assert usecases.run_policy(ctx, policy, NOW).held == 2
    assert usecases.expire_requests(ctx, NOW + 3 * DAY).halted  # the export is 3 days old
    held = ctx.store.requests(states=[RequestState.DUE])
    details = [
        [e.detail for e in ctx.store.ledger() if e.request_id == r.id and e.outcome.value == "HELD"]
        for r in held
    ]
    assert (
        details
        == [
            [
                "held by the rate limit (limits.rate: 2 per 7d)",
                "held: the expiry tick halted (stale_usage)",
            ]
        ]
        * 2
    )
    (summary,) = usecases.report(ctx, None, NOW + 3 * DAY)
    assert summary.savings is not None
    november, december = summary.savings.months
    assert [(c.value, a.count, a.cost) for c, a in november.backlog] == [("rate", 2, 50.0)]
    assert [(c.value, a.count, a.cost) for c, a in december.backlog] == [("halt", 2, 50.0)]


def test_the_worker_hands_an_old_decision_back_to_be_re_decided(world) -> None:
    policy = make_policy(mode="enforce", decision_max_age="1d")
    ctx = world.ctx(policy)
    world.export(NOW, {i: 0.0 for i in range(4)})
    usecases.run_policy(ctx, policy, NOW)
    later = NOW + 2 * DAY  # the kill switch was on, or the queue backed up
    sent = [m for m, _ in world.queue.messages]
    assert set(world.work(ctx, later)) == {usecases.RemovalStatus.HANDED_BACK}
    assert world.removed() == []
    assert {r.state for r in ctx.store.requests()} == {RequestState.DUE}
    assert "older than decision_max_age 1d" in world.request(0).detail

    # The old message delivered again while the request waits changes nothing.
    again = usecases.perform_removal(ctx, usecases.RemovalCommand(sent[1]), later)
    assert (again.status, world.removed()) == (usecases.RemovalStatus.SKIPPED, [])
    world.export(later, {0: 600.0, 1: 0.0, 2: 0.0, 3: 0.0})  # u0 is back at work
    report = usecases.expire_requests(ctx, later)
    assert (report.queued, report.cancelled) == (3, 1)
    assert set(world.work(ctx, later)) == {usecases.RemovalStatus.REMOVED}
    assert sorted(world.removed()) == ["u1@c.com", "u2@c.com", "u3@c.com"]
    assert len(ctx.store.requests()) == 4  # still one request per removal


def test_an_old_message_without_a_decision_time_is_read_and_re_decided(world) -> None:
    ctx = world.ctx(make_policy(mode="enforce"))
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    (sent,) = world.queue.drain()
    assert RemovalMessage.from_json(sent.to_json()).decided_at == NOW
    v1 = json.dumps(
        {
            "version": 1,
            "request_id": sent.request_id,
            "run_id": "r",
            "policy": "salesforce",
            "group": "SF",
            "user": {"upn": "u0@c.com"},
            "reason": "no-ask",
        }
    )
    message = RemovalMessage.from_json(v1)
    assert (message.version, message.decided_at) == (1, None)
    report = usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW)
    assert report.status is usecases.RemovalStatus.HANDED_BACK and world.removed() == []


def test_the_tick_waits_while_a_run_holds_the_policy_lease(world) -> None:
    ctx = world.ctx(asking_policy())
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    world.export(NOW + 8 * DAY, {0: 1.0})
    ctx.store.take_lease("salesforce", "run-now:x", NOW + 8 * DAY, usecases.LEASE_TTL)
    report = usecases.expire_requests(ctx, NOW + 8 * DAY)
    assert report.queued == 0 and "already running since" in report.busy[0]
    assert world.request(0).state is RequestState.PENDING
    ctx.store.release_lease("salesforce", "run-now:x")
    assert usecases.expire_requests(ctx, NOW + 8 * DAY).queued == 1


def test_the_tick_reads_the_directory_and_the_usage_once_per_policy(world) -> None:
    ctx = world.ctx(asking_policy())
    world.export(NOW, {i: 0.0 for i in range(6)})
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    reads: list[str] = []
    usage, members = world.usage.usage, world.directory.members
    world.usage.usage = lambda p, n: reads.append("usage") or usage(p, n)  # type: ignore[method-assign]
    world.directory.members = lambda g: reads.append("members") or members(g)  # type: ignore[method-assign]
    world.export(NOW + 8 * DAY, {i: 0.0 for i in range(6)})
    assert usecases.expire_requests(ctx, NOW + 8 * DAY).queued == 6
    assert sorted(reads) == ["members", "usage"]
    assert usecases.expire_requests(ctx, NOW + 8 * DAY + timedelta(minutes=15)).queued == 0
    assert sorted(reads) == ["members", "usage"]  # nothing due: nothing read


# ---- one read: the usage download overlaps the member listing -----------------------------------


def test_the_usage_export_downloads_while_the_members_are_listed(world) -> None:
    """The listing waits (bounded) for the usage read to start: read one after the other, it
    never would, and the plan would cost the sum of both round trips instead of the longer."""
    ctx = world.ctx(make_policy())
    usage_started = threading.Event()
    overlapped: list[bool] = []
    usage, members = world.usage.usage, world.directory.members

    def reading_usage(p, n):  # type: ignore[no-untyped-def]
        usage_started.set()
        return usage(p, n)

    def listing_members(g):  # type: ignore[no-untyped-def]
        overlapped.append(usage_started.wait(timeout=10))
        return members(g)

    world.usage.usage = reading_usage  # type: ignore[method-assign]
    world.directory.members = listing_members  # type: ignore[method-assign]
    result = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert overlapped == [True]
    assert not result.halted and result.decisions


def test_a_directory_halt_does_not_wait_for_a_slow_usage_download(world) -> None:
    ctx = world.ctx(make_policy())
    release = threading.Event()
    usage = world.usage.usage

    def hanging_usage(p, n):  # type: ignore[no-untyped-def]
        release.wait(timeout=30)
        return usage(p, n)

    def failing_members(g):  # type: ignore[no-untyped-def]
        raise SourceError("the directory is unreachable")

    world.usage.usage = hanging_usage  # type: ignore[method-assign]
    world.directory.members = failing_members  # type: ignore[method-assign]
    try:
        result = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
        assert not release.is_set()  # answered while the download still hangs
        assert result.run.status is RunStatus.HALTED
        assert "directory" in result.run.halt_reason
    finally:
        release.set()


def test_a_failed_usage_read_halts_after_a_good_listing(world) -> None:
    ctx = world.ctx(make_policy())

    def failing_usage(p, n):  # type: ignore[no-untyped-def]
        raise SourceError("export refused")

    world.usage.usage = failing_usage  # type: ignore[method-assign]
    result = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert result.run.status is RunStatus.HALTED
    assert "usage source: export refused" in result.run.halt_reason
    assert world.removed() == []


def test_max_wait_does_not_cancel_a_request_whose_own_write_may_have_removed_her(world) -> None:
    """Found by the chaos model: a handed-back request with an unanswered write of ours, held by
    halting ticks past max_wait, was CANCELLED although our write had taken her out (the ledger
    then no longer matched the group, and restore had nothing to restore). Only a reading of the
    directory can tell, so it waits for one."""
    policy = make_policy(mode="enforce", limits={"max_wait": "2h"})
    ctx = world.ctx(policy)
    world.export(NOW, {0: 0.0})
    assert usecases.run_policy(ctx, policy, NOW).run.enqueued == 1
    queued = world.request(0)
    # Her worker sent the DELETE, the directory applied it, and the worker died before the answer;
    # the claim's recovery handed it back for re-decision.
    world.directory.groups["SF"] = [m for m in world.directory.groups["SF"] if m.user != USERS[0]]
    stored = ctx.store.update_request(
        replace(
            transition(queued, RequestState.REMOVING, NOW, attempts=1, unanswered_writes=1),
        )
    )
    assert stored
    claimed = world.request(0)
    assert ctx.store.update_request(
        replace(transition(claimed, RequestState.DUE, NOW, detail="handed back"), deadline=NOW)
    )
    world.queue.drain()
    world.usage.observed_at = NOW - timedelta(days=30)  # the export stops being refreshed
    # The usage is stale: every tick halts and holds her...
    for hours in (1, 2, 3, 4):
        usecases.expire_requests(ctx, NOW + timedelta(hours=hours))
    assert world.request(0).state is RequestState.DUE
    # ...until a tick reads fresh data: she is gone, after our write.
    world.export(NOW + timedelta(hours=5), {i: 0.0 for i in range(1, 12)})
    usecases.expire_requests(ctx, NOW + timedelta(hours=5))
    ended = world.request(0)
    assert ended.state is RequestState.REMOVED
    assert "confirmed absent after our write" in ended.detail
