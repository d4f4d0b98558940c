"""The use cases end to end over the real SQLite store, with in-memory directory and campaign."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.records import LedgerOutcome, MessageError, RemovalMessage, RunStatus
from reclaim.ports import ChannelAnswer
from tests.conftest import NOW, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com", sid=f"S-1-5-21-{i}") for i in range(10)]
# u0..u3 barely used it; u4..u9 are active.
USAGE = [UsageRow(f"u{i}@c.com", 1.0 if i < 4 else 120.0) for i in range(10)]


@pytest.fixture
def world(tmp_path: Path):
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    adapters = MemoryAdapters(directory, MemoryUsage(USAGE, NOW), MemoryCampaign())
    ids = (f"id-{n:03d}" for n in itertools.count())

    def context(**policy: object) -> usecases.Context:
        p = make_policy(**policy)
        return usecases.Context(
            SqliteStore(tmp_path / "s.sqlite3"),
            queue,
            adapters,
            {p.name: p},
            new_id=lambda: next(ids),
        )

    queue = MemoryQueue()
    return context, directory, adapters, queue


def work(ctx: usecases.Context, queue: MemoryQueue, now=NOW) -> list[usecases.RemovalStatus]:
    return [
        usecases.perform_removal(ctx, usecases.RemovalCommand(m), now).status for m in queue.drain()
    ]


def test_plan_writes_nothing(world) -> None:
    context, _, _, queue = world
    ctx = context(mode="enforce")
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW, read_only=True)
    assert outcome.run.counts["CANDIDATE"] == 4
    assert ctx.store.runs() == [] and ctx.store.requests() == [] and queue.messages == []


def test_a_dry_run_records_decisions_and_the_snapshot_but_acts_on_nobody(world) -> None:
    context, directory, _, queue = world
    ctx = context()
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert outcome.run.status is RunStatus.PLANNED
    assert [r.id for r in ctx.store.runs()] == [outcome.run.id]
    assert ctx.store.policy_state("salesforce", NOW).baseline_at == NOW
    assert ctx.store.user_decisions("salesforce", "u0@c.com")[0].decision == "CANDIDATE"
    assert queue.messages == [] and directory.removed == []


def test_enforce_without_asking_removes_each_candidate_once(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce")
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert (outcome.run.status, outcome.run.enqueued) == (RunStatus.COMPLETED, 4)
    messages = [m for m, _ in queue.messages]
    queue.messages.extend((m, None) for m in messages)  # every message delivered twice
    statuses = work(ctx, queue)
    assert statuses.count(usecases.RemovalStatus.REMOVED) == 4
    assert statuses.count(usecases.RemovalStatus.SKIPPED) == 4
    assert sorted(label for _, label in directory.removed) == [f"u{i}@c.com" for i in range(4)]
    removed = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.REMOVED]
    assert len(removed) == 4 and all(e.monthly_cost == 25.0 for e in removed)
    # The next run sees them gone and opens nothing new.
    again = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW + timedelta(days=7))
    assert again.run.enqueued == 0


def test_a_halted_run_changes_nothing_and_says_why(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce", limits={"max_removals_per_run": 3})
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert outcome.halt is not None and outcome.halt.check == "max_removals_per_run"
    (run,) = ctx.store.runs()
    assert run.status is RunStatus.HALTED and "4 candidates exceed" in run.halt_reason
    assert queue.messages == [] and ctx.store.requests() == [] and directory.removed == []


def test_a_failing_usage_source_fails_closed(world) -> None:
    context, _, adapters, queue = world
    from reclaim.errors import SourceError
    from reclaim.ports import UsageExport

    def broken(policy, now):
        def rows():
            yield USAGE[0]
            raise SourceError("export line 2: focus_time is 'abc', not a number")

        return UsageExport(NOW, rows())

    adapters.usage_.usage = broken  # type: ignore[method-assign]
    ctx = context(mode="enforce")
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert outcome.halt is not None and outcome.halt.check == "usage_source"
    assert "not a number" in outcome.halt.reason
    assert queue.messages == []


def test_asking_then_answers_yes_no_and_silence(world) -> None:
    context, directory, adapters, queue = world
    adapters.campaign_.refuse = {"u3@c.com"}
    ctx = context(
        mode="enforce",
        ask_permission=True,
        campaign={
            "channel": "webhook",
            "url": "https://survey.example/ask",
            "respond_within": "7d",
        },
    )
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    assert outcome.run.asked == 3 and outcome.not_asked == {
        "u3@c.com": "no device seen for this user"
    }
    assert queue.messages == []
    pending = {r.user.upn: r for r in ctx.store.requests(states=[RequestState.PENDING])}
    assert set(pending) == {"u0@c.com", "u1@c.com", "u2@c.com"}

    yes = usecases.AnswerCommand(AnswerValue.YES, NOW, request_id=pending["u0@c.com"].id)
    assert usecases.record_answer(ctx, yes, NOW) is usecases.AnswerStatus.KEPT
    assert usecases.record_answer(ctx, yes, NOW) is usecases.AnswerStatus.DUPLICATE
    no = usecases.AnswerCommand(AnswerValue.NO, NOW, policy="salesforce", user="S-1-5-21-1")
    assert usecases.record_answer(ctx, no, NOW) is usecases.AnswerStatus.QUEUED
    assert work(ctx, queue) == []  # the next expiry tick re-decides, then releases it
    assert usecases.expire_requests(ctx, NOW + timedelta(minutes=15)).queued == 1
    assert work(ctx, queue) == [usecases.RemovalStatus.REMOVED]

    # u2 never answers: at the deadline the removal is queued (on_no_response: reclaim).
    assert usecases.expire_requests(ctx, NOW + timedelta(days=6)).queued == 0
    adapters.usage_.observed_at = NOW + timedelta(days=7)  # the tick re-reads a fresh export
    assert usecases.expire_requests(ctx, NOW + timedelta(days=7, minutes=1)).queued == 1
    assert work(ctx, queue, NOW + timedelta(days=7)) == [usecases.RemovalStatus.REMOVED]
    assert [label for _, label in directory.removed] == ["u1@c.com", "u2@c.com"]

    # The next run keeps u0 (yes), asks u3 again (never asked), and u1/u2 are gone.
    later = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW + timedelta(days=8))
    kinds = {d.member.user.upn: d.kind.value for d in later.decisions}
    assert kinds["u0@c.com"] == "KEPT" and kinds["u3@c.com"] == "CANDIDATE"
    assert "u1@c.com" not in kinds


def test_a_yes_after_queueing_cancels_the_removal(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce")
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    request = ctx.store.requests(states=[RequestState.QUEUED])[0]
    answer = usecases.AnswerCommand(AnswerValue.YES, NOW, request_id=request.id)
    assert usecases.record_answer(ctx, answer, NOW) is usecases.AnswerStatus.CANCELLED
    statuses = work(ctx, queue)
    assert statuses.count(usecases.RemovalStatus.SKIPPED) == 1
    assert request.user.label not in [label for _, label in directory.removed]


def test_answers_pulled_from_a_channel_that_cannot_push(world) -> None:
    context, _, adapters, queue = world
    ctx = context(mode="enforce", ask_permission=True, campaign={"channel": "nexthink"})
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    adapters.campaign_.pending_answers = [
        ChannelAnswer(AnswerValue.NO, NOW, user="S-1-5-21-0"),
        ChannelAnswer(AnswerValue.YES, NOW, user="u1@c.com"),
        ChannelAnswer(AnswerValue.YES, NOW, user="nobody@c.com"),  # not ours: ignored
    ]
    report = usecases.expire_requests(ctx, NOW + timedelta(hours=1))
    assert report.answers_pulled == 2 and report.errors == []
    assert [m.user.upn for m in queue.drain()] == ["u0@c.com"]


def test_the_kill_switch_makes_removals_wait(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce")
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    ctx.kill_switch = True
    assert set(work(ctx, queue)) == {usecases.RemovalStatus.DEFERRED}
    assert len(queue.messages) == 4 and all(
        delay == usecases.KILL_SWITCH_DELAY for _, delay in queue.messages
    )
    assert directory.removed == []
    ctx.kill_switch = False
    assert set(work(ctx, queue)) == {usecases.RemovalStatus.REMOVED}


def test_throttling_defers_then_the_last_attempt_records_failed(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce", limits={"max_removals_per_run": 1, "max_percent_of_group": 100})
    directory.groups["SF"] = [Member(USERS[0])]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    directory.transient_failures = 2
    assert work(ctx, queue) == [usecases.RemovalStatus.DEFERRED]
    ((message, delay),) = queue.messages
    assert delay == timedelta(seconds=2)  # the Retry-After the directory gave
    queue.messages.clear()
    final = usecases.perform_removal(ctx, usecases.RemovalCommand(message, final_attempt=True), NOW)
    assert final.status is usecases.RemovalStatus.FAILED
    assert [e.outcome for e in ctx.store.ledger()][-1] is LedgerOutcome.FAILED


def test_an_unknown_request_in_a_message_is_refused(world) -> None:
    context, *_ = world
    ctx = context(mode="enforce")
    message = RemovalMessage("nope", "run", "salesforce", "SF", USERS[0], "no-ask")
    with pytest.raises(MessageError, match="unknown request 'nope'"):
        usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW)


def test_unknown_answers_are_refused_without_writing(world) -> None:
    context, *_ = world
    ctx = context(mode="enforce")
    for command in [
        usecases.AnswerCommand(AnswerValue.NO, NOW, request_id="missing"),
        usecases.AnswerCommand(AnswerValue.NO, NOW, policy="other", user="u0@c.com"),
        usecases.AnswerCommand(AnswerValue.NO, NOW, policy="salesforce", user="u0@c.com"),
    ]:
        with pytest.raises(usecases.InputError):
            usecases.record_answer(ctx, command, NOW)
    assert ctx.store.ledger() == []


def test_restore_re_adds_protects_and_nets_the_savings(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce")
    first = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    work(ctx, queue)
    one = usecases.restore(ctx, usecases.RestoreCommand("salesforce", user="U0@C.COM"), NOW)
    assert one.restored == ["u0@c.com"]
    assert any(m.user == USERS[0] for m in directory.groups["SF"])
    # Someone re-added u1 by hand already: restoring the run records it, not an error.
    directory.add("SF", USERS[1])
    bulk = usecases.restore(ctx, usecases.RestoreCommand("salesforce", run_id=first.run.id), NOW)
    assert sorted(bulk.restored) == ["u2@c.com", "u3@c.com"] and bulk.already_member == ["u1@c.com"]
    with pytest.raises(usecases.InputError, match=r"no removal of 'u0@c\.com'"):
        usecases.restore(ctx, usecases.RestoreCommand("salesforce", user="u0@c.com"), NOW)
    (summary,) = usecases.report(ctx)
    assert (summary.removed, summary.restored, summary.seats_freed, summary.monthly_savings) == (
        4,
        4,
        0,
        0.0,
    )
    # A restored user answered yes in effect: the next run keeps them.
    later = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW + timedelta(days=1))
    assert {d.kind.value for d in later.decisions if d.member.user in USERS[:4]} == {"KEPT"}


def test_report_counts_runs_outcomes_and_savings(world) -> None:
    context, _, _, queue = world
    ctx = context(mode="enforce")
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    work(ctx, queue)
    (summary,) = usecases.report(ctx)
    assert (summary.runs_completed, summary.members, summary.candidates, summary.removed) == (
        1,
        10,
        4,
        4,
    )
    # No Entra SKU to verify with: the removals are unverified, never counted as savings.
    assert (summary.monthly_savings, summary.unverified_monthly, summary.currency) == (
        0.0,
        100.0,
        "USD",
    )
    ctx.policies = {"salesforce": make_policy(mode="enforce", licence={"entra_sku_id": "sku"})}
    usecases.expire_requests(ctx, NOW + timedelta(minutes=15))
    (summary,) = usecases.report(ctx)
    assert (summary.seats_freed, summary.monthly_savings, summary.yearly_savings) == (
        4,
        100.0,
        1200.0,
    )
    assert summary.unverified == 0 and summary.potential_monthly == 100.0


def test_users_who_became_active_have_their_requests_cancelled(world) -> None:
    context, _, adapters, _ = world
    ctx = context(
        mode="enforce",
        ask_permission=True,
        campaign={"channel": "webhook", "url": "https://s.example/a"},
    )
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    adapters.usage_.rows = [UsageRow(r.user_key, 300.0) for r in USAGE]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW + timedelta(days=1))
    states = {r.state for r in ctx.store.requests()}
    assert states == {RequestState.CANCELLED}


def test_a_lost_removal_message_is_sent_again_once_it_is_stale(world) -> None:
    context, directory, _, queue = world
    ctx = context(mode="enforce")
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    queue.drain()  # the sends were lost: the requests stay QUEUED with no message
    assert usecases.expire_requests(ctx, NOW + timedelta(minutes=30)).resent == 0
    ctx.kill_switch = True
    assert usecases.expire_requests(ctx, NOW + timedelta(hours=2)).resent == 0
    ctx.kill_switch = False
    assert usecases.expire_requests(ctx, NOW + timedelta(hours=2)).resent == 4
    # A resent message does not know when its decision was taken: handed back, re-decided by
    # the next tick, released again; still one request per removal.
    assert set(work(ctx, queue, NOW + timedelta(hours=2))) == {usecases.RemovalStatus.HANDED_BACK}
    assert usecases.expire_requests(ctx, NOW + timedelta(hours=2, minutes=15)).queued == 4
    assert set(work(ctx, queue, NOW + timedelta(hours=2))) == {usecases.RemovalStatus.REMOVED}
    assert len(directory.removed) == 4 and len(ctx.store.requests()) == 4
