"""Entra usage signals in the domain: the sign-in log's retention and beta option, members seen
over only part of the window, and entra-activity's inactive_for (issue 15, item 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reclaim.domain.model import Member, PolicyState, UsageRow, User
from reclaim.domain.policy import Policy, PolicyError, policies_from_data
from reclaim.domain.selection import DecisionKind, decide, index_usage
from tests.conftest import NOW, make_policy

APP_ID = "2a5b6c7d-0000-4000-8000-00000000a99e"
DAY = timedelta(days=1)
SUCCESSFUL = "lastSuccessfulSignInDateTime"
SIGNINS = {"source": "entra-signins", "app_id": APP_ID, "file": None, "threshold": 1}
ACTIVITY = {"source": "entra-activity", "file": None, "threshold": None, "inactive_for": "90d"}
ENTRA = {"kind": "entra", "group": "g"}


def problems(usage: dict[str, object]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        make_policy(directory=ENTRA, usage=usage)
    return caught.value.problems


def raw_problems(usage: dict[str, object]) -> list[str]:
    """Without make_policy's csv defaults (threshold, file): what an administrator would write."""
    data = {"name": "m365", "application": "M365", "directory": ENTRA, "usage": usage}
    with pytest.raises(PolicyError) as caught:
        policies_from_data({"policies": [data]})
    return caught.value.problems


# ---- validation --------------------------------------------------------------------------------


def test_the_sign_in_log_retention_is_a_policy_key_that_bounds_the_lookback() -> None:
    assert make_policy(directory=ENTRA, usage=SIGNINS).usage.log_retention == 30 * DAY
    free = make_policy(directory=ENTRA, usage={**SIGNINS, "log_retention": "7d"})
    assert free.usage.lookback == 7 * DAY  # the default window follows the retention
    assert problems({**SIGNINS, "log_retention": "7d", "lookback": "10d"}) == [
        "policies[0].usage.lookback: 10d is longer than the entra-signins log keeps (7d, "
        "usage.log_retention): the older days would read as no use. Shorten it, or export the "
        "log to a file and use source csv"
    ]


def test_a_retention_longer_than_entra_keeps_is_refused() -> None:
    assert problems({**SIGNINS, "log_retention": "90d", "lookback": "90d"}) == [
        "policies[0].usage.log_retention: 90d is longer than Entra ID keeps sign-ins (30d with "
        "Entra ID P1/P2, 7d on Free)"
    ]


def test_the_beta_option_is_named_beta_and_read_by_entra_signins_only() -> None:
    beta = make_policy(directory=ENTRA, usage={**SIGNINS, "non_interactive_beta": True})
    assert beta.usage.non_interactive_beta and "beta" in beta.usage.counted
    assert "interactive sign-ins only" in make_policy(directory=ENTRA, usage=SIGNINS).usage.counted
    assert make_policy().usage.counted == ""
    assert sorted(problems({"non_interactive_beta": True, "log_retention": "30d"})) == [
        "policies[0].usage.log_retention: source csv does not read it (remove it)",
        "policies[0].usage.non_interactive_beta: source csv does not read it (remove it)",
    ]


def test_entra_activity_needs_inactive_for_instead_of_a_threshold() -> None:
    policy = make_policy(directory=ENTRA, usage=ACTIVITY)
    assert policy.usage.inactive_for == policy.usage.lookback == 90 * DAY
    assert policy.usage.by_recency and policy.usage.match_on.value == "upn"
    assert raw_problems({"source": "entra-activity"}) == [
        "policies[0].usage.inactive_for: is required"
    ]
    hint = (
        "source entra-activity judges the time since each member's last sign-in or activity: "
        "set usage.inactive_for (e.g. 90d) instead of a usage threshold, unit or lookback, and "
        "remove this key"
    )
    assert raw_problems(
        {"source": "entra-activity", "inactive_for": "90d", "threshold": "5m", "lookback": "30d"}
    ) == [f"policies[0].usage.threshold: {hint}", f"policies[0].usage.lookback: {hint}"]
    assert raw_problems({"source": "entra-activity", "threshold": 1}) == [
        "policies[0].usage.inactive_for: is required",
        f"policies[0].usage.threshold: {hint}",
    ]
    assert problems({**SIGNINS, "inactive_for": "90d"}) == [
        "policies[0].usage.inactive_for: source entra-signins does not read it (remove it)"
    ]


# ---- selection ---------------------------------------------------------------------------------


def judge(policy: Policy, member: Member, rows: list[UsageRow], authoritative: bool):
    usage = index_usage(rows, {member.user.upn}, None, authoritative=authoritative)
    return decide(member, usage, PolicyState(), policy, NOW)


def signins_policy() -> Policy:
    return make_policy(directory=ENTRA, usage=SIGNINS, new_member_grace="7d")


ADA = User(object_id="id-ada", upn="ada@c.com")
OLD = datetime(2020, 1, 6, tzinfo=UTC)


def test_a_member_with_no_sign_in_over_the_whole_window_is_a_candidate_with_evidence() -> None:
    member = Member(ADA, added_at=NOW - 40 * DAY, added_from="Entra audit log", created_at=OLD)
    decision = judge(signins_policy(), member, [], authoritative=True)
    assert decision.kind is DecisionKind.CANDIDATE
    assert decision.reason.startswith("used 0 sign-in(s) in 30d, under the threshold of 1")
    evidence = decision.evidence.to_dict()
    assert (evidence["used"], evidence["window"], evidence["rule"]) == (0.0, "30d", "threshold")
    assert evidence["counted"].startswith("interactive sign-ins only")


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (
            Member(ADA, added_at=NOW - 10 * DAY, added_from="Entra audit log", created_at=OLD),
            "member since 2026-11-18 (Entra audit log), within the 30d window",
        ),
        (Member(ADA, created_at=NOW - 12 * DAY), "account created 2026-11-16, within the 30d"),
    ],
)
def test_a_member_absent_from_the_log_for_part_of_the_window_is_not_zero_use(
    member: Member, why: str
) -> None:
    """Joined (or created) 10 days ago, past the 7-day grace: no sign-in in 10 days of a 30-day
    window says nothing about the other 20 (on main: CANDIDATE)."""
    decision = judge(signins_policy(), member, [], authoritative=True)
    assert decision.kind is DecisionKind.UNKNOWN_USAGE
    assert why in decision.reason and decision.evidence.rule == "partial_window"


def activity_policy() -> Policy:
    return make_policy(directory=ENTRA, usage=ACTIVITY, new_member_grace="7d")


FALLBACK = "lastSignInDateTime, as lastSuccessfulSignInDateTime is null"


@pytest.mark.parametrize(
    ("rows", "created", "kind", "reason"),
    [
        (
            [UsageRow("ada@c.com", None, at=NOW - 2 * DAY, at_from=SUCCESSFUL)],
            OLD,
            DecisionKind.ACTIVE,
            f"last signed in 2026-11-26 ({SUCCESSFUL}), within inactive_for 90d",
        ),
        (
            [UsageRow("ada@c.com", None, at=NOW - 200 * DAY, at_from=SUCCESSFUL)],
            OLD,
            DecisionKind.CANDIDATE,
            f"last signed in 2026-05-12 ({SUCCESSFUL}), longer ago than inactive_for 90d",
        ),
        (
            [UsageRow("ada@c.com", None, at=datetime(2023, 6, 1, tzinfo=UTC), at_from=FALLBACK)],
            OLD,
            DecisionKind.CANDIDATE,
            f"last signed in 2023-06-01 ({FALLBACK}), longer ago than inactive_for 90d",
        ),
        (
            [UsageRow("ada@c.com", None)],
            OLD,
            DecisionKind.CANDIDATE,
            "never signed in (no sign-in activity recorded), and the account is older than "
            "inactive_for 90d",
        ),
        (
            [UsageRow("ada@c.com", None)],
            NOW - 30 * DAY,
            DecisionKind.UNKNOWN_USAGE,
            "account created 2026-10-29, within the 90d window: never signed in",
        ),
        ([], OLD, DecisionKind.UNKNOWN_USAGE, "not observed by the usage source in the last 90d"),
    ],
)
def test_entra_activity_judges_the_last_sign_in_against_inactive_for(
    rows: list[UsageRow], created: datetime, kind: DecisionKind, reason: str
) -> None:
    decision = judge(activity_policy(), Member(ADA, created_at=created), rows, False)
    assert decision.kind is kind
    assert reason in decision.reason


def test_entra_activity_evidence_shows_the_dates_used() -> None:
    row = UsageRow("ada@c.com", None, at=datetime(2023, 6, 1, tzinfo=UTC), at_from=FALLBACK)
    decision = judge(activity_policy(), Member(ADA, created_at=OLD), [row], False)
    evidence = decision.evidence.to_dict()
    assert evidence["rule"] == "inactive_for"
    assert evidence["last_seen"] == "2023-06-01T00:00:00+00:00"
    assert evidence["last_seen_from"].startswith("lastSignInDateTime")
    assert evidence["inactive_for"] == "90d"
    assert evidence["account_created"] == "2020-01-06T00:00:00+00:00"
    assert "used" not in evidence and "threshold" not in evidence
    assert evidence["counted"].startswith("last successful sign-in to any application")


REPORTS = {"source": "m365-reports", "inactive_for": "30d"}


def test_m365_reports_are_judged_by_inactive_for_within_the_longest_report_period() -> None:
    policy = policies_from_data(
        {"policies": [{"name": "t", "application": "Teams", "directory": ENTRA, "usage": REPORTS}]}
    )[0]
    assert policy.usage.by_recency and policy.usage.product.value == "any"
    assert policy.usage.max_age == 4 * DAY  # Microsoft refreshes the reports days late
    assert raw_problems({**REPORTS, "inactive_for": "200d", "match_on": "mail"}) == [
        "policies[0].usage.match_on: the Microsoft 365 usage reports name users by upn only, "
        "not mail",
        "policies[0].usage.inactive_for: 200d is longer than a Microsoft 365 usage report "
        "covers (180d, period D180)",
    ]
    assert raw_problems({**REPORTS, "product": "visio"}) == [
        "policies[0].usage.product: expected one of any | exchange | onedrive | sharepoint | "
        "skype-for-business | yammer | teams, got 'visio'"
    ]
    assert problems({"product": "teams"}) == [
        "policies[0].usage.product: source csv does not read it (remove it)"
    ]


def test_explain_rebuilds_an_entra_activity_decision_and_what_would_change_it() -> None:
    """`python -m reclaim explain` on a decision judged by inactive_for: the stored evidence
    reproduces it, and each change named really flips it."""
    from reclaim.domain.counterfactual import scenario_from_record, what_would_change

    policy = activity_policy()
    row = UsageRow("ada@c.com", None, at=NOW - 200 * DAY, at_from=SUCCESSFUL)
    candidate = judge(policy, Member(ADA, created_at=OLD), [row], False)
    scenario = scenario_from_record(ADA, "CANDIDATE", candidate.evidence.to_dict(), policy, NOW)
    assert scenario is not None
    changes = {c.becomes: c.change for c in what_would_change(scenario)}
    assert changes[DecisionKind.ACTIVE] == "if she signed in or used it now"

    row = UsageRow("ada@c.com", None, at=NOW - 10 * DAY, at_from=SUCCESSFUL)
    active = judge(policy, Member(ADA, created_at=OLD), [row], False)
    scenario = scenario_from_record(ADA, "ACTIVE", active.evidence.to_dict(), policy, NOW)
    assert scenario is not None
    changes = {c.becomes: c.change for c in what_would_change(scenario)}
    assert changes[DecisionKind.CANDIDATE] == "on 2027-02-16, if she is not active again before"
