"""`directory.kind: entra-licence` in policies and selection: the SKU replaces the group, an
inherited licence is never a candidate, and a group plan notes who holds the SKU directly too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reclaim.domain.counterfactual import scenario_from_record, what_would_change
from reclaim.domain.model import Member, PolicyState, UsageIndex, User
from reclaim.domain.policy import DirectoryKind, PolicyError, policies_from_data
from reclaim.domain.selection import DecisionKind, decide

SKU = "c5928f49-12ba-48f7-ada3-0d743a3601d5"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ADA = User(object_id="id-ada", upn="ada@c.test")
LONG_AGO = NOW - timedelta(days=400)


def policy_data(**directory: object) -> dict:
    return {
        "policies": [
            {
                "name": "visio-direct",
                "application": "Visio",
                "directory": {"kind": "entra-licence", **directory},
                "usage": {"source": "csv", "file": "u.csv", "match_on": "upn"},
            }
        ]
    }


def problems_of(data: dict) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        policies_from_data(data, "policies.yaml")
    return caught.value.problems


def test_the_sku_is_the_group_and_the_seat_checked() -> None:
    (policy,) = policies_from_data(policy_data(sku_id=SKU))
    assert policy.directory.kind is DirectoryKind.ENTRA_LICENCE
    assert policy.directory.group == policy.directory.sku_id == policy.seat_sku == SKU


def test_a_missing_or_malformed_sku_and_a_group_are_refused() -> None:
    assert problems_of(policy_data()) == ["policies[0].directory.sku_id: is required"]
    assert problems_of(policy_data(sku_id="VISIOCLIENT")) == [
        "policies[0].directory.sku_id: expected the SKU's skuId (a GUID), got 'VISIOCLIENT'"
    ]
    assert problems_of(policy_data(sku_id=SKU, group="Visio users")) == [
        "policies[0].directory.group: entra-licence reclaims a SKU, not a group: name it in "
        "sku_id only"
    ]


def test_the_licence_section_may_not_name_another_sku() -> None:
    data = policy_data(sku_id=SKU)
    data["policies"][0]["licence"] = {"sku_id": SKU, "entra_sku_id": SKU}
    assert problems_of(data) == [
        "policies[0].licence.sku_id: entra-licence names its SKU in directory.sku_id only",
        "policies[0].licence.entra_sku_id: entra-licence names its SKU in directory.sku_id only",
    ]


def test_sku_id_belongs_to_entra_licence_only() -> None:
    data = policy_data(sku_id=SKU)
    data["policies"][0]["directory"] = {"kind": "entra", "group": "g", "sku_id": SKU}
    assert problems_of(data) == [
        "policies[0].directory.sku_id: kind entra does not read it (remove it)"
    ]


def _decide(member: Member, *, kind: str = "entra-licence"):  # type: ignore[no-untyped-def]
    directory = {"kind": kind, "sku_id": SKU} if kind == "entra-licence" else {"kind": kind}
    data = policy_data()
    data["policies"][0]["directory"] = directory
    if kind == "entra":
        directory["group"] = "g"
        data["policies"][0]["licence"] = {"sku_id": SKU}
    (policy,) = policies_from_data(data)
    usage = UsageIndex(observed_at=NOW, amounts={"ada@c.test": 0.0}, rows_read=1)
    return decide(member, usage, PolicyState(), policy, NOW)


def test_an_inherited_licence_is_never_a_candidate() -> None:
    assert _decide(Member(ADA, added_at=LONG_AGO)).kind is DecisionKind.CANDIDATE
    decision = _decide(Member(ADA, added_at=LONG_AGO, inherited_from="grp-visio"))
    assert decision.kind is DecisionKind.NESTED
    assert decision.reason.startswith("licence inherited from group grp-visio; use a group policy")
    assert decision.evidence.to_dict() == {"rule": "inherited_licence", "via_group": "grp-visio"}


def test_a_group_decision_notes_a_direct_assignment_of_the_same_sku() -> None:
    plain = _decide(Member(ADA, added_at=LONG_AGO), kind="entra")
    assert plain.kind is DecisionKind.CANDIDATE and "seat_note" not in plain.evidence.to_dict()
    doubled = _decide(Member(ADA, added_at=LONG_AGO, direct_skus=frozenset({SKU})), kind="entra")
    assert doubled.kind is DecisionKind.CANDIDATE  # still removed from the group: it is unused
    assert doubled.evidence.seat_note.startswith(f"also holds {SKU} by direct assignment")


def test_explain_says_what_would_make_an_inherited_licence_a_candidate() -> None:
    decision = _decide(Member(ADA, added_at=LONG_AGO, inherited_from="grp-visio"))
    (policy,) = policies_from_data(policy_data(sku_id=SKU))
    rebuilt = scenario_from_record(ADA, "NESTED", decision.evidence.to_dict(), policy, NOW)
    assert rebuilt is not None and rebuilt.member.inherited_from == "grp-visio"
    changes = [c.change for c in what_would_change(rebuilt)]
    assert changes == ["if group grp-visio did not assign her the licence too"]
