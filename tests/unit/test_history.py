"""A run's history replays it: under the run's own policy the replay gives back every recorded
decision, and under another threshold or grace what selection itself would have decided then
(properties over random groups, usage, join dates, answers, open requests and accounts)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaim.adapters.history import HistoryError, pack, unpack
from reclaim.domain.history import replay_run, run_history
from reclaim.domain.model import Account, CampaignResponse, Member, PolicyState, UsageIndex, User
from reclaim.domain.policy import Policy
from reclaim.domain.selection import select
from tests.conftest import NOW, make_policy

DAY = timedelta(days=1)
ACCOUNTS = [
    *[Account(enabled=True)] * 4,
    Account(enabled=False, source="Entra accountEnabled: false"),
    Account(enabled=True, left_at=NOW - 3 * DAY),
    Account(enabled=True, left_at=NOW + 20 * DAY),
]
SIGN_INS = {
    "directory": {"kind": "entra", "group": "0b6f5c2e-0000-0000-0000-000000000001"},
    "usage": {
        "source": "entra-signins",
        "app_id": "00000000-0000-0000-0000-000000000002",
        "lookback": "30d",
        "unit": "sign-ins",
        "threshold": 1,
        "file": None,
    },
}


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    source = draw(st.sampled_from([{}, SIGN_INS]))
    usage = {**source.get("usage", {}), "unknown_users": draw(st.sampled_from(["skip", "reclaim"]))}
    if not source:
        usage["threshold"] = draw(st.sampled_from(["5m", "30m", "2h"]))
    return make_policy(
        **{k: v for k, v in source.items() if k != "usage"},
        usage=usage,
        exclude={"groups": draw(st.sampled_from([[], ["SF-Admins"]]))},
        new_member_grace=draw(st.sampled_from(["0s", "30d", "90d"])),
        keep_after_yes=draw(st.sampled_from(["30d", "90d"])),
        disabled_accounts=draw(st.sampled_from(["keep", "reclaim"])),
        first_run=draw(st.sampled_from(["baseline", "new"])),
    )


def days(draw: st.DrawFn, high: int = 400) -> timedelta | None:
    n = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=high)))
    return (
        None if n is None else n * DAY + draw(st.sampled_from([timedelta(0), timedelta(hours=7)]))
    )


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[Member], UsageIndex, PolicyState, Policy]:
    policy = draw(policies())
    match_on = policy.usage.match_on
    size = draw(st.integers(min_value=1, max_value=12))
    members, amounts, responses, first_seen, last_yes, open_requests = [], {}, {}, {}, {}, {}
    baseline = days(draw, 200)
    for n in range(size):
        user = User(
            object_id=f"id-{n}",
            upn="" if draw(st.integers(0, 9)) == 0 else f"user{n}@contoso.test",
            sam_account_name=f"user{n}",
        )
        added, created = days(draw), days(draw)
        members.append(
            Member(
                user=user,
                added_at=None if added is None else NOW - added,
                created_at=None if created is None else NOW - created,
                groups=frozenset(draw(st.sampled_from([[], ["SF-Admins"], ["Other"]]))),
                via_group=draw(st.sampled_from(["", "", "", "", "Nested-Team"])),
                account=draw(st.sampled_from(ACCOUNTS)),
            )
        )
        key, state_key = user.key(match_on), user.state_key(match_on)
        used = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=300, allow_nan=False)))
        if key and used is not None:
            amounts[key] = used
        if key and draw(st.integers(0, 5)) == 0:
            at = days(draw, 120)
            responses[key] = CampaignResponse(
                draw(st.sampled_from(["yes", "pending"])), None if at is None else NOW - at
            )
        seen = days(draw, 300)
        if seen is not None:
            first_seen[state_key] = NOW - seen
        yes = days(draw, 200)
        if yes is not None:
            last_yes[state_key] = NOW - yes
        if draw(st.integers(0, 4)) == 0:
            open_requests[state_key] = f"req-{n}"
    usage = UsageIndex(
        observed_at=NOW - timedelta(hours=3),
        amounts=amounts,
        rows_read=len(amounts) + 1,
        responses=responses,
        matched=len(amounts),
        authoritative=policy.usage.authoritative,
    )
    state = PolicyState(
        baseline_at=None if baseline is None else NOW - baseline,
        first_seen=first_seen,
        last_yes=last_yes,
        open_requests=open_requests,
    )
    return members, usage, state, policy


def outcomes(decisions: list) -> list[tuple[str, str, bool]]:
    return [(d.state_key, d.kind.value, d.without_asking) for d in decisions]


@settings(max_examples=100, deadline=None)
@given(groups())
def test_replaying_the_runs_own_policy_gives_back_its_decisions(group: tuple) -> None:
    members, usage, state, policy = group
    decisions = select(members, usage, state, policy, NOW)
    history = unpack(pack(run_history("run-1", policy, NOW, members, usage, state, decisions)))
    assert outcomes(replay_run(history, policy)) == outcomes(decisions)


@settings(max_examples=100, deadline=None)
@given(groups(), st.sampled_from([0.5, 1, 3, 10, 45, 240]), st.sampled_from([0, 14, 60, 180]))
def test_another_threshold_or_grace_replays_as_selection_would_have_decided(
    group: tuple, threshold: float, grace: int
) -> None:
    members, usage, state, policy = group
    decisions = select(members, usage, state, policy, NOW)
    history = unpack(pack(run_history("run-1", policy, NOW, members, usage, state, decisions)))
    proposal = replace(
        policy,
        usage=replace(policy.usage, threshold=threshold),
        new_member_grace=grace * DAY,
    )
    expected = select(members, usage, state, proposal, NOW)
    assert outcomes(replay_run(history, proposal)) == outcomes(expected)


def test_a_history_survives_packing_into_pieces_and_refuses_damage() -> None:
    policy = make_policy()
    names = [f"{hashlib.sha1(str(n).encode()).hexdigest()[:12]}@contoso.test" for n in range(5000)]
    members = [Member(User(upn=name)) for name in names]
    usage = UsageIndex(NOW, {name: n * 1.37 for n, name in enumerate(names)}, 1)
    decisions = select(members, usage, PolicyState(), policy, NOW)
    history = run_history("run-1", policy, NOW, members, usage, PolicyState(), decisions)
    pieces = pack(history)
    assert len(pieces) > 1 and all(len(p) <= 60_000 for p in pieces)
    assert unpack(pieces) == history
    try:
        unpack(pieces[:-1])
    except HistoryError as error:
        assert "unreadable run history" in str(error)
    else:
        raise AssertionError("a cut history was read")
