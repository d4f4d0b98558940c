"""What-if curves: the count at today's threshold is the plan's own, the curve never falls as the
threshold rises, and the caps are marked where the removals exceed them (properties over random
groups, usage, answers and policies)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaim.domain.model import Account, Member, PolicyState, UsageIndex, User
from reclaim.domain.policy import UsageSourceKind
from reclaim.domain.selection import DecisionKind, removes, select
from reclaim.domain.what_if import MULTIPLES, threshold_curve, thresholds_to_try
from tests.conftest import NOW, make_policy

DAY = timedelta(days=1)


@st.composite
def groups(draw: st.DrawFn):
    policy = make_policy(
        usage={
            "threshold": draw(st.sampled_from(["1m", "5m", "30m", "2h"])),
            "unknown_users": draw(st.sampled_from(["skip", "reclaim"])),
        },
        exclude={"groups": ["SF-Admins"]},
        disabled_accounts=draw(st.sampled_from(["keep", "reclaim"])),
        limits={
            "max_removals_per_run": draw(st.integers(min_value=0, max_value=30)),
            "max_percent_of_group": draw(st.sampled_from([5, 25, 100])),
        },
    )
    size = draw(st.integers(min_value=0, max_value=30))
    members, amounts, last_yes, open_requests = [], {}, {}, {}
    for n in range(size):
        user = User(object_id=f"id-{n}", upn=f"user{n}@contoso.test")
        joined = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=400)))
        members.append(
            Member(
                user=user,
                added_at=None if joined is None else NOW - joined * DAY,
                groups=frozenset(draw(st.sampled_from([[], [], ["SF-Admins"]]))),
                via_group=draw(st.sampled_from(["", "", "", "", "Nested-Team"])),
                account=draw(
                    st.sampled_from([Account(enabled=True)] * 4 + [Account(enabled=False)])
                ),
            )
        )
        key = user.key(policy.usage.match_on)
        used = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=600, allow_nan=False)))
        if used is not None:
            amounts[key] = used
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            last_yes[user.state_key(policy.usage.match_on)] = NOW - draw(st.integers(0, 200)) * DAY
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            open_requests[user.state_key(policy.usage.match_on)] = f"req-{n}"
    usage = UsageIndex(observed_at=NOW, amounts=amounts, rows_read=max(1, len(amounts)))
    state = PolicyState(last_yes=last_yes, open_requests=open_requests)
    return members, usage, state, policy


@settings(max_examples=300, deadline=None)
@given(groups(), st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=6))
def test_the_curve_is_the_plan_at_todays_threshold_the_rules_at_any_and_never_falls(
    group, extra
) -> None:
    members, usage, state, policy = group
    plan = select(members, usage, state, policy, NOW)
    for curve in (
        threshold_curve(members, usage, state, policy, NOW),
        threshold_curve(members, usage, state, policy, NOW, thresholds=extra),
    ):
        today = curve.at_today
        assert today is not None and today.threshold == policy.usage.threshold
        assert today.candidates == sum(1 for d in plan if d.kind is DecisionKind.CANDIDATE)
        thresholds = [p.threshold for p in curve.points]
        assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
        for lower, higher in itertools.pairwise(curve.points):
            assert lower.candidates <= higher.candidates
            assert lower.removals <= higher.removals
        for point in curve.points:
            expected = [
                name
                for name, limit in (
                    ("max_removals_per_run", curve.max_removals_per_run),
                    ("max_percent_of_group", curve.percent_cap),
                )
                if point.removals > limit
            ]
            assert list(point.capped_by) == expected
        for point in curve.points[:: max(1, len(curve.points) // 4)]:  # against the definition
            trial = replace(policy, usage=replace(policy.usage, threshold=point.threshold))
            decided = select(members, usage, state, trial, NOW)
            decided = [d for d in decided if d.kind is not DecisionKind.NESTED]
            assert point.candidates == sum(1 for d in decided if d.kind is DecisionKind.CANDIDATE)
            assert point.removals == sum(1 for d in decided if removes(d))
        bite = curve.caps_bite_at
        assert bite is None or all(
            not p.capped_by for p in curve.points if p.threshold < bite.threshold
        )


def test_the_caps_are_marked_where_they_bite_and_todays_point_is_marked() -> None:
    policy = make_policy(limits={"max_removals_per_run": 2, "max_percent_of_group": 100})
    members = [Member(User(upn=f"u{n}@contoso.test")) for n in range(4)]
    usage = UsageIndex(
        observed_at=NOW, amounts={f"u{n}@contoso.test": float(n) for n in range(4)}, rows_read=4
    )
    curve = threshold_curve(members, usage, PolicyState(), policy, NOW, thresholds=[1, 2.5, 3.5])
    assert [(p.threshold, p.candidates, p.capped_by) for p in curve.points] == [
        (1, 1, ()),
        (2.5, 3, ("max_removals_per_run",)),
        (3.5, 4, ("max_removals_per_run",)),
        (5.0, 4, ("max_removals_per_run",)),  # today's 5m, added to the thresholds asked for
    ]
    assert curve.caps_bite_at is not None and curve.caps_bite_at.threshold == 2.5
    assert [p.today for p in curve.points] == [False, False, False, True]
    assert curve.to_dict()["caps_bite_at"] == 2.5


def test_the_thresholds_tried_are_todays_multiples_and_the_amounts_near_it() -> None:
    tried = thresholds_to_try(10.0, [0.5, 3.0, 9.0, 10.0, 41.0, 12.5])
    assert {10.0 * m for m in MULTIPLES} <= set(tried)
    assert {3.0, 9.0, 12.5} <= set(tried) and 0.5 not in tried and 41.0 not in tried
    assert tried == sorted(tried)


def test_a_policy_judged_by_recency_has_no_threshold_curve_and_says_why() -> None:
    plain = make_policy()
    recency = replace(plain.usage, source=UsageSourceKind.ENTRA_ACTIVITY, inactive_for=90 * DAY)
    policy = replace(plain, usage=recency)
    curve = threshold_curve([], UsageIndex(NOW, {}, 0), PolicyState(), policy, NOW)
    assert curve.points == () and "inactive_for" in curve.unavailable
    assert "last activity date" in curve.lookback
