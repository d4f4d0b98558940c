"""The scheduler and expiry timers through the azure-functions API, over real Azurite."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from reclaim import scheduling, usecases
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.policy import Policy
from reclaim.functions import app_context
from reclaim.settings import Settings
from tests.conftest import NOW, asking_policy, make_policy
from tests.functions.conftest import World
from tests.support.functions import call_timer
from tests.support.memory import MemoryAdapters

pytestmark = pytest.mark.azurite

HOURLY = "0 0 * * * *"


def test_a_policy_first_seen_waits_for_its_next_due_time_then_runs_once(world: World) -> None:
    world.use_policies(asking_policy(schedule=HOURLY))
    world.clock.now = NOW + timedelta(minutes=30)  # 06:30: first sight
    call_timer("scheduler")
    assert world.ctx.store.runs() == []
    assert world.ctx.store.schedule_cursor("salesforce") == NOW  # 06:00, not run

    world.clock.now = NOW + timedelta(minutes=55)
    call_timer("scheduler")
    assert world.ctx.store.runs() == []

    world.clock.now = NOW + timedelta(hours=1, seconds=5)  # 07:00 came due
    call_timer("scheduler")
    call_timer("scheduler")  # an overlapping tick of the same minute
    (run,) = world.ctx.store.runs()
    assert (run.started_at, run.asked) == (world.clock.now, 4)
    assert world.ctx.store.schedule_cursor("salesforce") == NOW + timedelta(hours=1)


class MeetingStore:
    """Lets two instances read the cursor before either moves it (truly overlapping ticks)."""

    def __init__(self, inner: Any, barrier: threading.Barrier) -> None:
        self._inner = inner
        self._barrier = barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def schedule_cursor(self, policy: str) -> Any:
        cursor = self._inner.schedule_cursor(policy)
        self._barrier.wait(timeout=10)
        return cursor


def test_two_instances_ticking_at_once_run_a_due_policy_once(world: World) -> None:
    world.use_policies(asking_policy(schedule=HOURLY))
    world.ctx.store.advance_schedule("salesforce", None, NOW)
    world.clock.now = NOW + timedelta(hours=1)
    other = app_context.build(
        Settings.from_env(world.env),
        env=world.env,
        policies=world.ctx.policies,
        adapters=world.adapters,
        secrets=world.secrets,
        clock=world.clock,
    )  # another instance: its own Table storage clients
    other.ctx.new_id = world.ctx.new_id
    barrier = threading.Barrier(2)
    contexts = [world.ctx, other.ctx]
    for ctx in contexts:
        ctx.store = MeetingStore(ctx.store, barrier)  # type: ignore[assignment]

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda c: scheduling.run_due_policies(c, world.clock()), contexts))

    results = sorted(r.ticks[0].result.value for r in reports)
    assert results in (["busy", "ran"], ["ran", "taken"])  # the lease, or the cursor, stops it
    assert len(world.ctx.store.runs()) == 1
    assert len(world.ctx.store.requests()) == 4  # one request per idle user, not two


def test_a_late_tick_logs_a_warning(world: World, caplog: pytest.LogCaptureFixture) -> None:
    call_timer("scheduler", past_due=True)
    assert "late" in caplog.text


class BrokenFor(MemoryAdapters):
    def usage_source(self, policy: Policy) -> Any:
        if policy.name == "broken":
            raise RuntimeError("an adapter bug")
        return super().usage_source(policy)


def test_one_failing_policy_does_not_stop_the_others_but_fails_the_tick(world: World) -> None:
    broken = make_policy(name="broken", schedule=HOURLY)
    fine = asking_policy(schedule=HOURLY)
    world.use_policies(broken, fine)
    world.ctx.adapters = BrokenFor(world.directory, world.adapters.usage_, world.adapters.campaign_)
    for name in ("broken", "salesforce"):
        world.ctx.store.advance_schedule(name, None, NOW)
    world.clock.now = NOW + timedelta(hours=1)

    with pytest.raises(RuntimeError, match="scheduled runs failed: broken: RuntimeError"):
        call_timer("scheduler")

    assert [(r.policy, r.mode) for r in world.ctx.store.runs()] == [
        ("broken", "scheduler"),  # the failure, recorded
        ("salesforce", "enforce"),
    ]
    # The due time is given back: the next tick runs it again (it used to be skipped for good).
    assert world.ctx.store.schedule_cursor("broken") == NOW
    (broken_report,) = [r for r in usecases.report(world.ctx) if r.policy == "broken"]
    assert "scheduled run: the run due" in broken_report.halted[0][1]


def test_a_scheduled_run_that_raised_is_retried_by_later_ticks_a_bounded_number_of_times(
    world: World,
) -> None:
    broken = make_policy(name="broken", schedule=HOURLY)
    world.use_policies(broken)
    world.ctx.adapters = BrokenFor(world.directory, world.adapters.usage_, world.adapters.campaign_)
    world.ctx.store.advance_schedule("broken", None, NOW)
    due = NOW + timedelta(hours=1)
    for tick in range(scheduling.SCHEDULED_RETRIES + 1):  # the first try and the retries
        world.clock.now = due + timedelta(minutes=5 * tick)
        with pytest.raises(RuntimeError, match="broken: RuntimeError"):
            call_timer("scheduler")
    world.clock.now += timedelta(minutes=5)
    call_timer("scheduler")  # given up: nothing is due until the next due time
    tries = [r.halt_reason for r in world.ctx.store.runs() if r.mode == "scheduler"]
    assert len(tries) == scheduling.SCHEDULED_RETRIES + 1
    assert tries[-1].endswith("the next due time runs)")
    assert world.ctx.store.schedule_cursor("broken") == due

    world.ctx.adapters = MemoryAdapters(
        world.directory, world.adapters.usage_, world.adapters.campaign_
    )
    world.clock.now = due + timedelta(hours=1)  # the next due time runs
    call_timer("scheduler")
    assert [r.mode for r in world.ctx.store.runs()][-1] == broken.mode.value


def test_a_retried_due_time_runs_once_it_works(world: World) -> None:
    broken = make_policy(name="broken", schedule=HOURLY)
    world.use_policies(broken)
    world.ctx.adapters = BrokenFor(world.directory, world.adapters.usage_, world.adapters.campaign_)
    world.ctx.store.advance_schedule("broken", None, NOW)
    world.clock.now = NOW + timedelta(hours=1)
    with pytest.raises(RuntimeError):
        call_timer("scheduler")
    world.ctx.adapters = MemoryAdapters(
        world.directory, world.adapters.usage_, world.adapters.campaign_
    )
    world.clock.now += timedelta(minutes=5)
    call_timer("scheduler")
    assert [r.mode for r in world.ctx.store.runs()] == ["scheduler", broken.mode.value]
    assert world.ctx.store.schedule_cursor("broken") == NOW + timedelta(hours=1)


def test_expiry_queues_the_removals_of_the_silent_after_the_deadline(world: World) -> None:
    world.run()
    world.clock.advance(timedelta(days=6))
    call_timer("expiry")
    assert {r.state for r in world.ctx.store.requests()} == {RequestState.PENDING}

    world.clock.advance(timedelta(days=2))
    world.adapters.usage_.observed_at = world.clock()  # the tick re-reads a fresh export
    call_timer("expiry")
    assert {r.state for r in world.ctx.store.requests()} == {RequestState.QUEUED}
    assert world.message_count() == 4


def test_a_scheduled_run_waits_while_another_run_holds_the_lease(world: World) -> None:
    world.use_policies(asking_policy(schedule=HOURLY))
    world.ctx.store.advance_schedule("salesforce", None, NOW)
    world.clock.now = NOW + timedelta(hours=1)
    world.ctx.store.take_lease("salesforce", "run-now:other", world.clock(), timedelta(minutes=30))
    report = scheduling.run_due_policies(world.ctx, world.clock())
    assert report.ticks[0].result is scheduling.TickResult.BUSY
    assert "already running since" in report.ticks[0].error
    assert world.ctx.store.schedule_cursor("salesforce") == NOW  # not consumed
    assert world.ctx.store.runs() == []
    world.ctx.store.release_lease("salesforce", "run-now:other")
    report = scheduling.run_due_policies(world.ctx, world.clock())
    assert report.ticks[0].result is scheduling.TickResult.RAN
    assert len(world.ctx.store.runs()) == 1
