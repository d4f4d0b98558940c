"""Leavers: a disabled account (or one past its leave date) is DISABLED, ranked after EXCLUDED and
before NEW, counted by the caps, and removed without asking only under disabled_accounts: reclaim."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reclaim import usecases
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain import guardrails
from reclaim.domain.lifecycle import QueueReason, RequestState
from reclaim.domain.model import Account, Member, PolicyState, UsageRow, User
from reclaim.domain.policy import DisabledAccounts, PolicyError
from reclaim.domain.records import LedgerOutcome
from reclaim.domain.selection import DecisionKind, decide, index_usage, removes, select
from tests.conftest import NOW, asking_policy, make_policy
from tests.support.memory import (
    MemoryAdapters,
    MemoryCampaign,
    MemoryDirectory,
    MemoryQueue,
    MemoryUsage,
)

ADA = User(object_id="id-ada", upn="ada@c.com")
OFF = Account(enabled=False, source="accountEnabled: false")


# ---- selection --------------------------------------------------------------------------------


def test_the_policy_key_defaults_to_keep_and_refuses_other_values() -> None:
    assert make_policy().disabled_accounts is DisabledAccounts.KEEP
    assert make_policy(disabled_accounts="reclaim").disabled_accounts is DisabledAccounts.RECLAIM
    with pytest.raises(PolicyError, match="disabled_accounts"):
        make_policy(disabled_accounts="delete")


def test_a_disabled_account_is_disabled_and_says_why() -> None:
    index = index_usage([UsageRow("ada@c.com", 600.0)], {"ada@c.com"}, NOW)
    d = decide(Member(ADA, account=OFF), index, PolicyState(), make_policy(), NOW)
    assert d.kind is DecisionKind.DISABLED and not d.without_asking
    assert d.reason == "account disabled (accountEnabled: false); kept (disabled_accounts: keep)"
    assert d.evidence.to_dict()["disabled"] == "account disabled (accountEnabled: false)"


def test_a_leave_date_counts_once_it_has_passed() -> None:
    index = index_usage([UsageRow("ada@c.com", 0.0)], {"ada@c.com"}, NOW)
    policy = make_policy(disabled_accounts="reclaim")
    gone = Member(ADA, account=Account(enabled=True, left_at=NOW - timedelta(days=3)))
    d = decide(gone, index, PolicyState(), policy, NOW)
    assert d.kind is DecisionKind.DISABLED and d.without_asking
    assert d.reason.startswith("left on 2026-11-25 (leave date)")
    assert d.evidence.to_dict()["left_at"] == (NOW - timedelta(days=3)).isoformat()
    leaving = Member(ADA, account=Account(enabled=True, left_at=NOW + timedelta(days=3)))
    later = decide(leaving, index, PolicyState(), policy, NOW)
    assert later.kind is DecisionKind.CANDIDATE and not later.without_asking
    assert later.evidence.left_at == NOW + timedelta(days=3)  # shown, not acted on yet


def test_an_unreadable_account_state_is_never_disabled_and_says_which_permission() -> None:
    unknown = Account(unread="accountEnabled not returned: the app needs User.Read.All")
    index = index_usage([UsageRow("ada@c.com", 0.0)], {"ada@c.com"}, NOW)
    d = decide(Member(ADA, account=unknown), index, PolicyState(), make_policy(), NOW)
    assert d.kind is DecisionKind.CANDIDATE
    assert "User.Read.All" in d.evidence.to_dict()["account_unread"]


ACCOUNTS = st.one_of(
    st.just(OFF),
    st.builds(
        Account,
        enabled=st.sampled_from([True, None]),
        left_at=st.integers(0, 400).map(lambda d: NOW - timedelta(days=d)),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    account=ACCOUNTS,
    excluded=st.booleans(),
    joined_days_ago=st.one_of(st.none(), st.integers(0, 400)),
    used=st.one_of(st.none(), st.floats(0, 1000)),
    yes_days_ago=st.one_of(st.none(), st.integers(0, 200)),
    open_request=st.booleans(),
    reclaim=st.booleans(),
    unknown_users=st.sampled_from(["skip", "reclaim"]),
)
def test_a_disabled_member_is_disabled_unless_excluded(
    account: Account,
    excluded: bool,
    joined_days_ago: int | None,
    used: float | None,
    yes_days_ago: int | None,
    open_request: bool,
    reclaim: bool,
    unknown_users: str,
) -> None:
    """Whatever the usage, join date, answers or open requests: DISABLED, unless EXCLUDED;
    removed without asking exactly when the policy reclaims and no "yes" protects the user."""
    policy = make_policy(
        disabled_accounts="reclaim" if reclaim else "keep",
        exclude={"users": ["ada@c.com"] if excluded else []},
        usage={"unknown_users": unknown_users},
        keep_after_yes="90d",
    )
    added = None if joined_days_ago is None else NOW - timedelta(days=joined_days_ago)
    member = Member(ADA, added_at=added, account=account)
    rows = [] if used is None else [UsageRow("ada@c.com", used)]
    yes = {} if yes_days_ago is None else {"ada@c.com": NOW - timedelta(days=yes_days_ago)}
    state = PolicyState(last_yes=yes, open_requests={"ada@c.com": "r1"} if open_request else {})
    d = decide(member, index_usage(rows, {"ada@c.com"}, NOW), state, policy, NOW)
    if excluded:
        assert d.kind is DecisionKind.EXCLUDED and not removes(d)
        return
    assert d.kind is DecisionKind.DISABLED
    protected = yes_days_ago is not None and yes_days_ago < 90
    assert d.without_asking is (reclaim and not protected)
    assert removes(d) is d.without_asking
    assert d.evidence.request_id == ("r1" if open_request else "")


def _group(disabled: int, active: int) -> list[Member]:
    off = [Member(User(upn=f"off{i}@c.com"), account=OFF) for i in range(disabled)]
    return off + [Member(User(upn=f"on{i}@c.com")) for i in range(active)]


@settings(max_examples=100, deadline=None)
@given(disabled=st.integers(0, 12), cap=st.integers(0, 12), reclaim=st.booleans())
def test_the_caps_count_the_disabled_accounts_the_policy_removes(
    disabled: int, cap: int, reclaim: bool
) -> None:
    members = _group(disabled, 10)
    policy = make_policy(
        disabled_accounts="reclaim" if reclaim else "keep",
        limits={"max_removals_per_run": cap, "max_percent_of_group": 100},
    )
    rows = [UsageRow(m.user.upn, 600.0) for m in members]  # everyone active: no CANDIDATE
    index = index_usage(rows, {m.user.upn for m in members}, NOW)
    decisions = select(members, index, PolicyState(), policy, NOW)
    assert sum(d.kind is DecisionKind.DISABLED for d in decisions) == disabled
    halt = guardrails.check(decisions, index, policy, NOW, kill_switch=False)
    removing = disabled if reclaim else 0
    assert (halt is not None and halt.check == "max_removals_per_run") is (removing > cap)


# ---- the use cases -----------------------------------------------------------------------------

USERS = [User(object_id=f"id{i}", upn=f"u{i}@c.com") for i in range(6)]
# u0 and u1 left (disabled); u2 barely uses it; the rest are active. u0 even used it a lot.
USAGE = [UsageRow(f"u{i}@c.com", 600.0 if i != 2 else 1.0) for i in range(6)]


@pytest.fixture
def world(tmp_path: Path):
    members = [
        Member(u, account=OFF if i < 2 else Account(enabled=True)) for i, u in enumerate(USERS)
    ]
    directory = MemoryDirectory({"SF": members})
    adapters = MemoryAdapters(directory, MemoryUsage(USAGE, NOW), MemoryCampaign())
    ids = (f"id-{n:03d}" for n in itertools.count())
    queue = MemoryQueue()

    def context(policy) -> usecases.Context:
        return usecases.Context(
            SqliteStore(tmp_path / "s.sqlite3"), queue, adapters, {policy.name: policy},
            new_id=lambda: next(ids),
        )  # fmt: skip

    return context, directory, adapters, queue


def work(ctx: usecases.Context, queue: MemoryQueue, now=NOW) -> list[usecases.RemovalStatus]:
    return [
        usecases.perform_removal(ctx, usecases.RemovalCommand(m), now).status for m in queue.drain()
    ]


def test_reclaim_removes_leavers_without_asking_and_restores_them(world) -> None:
    context, directory, adapters, queue = world
    ctx = context(asking_policy(disabled_accounts="reclaim"))
    policy = ctx.policies["salesforce"]
    outcome = usecases.run_policy(ctx, policy, NOW)
    assert outcome.run.counts["DISABLED"] == 2 and outcome.run.counts["CANDIDATE"] == 1
    assert adapters.campaign_.asked == ["u2@c.com"]  # only the usage candidate is asked
    assert (outcome.run.asked, outcome.run.enqueued) == (1, 2)
    queued = ctx.store.requests(states=[RequestState.QUEUED])
    assert {r.user.upn for r in queued} == {"u0@c.com", "u1@c.com"}
    assert {r.queue_reason for r in queued} == {QueueReason.DISABLED}
    assert all(r.deadline is None for r in queued)
    assert work(ctx, queue) == [usecases.RemovalStatus.REMOVED] * 2
    assert sorted(label for _, label in directory.removed) == ["u0@c.com", "u1@c.com"]
    ledger = ctx.store.ledger(policy="salesforce")
    assert {e.user.upn for e in ledger if e.outcome is LedgerOutcome.REMOVED} == {
        "u0@c.com",
        "u1@c.com",
    }
    assert not any(e.outcome is LedgerOutcome.ASKED and e.user.upn == "u0@c.com" for e in ledger)

    restored = usecases.restore(ctx, usecases.RestoreCommand("salesforce", user="u0@c.com"), NOW)
    assert restored.restored == ["u0@c.com"]
    # Back in the group and still disabled: the restore protects it like a "yes".
    directory.groups["SF"][-1] = Member(USERS[0], account=OFF)
    later = usecases.run_policy(ctx, policy, NOW + timedelta(days=1))
    (u0,) = [d for d in later.decisions if d.member.user == USERS[0]]
    assert u0.kind is DecisionKind.DISABLED and not u0.without_asking
    assert "protected for 90d" in u0.reason and later.run.enqueued == 0


def test_keep_reports_leavers_and_does_nothing(world) -> None:
    context, _, _, queue = world
    ctx = context(make_policy(mode="enforce"))
    outcome = usecases.run_policy(ctx, ctx.policies["salesforce"], NOW)
    kinds = {d.member.user.upn: d.kind for d in outcome.decisions}
    assert kinds["u0@c.com"] is kinds["u1@c.com"] is DecisionKind.DISABLED
    assert outcome.run.enqueued == 1  # u2, by usage; the leavers are only reported
    assert {m.user.upn for m, _ in queue.messages} == {"u2@c.com"}


def test_an_open_ask_of_a_user_who_then_left_is_superseded_by_a_removal(world) -> None:
    """Asked while active, disabled before answering: the ask is cancelled, and the removal is
    released without waiting for the deadline (reclaim), or nothing happens (keep)."""
    context, directory, _, queue = world
    ctx = context(asking_policy(disabled_accounts="reclaim"))
    policy = ctx.policies["salesforce"]
    usecases.run_policy(ctx, policy, NOW)
    (asked,) = ctx.store.requests(states=[RequestState.PENDING])
    assert asked.user.upn == "u2@c.com"
    directory.groups["SF"][2] = Member(USERS[2], account=OFF)
    queue.drain()
    usecases.run_policy(ctx, policy, NOW + timedelta(days=1))
    cancelled = ctx.store.get_request(asked.id)
    assert cancelled is not None and cancelled.state is RequestState.CANCELLED
    assert "disabled" in cancelled.detail
    assert [m.user.upn for m, _ in queue.messages] == ["u2@c.com"]
    queued = [r for r in ctx.store.requests(states=[RequestState.QUEUED]) if r.user == USERS[2]]
    assert len(queued) == 1 and queued[0].queue_reason is QueueReason.DISABLED


def test_a_re_enabled_account_is_re_decided_before_release(world) -> None:
    """A leaver held by the rate waits DUE; enabled again before the tick, it is not removed
    (re-decided: now a usage CANDIDATE, which this policy would first ask)."""
    context, directory, adapters, _ = world
    ctx = context(
        asking_policy(disabled_accounts="reclaim", limits={"rate": {"count": 1, "window": "1d"}})
    )
    policy = ctx.policies["salesforce"]
    outcome = usecases.run_policy(ctx, policy, NOW)
    assert (outcome.run.enqueued, outcome.held) == (1, 1)
    (held,) = ctx.store.requests(states=[RequestState.DUE])
    index = next(i for i, m in enumerate(directory.groups["SF"]) if m.user == held.user)
    directory.groups["SF"][index] = Member(held.user, account=Account(enabled=True))
    adapters.usage_.rows = [replace(r, amount=0.0) for r in USAGE]  # now barely used: CANDIDATE
    adapters.usage_.observed_at = NOW + timedelta(days=2)
    tick = usecases.expire_requests(ctx, NOW + timedelta(days=2))
    assert tick.queued == 0
    after = ctx.store.get_request(held.id)
    assert after is not None and after.state is RequestState.CANCELLED
    assert "no longer removed as disabled: candidate" in after.detail


def test_a_leaver_handed_back_by_the_worker_is_released_again_by_the_tick(world) -> None:
    context, directory, adapters, queue = world
    ctx = context(make_policy(mode="enforce", disabled_accounts="reclaim"))
    policy = ctx.policies["salesforce"]
    usecases.run_policy(ctx, policy, NOW)
    late = NOW + timedelta(days=3)  # older than decision_max_age (1d): handed back
    assert set(work(ctx, queue, late)) == {usecases.RemovalStatus.HANDED_BACK}
    adapters.usage_.observed_at = late
    assert usecases.expire_requests(ctx, late).queued == 3  # u0, u1 (disabled) and u2
    assert set(work(ctx, queue, late)) == {usecases.RemovalStatus.REMOVED}
    assert sorted(label for _, label in directory.removed) == ["u0@c.com", "u1@c.com", "u2@c.com"]


# ---- explain: what would change it -------------------------------------------------------------


def test_explain_says_enabling_the_account_or_its_leave_date_would_change_it() -> None:
    from reclaim.domain.counterfactual import scenario_from_record, what_would_change

    policy = make_policy(disabled_accounts="reclaim")
    index = index_usage([UsageRow("ada@c.com", 1.0)], {"ada@c.com"}, NOW)
    off = decide(Member(ADA, account=OFF), index, PolicyState(), policy, NOW)
    rebuilt = scenario_from_record(ADA, "DISABLED", off.evidence.to_dict(), policy, NOW)
    assert rebuilt is not None
    changes = [c.describe() for c in what_would_change(rebuilt)]
    assert "CANDIDATE if her account were enabled again" in changes

    leaving = Member(ADA, account=Account(enabled=True, left_at=NOW + timedelta(days=20)))
    later = decide(leaving, index, PolicyState(), policy, NOW)
    rebuilt = scenario_from_record(ADA, later.kind.value, later.evidence.to_dict(), policy, NOW)
    assert rebuilt is not None
    changes = [c.describe() for c in what_would_change(rebuilt)]
    assert f"DISABLED when her leave date passes on {NOW + timedelta(days=20):%Y-%m-%d}" in changes
