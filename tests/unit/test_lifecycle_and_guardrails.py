"""The request lifecycle refuses invalid moves; guardrails halt a run as a whole."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reclaim.domain import guardrails
from reclaim.domain.lifecycle import InvalidTransition, Request, RequestState, transition
from reclaim.domain.model import Member, PolicyState, UsageRow, User
from reclaim.domain.selection import index_usage, select
from tests.conftest import NOW, make_policy

S = RequestState


def request(state: RequestState) -> Request:
    return Request("r1", "p", "g", User(upn="a@c.com"), "a@c.com", "run", state, NOW, NOW)


VALID = [
    (S.PENDING, S.KEPT),
    (S.PENDING, S.QUEUED),
    (S.PENDING, S.LAPSED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.DUE),  # answered no, or held by a tick past the deadline
    (S.PENDING, S.AWAITING_APPROVAL),  # escalation: her approver decides
    (S.AWAITING_APPROVAL, S.AWAITING_APPROVAL),  # its approvers looked up and asked (or not)
    (S.AWAITING_APPROVAL, S.KEPT),  # the approver keeps (or her silence does, after a yes)
    (S.AWAITING_APPROVAL, S.DUE),  # the approver releases, or her silence reclaims
    (S.AWAITING_APPROVAL, S.NOTICE),  # the same with policy.notice: she is told the date first
    (S.AWAITING_APPROVAL, S.LAPSED),  # the approver's silence keeps
    (S.AWAITING_APPROVAL, S.CANCELLED),  # became active, left, excluded
    (S.PENDING, S.NOTICE),  # removal decided; policy.notice tells her the date first
    (S.NOTICE, S.NOTICE),  # a delivery of the notice claimed, then recorded
    (S.NOTICE, S.DUE),  # the notice's date has passed: re-decided by the tick
    (S.NOTICE, S.KEPT),  # she answered yes during the notice
    (S.NOTICE, S.CANCELLED),  # active, excluded or gone since; or never told within max_wait
    (S.DUE, S.DUE),  # held again, for another reason
    (S.DUE, S.QUEUED),  # released by a tick that re-decided it
    (S.DUE, S.CANCELLED),
    (S.DUE, S.REMOVED),  # re-decided: a lost write of a dead worker had taken her out
    (S.DUE, S.NOT_MEMBER),  # re-decided: gone, and the dead worker's write was never sent
    (S.QUEUED, S.REMOVING),
    (S.QUEUED, S.DUE),  # handed back by the worker: the decision was too old
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.REMOVED),  # a run found her gone after a write of ours whose answer was lost
    (S.QUEUED, S.NOT_MEMBER),  # a run found her gone after an attempt that sent nothing
    (S.REMOVING, S.REMOVING),  # the write is being sent (perform_removal's marker)
    (S.REMOVING, S.REMOVED),
    (S.REMOVING, S.NOT_MEMBER),
    (S.REMOVING, S.FAILED),
    (S.REMOVING, S.REQUESTED),
    (S.REMOVING, S.QUEUED),
    (S.REMOVING, S.CANCELLED),
    (S.REMOVING, S.DUE),  # a dead worker's claim: re-decided, never taken over
    (S.REQUESTED, S.REMOVED),
    (S.REQUESTED, S.FAILED),
    (S.REMOVED, S.RESTORED),
]


@pytest.mark.parametrize(("start", "end"), VALID)
def test_valid_transitions(start: RequestState, end: RequestState) -> None:
    moved = transition(request(start), end, NOW + timedelta(minutes=1), detail="why")
    assert (moved.state, moved.version, moved.updated_at, moved.detail) == (
        end,
        1,
        NOW + timedelta(minutes=1),
        "why",
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [(s, e) for s in S for e in S if (s, e) not in VALID],
)
def test_every_other_transition_raises(start: RequestState, end: RequestState) -> None:
    with pytest.raises(InvalidTransition, match=f"is {start}; it cannot become {end}"):
        transition(request(start), end, NOW)


def run_guardrails(
    used: dict[str, float],
    members: int,
    observed_ago: timedelta = timedelta(0),
    kill_switch: bool = False,
    rows: list[UsageRow] | None = None,
    **policy: object,
):
    people = [Member(User(upn=f"u{i}@c.com")) for i in range(members)]
    index = index_usage(
        rows if rows is not None else [UsageRow(k, v) for k, v in used.items()],
        {f"u{i}@c.com" for i in range(members)},
        NOW - observed_ago,
    )
    p = make_policy(**policy)
    decisions = select(people, index, PolicyState(), p, NOW)
    return guardrails.check(decisions, index, p, NOW, kill_switch=kill_switch)


def test_a_run_within_every_limit_goes_on() -> None:
    used = {f"u{i}@c.com": (0.0 if i < 5 else 60.0) for i in range(100)}
    assert (
        run_guardrails(used, 100, limits={"max_removals_per_run": 5, "max_percent_of_group": 5})
        is None
    )


def test_too_many_candidates_halts() -> None:
    used = {f"u{i}@c.com": (0.0 if i < 6 else 60.0) for i in range(100)}
    halt = run_guardrails(used, 100, limits={"max_removals_per_run": 5})
    assert halt is not None and halt.check == "max_removals_per_run"
    assert halt.reason.startswith("6 candidates exceed max_removals_per_run 5")


def test_too_large_a_share_of_the_group_halts() -> None:
    used = {f"u{i}@c.com": (0.0 if i < 11 else 60.0) for i in range(100)}
    halt = run_guardrails(used, 100, limits={"max_percent_of_group": 10})
    assert halt is not None and halt.check == "max_percent_of_group"
    assert "11 candidates are 11.0% of the group's 100 members" in halt.reason


def test_stale_usage_halts() -> None:
    halt = run_guardrails({"u0@c.com": 60.0}, 1, observed_ago=timedelta(days=3))
    assert halt is not None and halt.check == "stale_usage"
    assert halt.reason.startswith("usage data is 3d old, older than max_age 2d")


def test_empty_usage_for_a_non_empty_group_halts() -> None:
    halt = run_guardrails({}, 10, rows=[])
    assert halt is not None and halt.check == "empty_usage"


def test_the_kill_switch_halts() -> None:
    halt = run_guardrails({"u0@c.com": 60.0}, 1, kill_switch=True)
    assert halt is not None and halt.check == "kill_switch"
