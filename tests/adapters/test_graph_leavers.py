"""Leavers in Entra ID: accountEnabled and employeeLeaveDateTime, read from the member listing of
the Graph fake, each property only when selected and, like Graph, null when the app may not read
it (User.Read.All; User-LifeCycleInfo.Read.All)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reclaim.adapters.graph.members import MEMBER_FIELDS, EntraDirectory, account_from
from reclaim.domain.model import UsageRow
from reclaim.domain.selection import DecisionKind
from tests.adapters.test_graph import make_directory
from tests.adapters.test_graph_members import entra, plan
from tests.fakes.graph import LEAST_PRIVILEGED, FakeGraph, fake_graph

__all__ = ["entra", "fake_graph"]  # fixtures, imported for pytest

NOW = datetime.now(UTC).replace(microsecond=0)
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "graph-v1.0-types.json"
LIFECYCLE = "User-LifeCycleInfo.Read.All"


def _group(fake_graph: FakeGraph) -> tuple[str, dict[str, str]]:
    group = fake_graph.add_group("SF")
    ids = {}
    for name in ("on", "off", "gone", "going"):
        ids[name] = fake_graph.add_user(f"{name}@contoso.test")
        fake_graph.add_member(group, ids[name], at=NOW - timedelta(days=200))
    fake_graph.users[ids["off"]].enabled = False
    fake_graph.users[ids["gone"]].leaves = NOW - timedelta(days=2)
    fake_graph.users[ids["going"]].leaves = NOW + timedelta(days=20)
    return group, ids


def test_the_listing_selects_both_properties_and_they_exist_on_user(
    fake_graph: FakeGraph, entra: EntraDirectory
) -> None:
    properties = json.loads(CONTRACTS.read_text())["types"]["user"]["properties"]
    assert properties["accountEnabled"] == "Edm.Boolean"
    assert properties["employeeLeaveDateTime"] == "Edm.DateTimeOffset"
    for name in MEMBER_FIELDS.split(",")[1:]:  # id is inherited (entity)
        assert name in properties, name
    group, _ = _group(fake_graph)
    list(entra.members(group))
    (listing,) = [r for r in fake_graph.requests if r.path.endswith("/microsoft.graph.user")]
    assert {"accountEnabled", "employeeLeaveDateTime"} <= set(listing.query["$select"].split(","))


def test_the_fake_returns_the_properties_only_when_selected(fake_graph: FakeGraph) -> None:
    group, _ = _group(fake_graph)
    fake_graph.granted = set(LEAST_PRIVILEGED) | {LIFECYCLE}
    client = make_directory(fake_graph)._client
    path = f"/groups/{group}/members/microsoft.graph.user?$select="
    plain = client.call("GET", path + "id,displayName", permission="", what="list").body
    assert all(set(u) == {"@odata.type", "id", "displayName"} for u in plain["value"])
    chosen = client.call(
        "GET", path + "id,accountEnabled,employeeLeaveDateTime", permission="", what="list"
    ).body
    assert {u["accountEnabled"] for u in chosen["value"]} == {True, False}
    assert sum(u["employeeLeaveDateTime"] is not None for u in chosen["value"]) == 2


def test_disabled_and_left_members_are_disabled_in_the_plan(
    fake_graph: FakeGraph, entra: EntraDirectory, tmp_path: Path
) -> None:
    group, _ = _group(fake_graph)
    fake_graph.granted = set(LEAST_PRIVILEGED) | {LIFECYCLE}
    rows = [UsageRow(f"{n}@contoso.test", 600.0) for n in ("on", "off", "gone", "going")]
    decisions = plan(entra, tmp_path, rows, group=group, disabled_accounts="reclaim")
    assert decisions["off@contoso.test"].kind is DecisionKind.DISABLED
    assert "Entra accountEnabled: false" in decisions["off@contoso.test"].reason
    gone = decisions["gone@contoso.test"]
    assert gone.kind is DecisionKind.DISABLED and gone.without_asking
    assert (
        f"left on {NOW - timedelta(days=2):%Y-%m-%d} (Entra employeeLeaveDateTime)" in gone.reason
    )
    assert decisions["going@contoso.test"].kind is DecisionKind.ACTIVE  # leaves later
    assert decisions["on@contoso.test"].kind is DecisionKind.ACTIVE


def test_without_the_lifecycle_permission_leave_dates_are_null_as_in_graph(
    fake_graph: FakeGraph, entra: EntraDirectory, tmp_path: Path
) -> None:
    """Graph answers null, not 403: the leaver by date is missed (README names the permission);
    accountEnabled still reads, so the disabled account is still found."""
    group, _ = _group(fake_graph)
    rows = [UsageRow(f"{n}@contoso.test", 600.0) for n in ("on", "off", "gone", "going")]
    decisions = plan(entra, tmp_path, rows, group=group)
    assert decisions["gone@contoso.test"].kind is DecisionKind.ACTIVE
    assert decisions["gone@contoso.test"].evidence.left_at is None
    assert decisions["off@contoso.test"].kind is DecisionKind.DISABLED


def test_a_null_account_enabled_is_unknown_not_enabled() -> None:
    """Without User.Read.All the whole listing fails closed (paths.listed_user); a user listed with
    a name but a null accountEnabled still never counts as enabled, nor as disabled."""
    account = account_from({"id": "x", "userPrincipalName": "x@c.test", "accountEnabled": None})
    assert account.enabled is None and account.disabled(NOW) == ""
    assert "User.Read.All" in account.unread
    assert account_from({"accountEnabled": False}).disabled(NOW) == (
        "account disabled (Entra accountEnabled: false)"
    )


def test_holders_of_a_directly_assigned_sku_carry_their_account_state(
    fake_graph: FakeGraph,
) -> None:
    """entra-licence lists the SKU's holders with the same two properties: a leaver holding a
    direct licence is DISABLED there too."""
    from reclaim.adapters.graph.assignments import EntraLicenceDirectory

    sku = fake_graph.new_sku()
    off = fake_graph.add_user("off@contoso.test", direct_licences=[sku])
    fake_graph.add_user("on@contoso.test", direct_licences=[sku])
    fake_graph.users[off].enabled = False
    directory = EntraLicenceDirectory(make_directory(fake_graph)._client)
    accounts = {m.user.upn: m.account for m in directory.members(sku)}
    assert accounts["off@contoso.test"].disabled(NOW).startswith("account disabled")
    assert accounts["on@contoso.test"].enabled is True
