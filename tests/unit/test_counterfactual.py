"""What would change a decision: every counterfactual really flips it, and the usage ones are the
smallest that do (properties over random members, usage, answers and policies)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reclaim.domain.counterfactual import Scenario, scenario_from_record, what_would_change
from reclaim.domain.model import Account, Member, PolicyState, UsageIndex, User
from reclaim.domain.selection import DecisionKind
from tests.conftest import NOW, make_policy

DAY = timedelta(days=1)
USER = User(object_id="id-1", upn="ada@contoso.test", sam_account_name="ada")
ACCOUNTS = [  # enabled (mostly), disabled, past its leave date, leaving later
    *[Account(enabled=True)] * 3,
    Account(enabled=False, source="Entra accountEnabled: false"),
    Account(enabled=True, left_at=NOW - 3 * DAY),
    Account(enabled=True, left_at=NOW + 20 * DAY),
]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    policy = make_policy(
        usage={
            "threshold": draw(st.sampled_from(["5m", "30m", "2h"])),
            "unknown_users": draw(st.sampled_from(["skip", "reclaim"])),
        },
        exclude={"groups": draw(st.sampled_from([[], ["SF-Admins"]]))},
    )
    key, state_key = USER.key(policy.usage.match_on), USER.state_key(policy.usage.match_on)
    used = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=300, allow_nan=False)))
    joined_days = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=400)))
    yes_days = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=200)))
    member = Member(
        user=USER,
        added_at=None if joined_days is None else NOW - joined_days * DAY,
        groups=frozenset(draw(st.sampled_from([[], ["SF-Admins"], ["Other"]]))),
        via_group=draw(st.sampled_from(["", "", "", "Nested-Team"])),
        inherited_from=draw(st.sampled_from(["", "", "", "Licensing-Group"])),  # entra-licence
        account=draw(st.sampled_from(ACCOUNTS)),
    )
    state = PolicyState(
        last_yes={} if yes_days is None else {state_key: NOW - yes_days * DAY},
        open_requests={state_key: "req-1"} if draw(st.booleans()) else {},
    )
    usage = UsageIndex(observed_at=NOW, amounts={} if used is None else {key: used}, rows_read=1)
    return Scenario(member, usage, state, policy, NOW)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_every_counterfactual_flips_the_decision(scenario: Scenario) -> None:
    before = scenario.decided().kind
    for counterfactual in what_would_change(scenario):
        assert counterfactual.becomes is not before
        assert counterfactual.scenario.decided().kind is counterfactual.becomes


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_the_usage_counterfactuals_are_the_smallest_that_flip(scenario: Scenario) -> None:
    """A second less use (or more, for an active member) than the counterfactual names would
    leave the decision as it is."""
    before = scenario.decided().kind
    second = 1 / 60
    for counterfactual in what_would_change(scenario):
        changed = counterfactual.scenario
        if changed.usage == scenario.usage or changed.now != scenario.now:
            continue  # not a usage change
        named = changed.usage.amounts[scenario.usage_key]
        nearer = (
            named - second
            if named > scenario.usage.amounts.get(scenario.usage_key, 0)
            else named + second
        )
        if nearer < 0:
            continue
        if counterfactual.becomes is DecisionKind.ACTIVE:
            assert scenario.with_use(nearer).decided().kind is not DecisionKind.ACTIVE
        if before is DecisionKind.ACTIVE:
            assert scenario.with_use(nearer).decided().kind is DecisionKind.ACTIVE


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_a_candidate_learns_what_would_keep_her(scenario: Scenario) -> None:
    if scenario.decided().kind is not DecisionKind.CANDIDATE:
        return
    kinds = {c.becomes for c in what_would_change(scenario)}
    assert DecisionKind.ACTIVE in kinds
    assert DecisionKind.KEPT in kinds
    if scenario.policy.exclude.groups:
        assert DecisionKind.EXCLUDED in kinds


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_an_active_member_learns_what_would_make_her_a_candidate(scenario: Scenario) -> None:
    if scenario.decided().kind is not DecisionKind.ACTIVE:
        return
    after = {c.becomes for c in what_would_change(scenario) if "under" in c.change}
    assert after and after <= {DecisionKind.CANDIDATE, DecisionKind.KEPT, DecisionKind.PENDING}


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_a_stored_decision_is_rebuilt_from_its_evidence(scenario: Scenario) -> None:
    decision = scenario.decided()
    rebuilt = scenario_from_record(
        USER, decision.kind.value, decision.evidence.to_dict(), scenario.policy, NOW
    )
    assert rebuilt is not None
    assert rebuilt.decided().kind is decision.kind


def test_the_example_candidate_reads_as_an_administrator_would() -> None:
    policy = make_policy(exclude={"groups": ["SF-Admins"]})
    key = USER.key(policy.usage.match_on)
    scenario = Scenario(
        Member(USER),
        UsageIndex(observed_at=NOW, amounts={key: 3.0}, rows_read=1),
        PolicyState(),
        policy,
        NOW,
    )
    assert [c.describe() for c in what_would_change(scenario)] == [
        "EXCLUDED as a member of SF-Admins",
        "ACTIVE at 2m more use in 90d",
        'KEPT if she answers "yes, I still need it" (protected for 90d)',
    ]


def test_evidence_that_does_not_reproduce_the_decision_claims_nothing() -> None:
    policy = make_policy()
    assert (
        scenario_from_record(USER, "ACTIVE", {"rule": "threshold", "used": 1.0}, policy, NOW)
        is None
    )
