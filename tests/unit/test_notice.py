"""policy.notice: the date told before a decided removal, the wait in NOTICE, and its ends."""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.lifecycle import RequestState
from reclaim.domain.model import AnswerValue, Member, UsageRow, User
from reclaim.domain.policy import PolicyError
from reclaim.domain.records import LedgerOutcome
from reclaim.errors import TransientError
from tests.conftest import NOW, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
DEADLINE = NOW + 7 * DAY
USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(3)]


def policy_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "salesforce",
        "application": "Salesforce Lightning",
        "mode": "enforce",
        "directory": {"kind": "ad", "group": "SF"},
        "usage": {"source": "csv", "file": "usage.csv", "match_on": "upn", "threshold": "5m"},
        "limits": {"max_removals_per_run": 100, "max_percent_of_group": 100},
        "ask_permission": True,
        "campaign": {"channel": "webhook", "url": "https://survey.example/ask"},
        "notice": {"period": "3d"},
    }
    return {**data, **overrides}


def giving_notice(**overrides: Any):
    return make_policy(**policy_data(**overrides))


# ---- validation ---------------------------------------------------------------------------------


def test_the_notice_is_read_and_optional() -> None:
    assert giving_notice().notice is not None and giving_notice().notice.period == 3 * DAY
    assert make_policy().notice is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"notice": {"period": "0s"}}, "policies[0].notice.period: 0s gives no time to answer"),
        (
            {"notice": {"period": "30m"}},
            "notice.period: 30m gives no time to answer: use at least 1h",
        ),
        ({"notice": {"period": "-3d"}}, "notice.period: expected a duration like 5m, got '-3d'"),
        ({"notice": {}}, "policies[0].notice.period: is required (a duration like 3d)"),
        ({"notice": "3d"}, "policies[0].notice: expected a mapping like {period: 3d}, got str"),
        ({"notice": {"period": "3d", "by": "mail"}}, "policies[0].notice.by: unknown key"),
        (
            {"campaign": {"channel": "nexthink"}},
            "policies[0].notice: campaign channel nexthink cannot tell a user the removal date: "
            "use email, teams or webhook",
        ),
        (
            {"ask_permission": False, "campaign": {"channel": "none"}},
            "policies[0].notice: a notice is told through the campaign: it needs ask_permission",
        ),
    ],
)
def test_a_notice_that_cannot_work_is_refused_with_its_path(overrides, message) -> None:
    with pytest.raises(PolicyError) as refused:
        giving_notice(**overrides)
    assert message in str(refused.value)


# ---- the expiry tick ----------------------------------------------------------------------------


@pytest.fixture
def asked(tmp_path: Path):
    """Three unused seats, asked at NOW (deadline NOW + 7d), with a 3-day notice."""
    directory = MemoryDirectory({"SF": [Member(u) for u in USERS]})
    usage = MemoryUsage([UsageRow(u.upn, 1.0) for u in USERS], NOW)
    adapters = MemoryAdapters(directory, usage, MemoryCampaign())
    ids = (f"id-{n:03d}" for n in itertools.count())
    policy = giving_notice()
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        adapters,
        {policy.name: policy},
        new_id=lambda: next(ids),
    )
    usecases.run_policy(ctx, policy, NOW)
    assert len(ctx.store.requests(states=[RequestState.PENDING])) == 3
    return ctx, adapters


def request_of(ctx, upn: str):
    (request,) = [r for r in ctx.store.requests() if r.user.upn == upn]
    return request


def answer(ctx, upn: str, value: AnswerValue, at, reason: str = ""):
    command = usecases.AnswerCommand(
        value, at, request_id=request_of(ctx, upn).id, justification=reason
    )
    return usecases.record_answer(ctx, command, at)


def tick(ctx, at) -> usecases.ExpiryReport:
    """An expiry tick at `at`, with usage data read at that moment (fresh)."""
    ctx.adapters.usage_.observed_at = at
    return usecases.expire_requests(ctx, at)


def work(ctx, now) -> list[usecases.RemovalStatus]:
    return [
        usecases.perform_removal(ctx, usecases.RemovalCommand(m), now).status
        for m in ctx.queue.drain()
    ]


def ledger_of(ctx, upn: str) -> list[str]:
    return [e.outcome.value for e in ctx.store.ledger() if e.user.upn == upn]


def test_a_no_waits_out_the_notice_told_to_her_then_is_re_decided_and_removed(asked) -> None:
    ctx, adapters = asked
    said_no = NOW + DAY
    assert answer(ctx, "u0@c.com", AnswerValue.NO, said_no) is usecases.AnswerStatus.QUEUED
    assert request_of(ctx, "u0@c.com").state is RequestState.NOTICE

    told_at = said_no + timedelta(minutes=5)  # the next tick
    report = tick(ctx, told_at)
    assert report.noticed == 1 and report.queued == 0
    remove_after = told_at + 3 * DAY
    assert adapters.campaign_.noticed == [(request_of(ctx, "u0@c.com").id, remove_after)]
    waiting = request_of(ctx, "u0@c.com")
    assert (waiting.state, waiting.not_before) == (RequestState.NOTICE, remove_after)
    (sent,) = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.NOTICE_SENT]
    assert sent.detail == (
        "removal not before 2026-12-02 06:05 UTC (notice 3d), told through webhook"
    )

    # Ticks during the notice send nothing again and release nothing.
    for at in (told_at + HOUR, remove_after - timedelta(seconds=1)):
        report = tick(ctx, at)
        assert (report.noticed, report.queued) == (0, 0)
    assert ctx.queue.messages == [] and len(adapters.campaign_.noticed) == 1

    # Its date: DUE, re-decided on fresh data by the same tick, released, removed.
    assert tick(ctx, remove_after).queued == 1
    assert work(ctx, remove_after) == [usecases.RemovalStatus.REMOVED]
    assert ledger_of(ctx, "u0@c.com") == ["ASKED", "ANSWERED", "NOTICE_SENT", "QUEUED", "REMOVED"]
    assert [r for r in ctx.store.runs() if r.mode == "expiry"][-1].started_at == remove_after


def test_silence_past_the_deadline_is_told_its_date_counted_from_the_delivery(asked) -> None:
    ctx, adapters = asked
    # The tick was down for two days after the deadline: the notice still gives 3 full days.
    late = DEADLINE + 2 * DAY
    assert tick(ctx, late).noticed == 3
    assert {at for _, at in adapters.campaign_.noticed} == {late + 3 * DAY}
    assert all(r.state is RequestState.NOTICE for r in ctx.store.requests())
    assert all(r.queue_reason.value == "no-response" for r in ctx.store.requests())
    assert tick(ctx, late + 3 * DAY - HOUR).queued == 0
    assert tick(ctx, late + 3 * DAY).queued == 3


def test_a_yes_during_the_notice_keeps_the_licence_and_is_in_the_history(asked) -> None:
    ctx, _ = asked
    answer(ctx, "u1@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)
    status = answer(ctx, "u1@c.com", AnswerValue.YES, NOW + 2 * DAY, "month-end reports")
    assert status is usecases.AnswerStatus.KEPT
    assert request_of(ctx, "u1@c.com").state is RequestState.KEPT
    tick(ctx, NOW + 10 * DAY)
    assert ctx.queue.messages == []
    answers = [
        e.detail
        for e in ctx.store.ledger()
        if e.user.upn == "u1@c.com" and e.outcome is LedgerOutcome.ANSWERED
    ]
    assert answers == ["no via webhook", "yes via webhook: month-end reports"]
    # The next run counts the yes like any other: kept for keep_after_yes.
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW + 11 * DAY)
    (kept,) = [d for d in outcome.decisions if d.member.user.upn == "u1@c.com"]
    assert kept.kind.value == "KEPT"


def test_a_second_no_during_the_notice_changes_nothing(asked) -> None:
    ctx, _ = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)
    before = request_of(ctx, "u0@c.com")
    assert answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY) is usecases.AnswerStatus.DUPLICATE
    assert request_of(ctx, "u0@c.com") == before


def test_a_notice_the_channel_could_not_deliver_is_sent_again_and_counts_from_then(asked) -> None:
    ctx, adapters = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    adapters.campaign_.refuse.add("u0@c.com")
    for at in (NOW + DAY, NOW + DAY + HOUR):  # refused twice for the same reason: one entry
        assert tick(ctx, at).noticed == 0
    undelivered = request_of(ctx, "u0@c.com")
    assert (undelivered.state, undelivered.not_before) == (RequestState.NOTICE, None)
    assert "notice not delivered: no device seen" in undelivered.detail
    failed = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.NOTICE_FAILED]
    assert [e.detail for e in failed] == ["no device seen for this user"]
    # Nothing is released while she has not been told, however long past the "no".
    assert tick(ctx, NOW + 4 * DAY).queued == 0

    adapters.campaign_.refuse.clear()
    delivered = NOW + 5 * DAY
    assert tick(ctx, delivered).noticed == 1
    assert request_of(ctx, "u0@c.com").not_before == delivered + 3 * DAY
    assert tick(ctx, delivered + 3 * DAY - HOUR).queued == 0
    assert tick(ctx, delivered + 3 * DAY).queued == 1


def test_a_channel_that_is_down_fails_every_notice_and_the_next_tick_retries(asked) -> None:
    ctx, adapters = asked
    for user in USERS:
        answer(ctx, user.upn, AnswerValue.NO, NOW + DAY)

    def down(*_: object) -> None:
        raise TransientError("campaign webhook answered HTTP 503")

    adapters.campaign_.notify = down  # type: ignore[method-assign]
    assert tick(ctx, NOW + DAY).noticed == 0
    failed = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.NOTICE_FAILED]
    assert len(failed) == 3
    assert all(e.detail == "not delivered: campaign webhook answered HTTP 503" for e in failed)
    del adapters.campaign_.notify
    assert tick(ctx, NOW + 2 * DAY).noticed == 3


def test_a_notice_never_delivered_within_max_wait_is_cancelled_not_removed(asked) -> None:
    ctx, adapters = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    adapters.campaign_.refuse.add("u0@c.com")
    tick(ctx, NOW + DAY)
    tick(ctx, NOW + 8 * DAY + HOUR)  # limits.max_wait is 7d
    cancelled = request_of(ctx, "u0@c.com")
    assert cancelled.state is RequestState.CANCELLED
    assert "notice not delivered since 2026-11-29 06:00 UTC, longer than" in cancelled.detail
    assert "not removed without notice" in cancelled.detail
    assert ctx.queue.messages == []


def test_no_notice_goes_out_while_the_kill_switch_is_on(asked) -> None:
    ctx, adapters = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    ctx.kill_switch = True
    assert tick(ctx, NOW + DAY).noticed == 0
    assert adapters.campaign_.noticed == []
    ctx.kill_switch = False
    assert tick(ctx, NOW + 2 * DAY).noticed == 1
    assert adapters.campaign_.noticed[0][1] == NOW + 5 * DAY


def test_who_became_active_during_the_notice_is_not_removed(asked) -> None:
    ctx, adapters = asked
    answer(ctx, "u2@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)
    adapters.usage_ = MemoryUsage(
        [UsageRow(u.upn, 600.0 if u.upn == "u2@c.com" else 1.0) for u in USERS], NOW + 4 * DAY
    )
    assert tick(ctx, NOW + 4 * DAY).queued == 0
    done = request_of(ctx, "u2@c.com")
    assert done.state is RequestState.CANCELLED
    assert done.detail.startswith("re-decided before release: active")


def test_a_run_cancels_a_notice_of_who_left_the_group(asked) -> None:
    ctx, adapters = asked
    answer(ctx, "u2@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)
    adapters.directory_.groups["SF"] = [Member(u) for u in USERS[:2]]
    usecases.run_policy(ctx, ctx.policies["salesforce"], NOW + 2 * DAY)
    assert request_of(ctx, "u2@c.com").state is RequestState.CANCELLED


def test_the_worker_never_acts_before_the_date_a_notice_told(asked) -> None:
    ctx, _ = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)
    waiting = request_of(ctx, "u0@c.com")
    message = usecases.bookkeeping.removal_message(waiting, NOW + DAY)
    # A message for it from before (a policy given a notice later, a resend): skipped.
    report = usecases.perform_removal(ctx, usecases.RemovalCommand(message), NOW + DAY)
    assert (report.status, report.detail) == (
        usecases.RemovalStatus.SKIPPED,
        "waiting out its notice",
    )
    # Queued on a clock behind the date (another instance): sent back until the date.
    early = replace(waiting, state=RequestState.QUEUED, version=waiting.version + 1)
    assert ctx.store.update_request(early)
    now = waiting.not_before - HOUR
    report = usecases.perform_removal(ctx, usecases.RemovalCommand(message), now)
    assert report.status is usecases.RemovalStatus.DEFERRED
    assert ctx.queue.messages == [(message, HOUR)]
    assert ctx.adapters.directory_.removed == []


def test_a_policy_that_stops_giving_notice_releases_the_untold_not_the_told(asked) -> None:
    ctx, _ = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)  # u0 told: removal not before NOW + 4d
    answer(ctx, "u1@c.com", AnswerValue.NO, NOW + DAY)  # not told yet
    ctx.policies["salesforce"] = replace(ctx.policies["salesforce"], notice=None)
    assert tick(ctx, NOW + 2 * DAY).queued == 1
    assert request_of(ctx, "u1@c.com").state is RequestState.QUEUED
    assert request_of(ctx, "u0@c.com").state is RequestState.NOTICE
    assert tick(ctx, NOW + 4 * DAY).queued == 1


def test_a_channel_that_cannot_tell_a_date_fails_the_notice_and_keeps_her(asked) -> None:
    ctx, adapters = asked

    class AskOnly:  # a channel without notify (validation refuses such a policy)
        ask = adapters.campaign_.ask
        answers = adapters.campaign_.answers
        remind = adapters.campaign_.remind

    adapters.campaign_ = AskOnly()  # type: ignore[assignment]
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    tick(ctx, NOW + DAY)
    (failed,) = [e for e in ctx.store.ledger() if e.outcome is LedgerOutcome.NOTICE_FAILED]
    assert failed.detail == "channel webhook cannot deliver a notice"
    assert request_of(ctx, "u0@c.com").state is RequestState.NOTICE


def test_explain_shows_the_notice_and_its_date(asked, tmp_path: Path) -> None:
    from reclaim.cli import main

    ctx, adapters = asked
    answer(ctx, "u0@c.com", AnswerValue.NO, NOW + DAY)
    adapters.campaign_.refuse.add("u0@c.com")
    tick(ctx, NOW + DAY)
    adapters.campaign_.refuse.clear()
    tick(ctx, NOW + 2 * DAY)
    policies = tmp_path / "policies.yaml"
    policies.write_text(yaml.safe_dump({"policies": [policy_data()]}))
    out, err = io.StringIO(), io.StringIO()
    argv = ["explain", "--policies", str(policies), "--policy", "salesforce", "--user", "u0@c.com"]
    env = {"RECLAIM_STATE_DB": str(tmp_path / "s.sqlite3")}
    assert main(argv, now=NOW + 2 * DAY, env=env, out=out, err=err) == 0, err.getvalue()
    lines = [line for line in out.getvalue().splitlines() if "NOTICE" in line]
    assert len(lines) == 2, out.getvalue()
    assert lines[0].startswith("2026-11-29 06:00  NOTICE_FAILED: no device seen for this user")
    assert lines[1].startswith(
        "2026-11-30 06:00  NOTICE_SENT: removal not before 2026-12-03 06:00 UTC (notice 3d), "
        "told through webhook"
    )
