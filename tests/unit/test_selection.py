"""Selection: one decision per member, the first rule that applies wins, with its evidence."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from reclaim.domain.model import CampaignResponse, Member, PolicyState, UsageRow, User
from reclaim.domain.selection import DecisionKind, decide, index_usage, select
from tests.conftest import NOW, make_policy

ALICE = User(
    object_id="id-alice", upn="Alice@Contoso.com", mail="alice@contoso.com", sid="S-1-5-21-1"
)


def usage(rows: dict[str, float | None], observed_at: datetime = NOW) -> object:
    return index_usage(
        (UsageRow(k.lower(), v) for k, v in rows.items()), {k.lower() for k in rows}, observed_at
    )


def decision(
    member: Member | None = None,
    used: dict | None = None,
    state: PolicyState | None = None,
    **policy: object,
):
    index = usage({"alice@contoso.com": 1.0} if used is None else used)
    return decide(
        member or Member(ALICE), index, state or PolicyState(), make_policy(**policy), NOW
    )


def test_the_seeds_example_is_a_candidate() -> None:
    """Salesforce Lightning used for less than 5 minutes in 90 days, and no yes: a candidate."""
    d = decision(used={"alice@contoso.com": 4.5})
    assert d.kind is DecisionKind.CANDIDATE
    assert d.reason == "used 4m 30s in 90d, under the threshold of 5m; join date unknown (baseline)"
    assert d.evidence.to_dict() == {
        "rule": "threshold",
        "used": 4.5,
        "threshold": 5.0,
        "unit": "minutes",
        "window": "90d",
        "joined": "join date unknown (baseline)",
        "usage_as_of": NOW.isoformat(),
    }


def test_usage_at_the_threshold_is_active() -> None:
    d = decision(used={"alice@contoso.com": 5.0})
    assert d.kind is DecisionKind.ACTIVE
    assert "at least the threshold of 5m" in d.reason


def test_observed_with_no_usage_rows_counts_as_zero_use() -> None:
    """NQL semantics: the user is in the export (active on a device) but used nothing."""
    d = decision(used={"alice@contoso.com": None})
    assert d.kind is DecisionKind.CANDIDATE
    assert d.evidence.used == 0.0


def test_never_observed_is_unknown_usage_not_zero_use() -> None:
    d = decision(used={"bob@contoso.com": 100.0})
    assert d.kind is DecisionKind.UNKNOWN_USAGE
    assert d.evidence.used is None
    assert "not observed by the usage source in the last 90d" in d.reason


def test_never_observed_is_a_candidate_when_the_policy_says_reclaim() -> None:
    d = decision(used={"bob@contoso.com": 100.0}, usage={"unknown_users": "reclaim"})
    assert d.kind is DecisionKind.CANDIDATE
    assert d.evidence.rule == "unknown_users"


def test_a_member_without_the_matching_identifier_is_unknown() -> None:
    d = decision(Member(User(object_id="x", mail="x@contoso.com")), used={"x@contoso.com": 0.0})
    assert d.kind is DecisionKind.UNKNOWN_USAGE
    assert d.reason.startswith("no upn to match usage rows")


def test_usage_rows_add_up_per_user_and_match_case_insensitively() -> None:
    rows = [
        UsageRow("alice@contoso.com", 2.0),
        UsageRow("alice@contoso.com", 2.5),
        UsageRow("zed@x", 9.0),
    ]
    index = index_usage(iter(rows), {"alice@contoso.com"}, NOW)
    assert index.amounts == {"alice@contoso.com": 4.5}
    assert index.rows_read == 3


@pytest.mark.parametrize(
    "entry", ["alice@contoso.com", "ALICE@CONTOSO.COM", "S-1-5-21-1", "id-alice"]
)
def test_excluded_users_by_any_identifier(entry: str) -> None:
    d = decision(used={"alice@contoso.com": 0.0}, exclude={"users": [entry]})
    assert d.kind is DecisionKind.EXCLUDED
    assert d.evidence.rule == "exclude"


def test_excluded_by_group() -> None:
    member = Member(ALICE, groups=frozenset({"VIP"}))
    d = decision(member, used={"alice@contoso.com": 0.0}, exclude={"groups": ["VIP"]})
    assert (d.kind, d.reason) == (DecisionKind.EXCLUDED, "excluded by policy (group VIP)")


def test_new_members_by_directory_date() -> None:
    member = Member(ALICE, added_at=NOW - timedelta(days=10))
    d = decision(member, used={"alice@contoso.com": 0.0})
    assert d.kind is DecisionKind.NEW
    assert d.reason == "member for 10d (the directory's join date), less than the grace of 90d"


def test_first_snapshot_is_the_baseline_and_later_arrivals_are_new() -> None:
    policy = make_policy()
    index = usage({"alice@contoso.com": 0.0})
    baseline = PolicyState()  # no snapshot yet: members count as members since before tracking
    assert decide(Member(ALICE), index, baseline, policy, NOW).kind is DecisionKind.CANDIDATE
    after = PolicyState(baseline_at=NOW - timedelta(days=200))  # tracked, but alice was never seen
    assert decide(Member(ALICE), index, after, policy, NOW).kind is DecisionKind.NEW
    seen_long_ago = PolicyState(
        baseline_at=NOW - timedelta(days=200),
        first_seen={"alice@contoso.com": NOW - timedelta(days=91)},
    )
    assert decide(Member(ALICE), index, seen_long_ago, policy, NOW).kind is DecisionKind.CANDIDATE


def test_a_recent_yes_keeps_and_an_old_one_does_not() -> None:
    recent = PolicyState(last_yes={"alice@contoso.com": NOW - timedelta(days=30)})
    kept = decision(used={"alice@contoso.com": 0.0}, state=recent)
    assert kept.kind is DecisionKind.KEPT
    assert kept.evidence.answered_yes_at == NOW - timedelta(days=30)
    old = PolicyState(last_yes={"alice@contoso.com": NOW - timedelta(days=91)})
    expired = decision(used={"alice@contoso.com": 0.0}, state=old)
    assert expired.kind is DecisionKind.CANDIDATE
    assert "has expired" in expired.reason


def test_a_yes_from_the_usage_export_keeps() -> None:
    index = index_usage(
        [UsageRow("alice@contoso.com", 0.0, CampaignResponse("yes", NOW - timedelta(days=3)))],
        {"alice@contoso.com"},
        NOW,
    )
    assert decide(Member(ALICE), index, PolicyState(), make_policy(), NOW).kind is DecisionKind.KEPT


def test_an_open_request_is_pending() -> None:
    state = PolicyState(open_requests={"alice@contoso.com": "req-1"})
    d = decision(used={"alice@contoso.com": 0.0}, state=state)
    assert (d.kind, d.evidence.request_id) == (DecisionKind.PENDING, "req-1")


def test_precedence_first_rule_wins() -> None:
    """Every rule applies to this member at once; removing the winner reveals the next one."""
    everything = PolicyState(
        baseline_at=NOW - timedelta(days=300),
        first_seen={"alice@contoso.com": NOW - timedelta(days=200)},
        last_yes={"alice@contoso.com": NOW - timedelta(days=1)},
        open_requests={"alice@contoso.com": "req-1"},
    )
    member = Member(ALICE, added_at=NOW - timedelta(days=1), groups=frozenset({"VIP"}))
    order = []
    policy_kwargs: dict = {"exclude": {"groups": ["VIP"]}}
    state, used = everything, {"alice@contoso.com": 0.0}
    for step in range(7):
        d = decide(member, usage(used), state, make_policy(**policy_kwargs), NOW)
        order.append(d.kind)
        if step == 0:
            policy_kwargs = {}
        elif step == 1:
            member = Member(ALICE)
            used = {"bob@contoso.com": 1.0}
        elif step == 2:
            used = {"alice@contoso.com": 10.0}
        elif step == 3:
            used = {"alice@contoso.com": 0.0}
        elif step == 4:
            state = PolicyState(open_requests={"alice@contoso.com": "req-1"})
        elif step == 5:
            state = PolicyState()
    assert order == [
        DecisionKind.EXCLUDED,
        DecisionKind.NEW,
        DecisionKind.UNKNOWN_USAGE,
        DecisionKind.ACTIVE,
        DecisionKind.KEPT,
        DecisionKind.PENDING,
        DecisionKind.CANDIDATE,
    ]


def test_exactly_one_decision_per_member_in_directory_order() -> None:
    members = [Member(User(upn=f"u{i}@c.com")) for i in range(50)]
    index = usage({f"u{i}@c.com": float(i) for i in range(0, 50, 2)})
    decisions = select(members, index, PolicyState(), make_policy(), NOW)
    assert [d.member for d in decisions] == members
    kinds = {d.kind for d in decisions}
    assert kinds == {DecisionKind.ACTIVE, DecisionKind.CANDIDATE, DecisionKind.UNKNOWN_USAGE}


def test_sign_ins_are_counted_not_timed() -> None:
    policy = make_policy(
        usage={
            "source": "entra-signins",
            "app_id": "00000000-0000-0000-0000-00000000a990",
            "threshold": 2,
            "file": None,
            "match_on": "upn",
        }
    )
    index = usage({"alice@contoso.com": 1.0})
    d = decide(Member(ALICE), index, PolicyState(), policy, NOW)
    assert d.kind is DecisionKind.CANDIDATE
    assert d.reason == (
        "used 1 sign-in(s) in 30d, under the threshold of 2 sign-in(s); join date unknown (baseline)"
    )
