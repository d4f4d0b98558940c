"""EntraLicenceDirectory (`directory.kind: entra-licence`) against the Graph fake over HTTPS:
who holds a SKU directly, removal and restore through assignLicense, inherited licences refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from reclaim.adapters.graph.assignments import EntraLicenceDirectory
from reclaim.adapters.graph.licences import GraphLicences
from reclaim.errors import GroupRefused, PermanentError, PermissionDenied, SourceError
from reclaim.ports import AddOutcome, RemovalOutcome, SeatQuery, SeatState
from tests.adapters.test_graph import make_directory, user_of
from tests.fakes.graph import FakeGraph, Fault, fake_graph
from tests.fakes.graph_licences import INHERITED, NOT_HELD

__all__ = ["fake_graph"]  # the fixture, imported for pytest

PLAN = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # a service plan disabled on ada's assignment


@dataclass
class Seeded:
    sku: str
    group: str  # a licensing group assigning the same SKU
    ada: str  # direct only, one plan disabled
    bob: str  # direct only
    cy: str  # through the group only
    dee: str  # both directly and through the group
    eve: str  # holds another SKU only


@pytest.fixture
def seeded(fake_graph: FakeGraph) -> Seeded:
    fake_graph.page_size = 2  # paging is followed, with the advanced-query header on each page
    fake_graph.granted.add("LicenseAssignment.ReadWrite.All")
    sku, other = fake_graph.new_sku(), fake_graph.new_sku()
    group = fake_graph.add_group("Visio-Plan2", licences=[sku])
    ids = {
        name: fake_graph.add_user(
            f"{name}@contoso.test",
            direct_licences={"cy": [], "eve": [other]}.get(name, [sku]),
        )
        for name in ("ada", "bob", "cy", "dee", "eve")
    }
    fake_graph.users[ids["ada"]].disabled_plans[sku] = [PLAN]
    fake_graph.add_member(group, ids["cy"], ids["dee"])
    return Seeded(sku, group, **ids)


@pytest.fixture
def directory(fake_graph: FakeGraph) -> EntraLicenceDirectory:
    return EntraLicenceDirectory(make_directory(fake_graph)._client)


def test_holders_are_listed_with_how_they_got_the_licence(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    members = {m.user.upn: m for m in directory.members(seeded.sku)}
    assert sorted(members) == ["ada@contoso.test", "bob@contoso.test", "cy@contoso.test",
                               "dee@contoso.test"]  # fmt: skip
    assert members["ada@contoso.test"].inherited_from == ""
    assert members["cy@contoso.test"].inherited_from == seeded.group
    assert members["dee@contoso.test"].inherited_from == seeded.group  # a removal frees nothing
    assert members["ada@contoso.test"].added_from == "the direct assignment's lastUpdatedDateTime"
    listing = [r for r in fake_graph.requests if r.path == "/users"]
    assert len(listing) == 2  # 4 holders, 2 to a page
    assert all(r.headers.get("consistencylevel") == "eventual" for r in listing)
    assert all(r.query["$count"] == "true" for r in listing)


def test_the_fake_refuses_the_holders_query_without_the_advanced_query_header(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    reply = directory._client.call(
        "GET",
        f"/users?$filter=assignedLicenses/any(x:x/skuId eq {seeded.sku})&$count=true",
        permission="User.Read.All",
        what="list",
    )
    assert (reply.status, reply.error_code) == (400, "Request_UnsupportedQuery")


def test_a_sku_that_is_not_a_guid_is_refused(directory: EntraLicenceDirectory) -> None:
    with pytest.raises(GroupRefused, match="skuId"):
        directory.check_group("VISIOCLIENT")


def test_remove_takes_the_direct_assignment_and_restore_gives_it_back_as_it_was(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    ada = user_of(fake_graph, seeded.ada)
    result = directory.remove(seeded.sku, ada)
    assert result.outcome is RemovalOutcome.REMOVED
    assert result.detail == f"direct assignment of {seeded.sku} removed; disabledPlans: {PLAN}"
    assert fake_graph.users[seeded.ada].direct_licences == []
    (write,) = [r for r in fake_graph.requests if r.method == "POST"]
    assert write.path == f"/users/{seeded.ada}/assignLicense"
    assert write.body == {"addLicenses": [], "removeLicenses": [seeded.sku]}
    assert directory.remove(seeded.sku, ada).outcome is RemovalOutcome.NOT_MEMBER

    fake_graph.clear_log()
    assert directory.add(seeded.sku, ada, removed=result.detail) is AddOutcome.ADDED
    (write,) = [r for r in fake_graph.requests if r.method == "POST"]
    assert write.body == {
        "addLicenses": [{"skuId": seeded.sku, "disabledPlans": [PLAN]}],
        "removeLicenses": [],
    }
    assert fake_graph.users[seeded.ada].disabled_plans[seeded.sku] == [PLAN]
    assert directory.add(seeded.sku, ada, removed=result.detail) is AddOutcome.ALREADY_MEMBER


def test_restore_without_a_recorded_detail_disables_no_plan(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    bob = user_of(fake_graph, seeded.bob)
    directory.remove(seeded.sku, bob)
    assert directory.add(seeded.sku, bob) is AddOutcome.ADDED
    assert fake_graph.users[seeded.bob].disabled_plans[seeded.sku] == []


@pytest.mark.parametrize("name", ["cy", "dee"])
def test_an_inherited_licence_is_refused_pointing_at_the_group_policy(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded, name: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        directory.remove(seeded.sku, user_of(fake_graph, getattr(seeded, name)))
    assert f"inherited from group {seeded.group}; use a group policy" in str(caught.value)
    assert fake_graph.count("POST") == 0  # refused before any write


def test_graphs_refusal_of_an_inherited_licence_is_kept_in_the_detail(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    """Licence processing can move a user into the group between the read and the write: Graph
    then answers its own 400, and the detail keeps it."""
    reply = directory._client.call(
        "POST",
        f"/users/{seeded.cy}/assignLicense",
        json={"addLicenses": [], "removeLicenses": [seeded.sku]},
        permission="LicenseAssignment.ReadWrite.All",
        what="remove",
    )
    assert (reply.status, reply.error_code, reply.error_message) == (
        400,
        "Request_BadRequest",
        INHERITED,
    )
    from reclaim.adapters.graph.assignments import _refused

    error = _refused(reply, user_of(fake_graph, seeded.cy), seeded.sku, "remove")
    assert isinstance(error, PermanentError) and INHERITED in str(error)
    assert "use a group policy" in str(error)


def test_the_fake_answers_assign_licence_as_graph_does(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    def post(body: object) -> tuple[int, str]:
        reply = directory._client.call(
            "POST",
            f"/users/{seeded.eve}/assignLicense",
            json=body,
            permission="LicenseAssignment.ReadWrite.All",
            what="assign",
        )
        return reply.status, reply.error_message

    assert post({"removeLicenses": [seeded.sku]}) == (
        400,
        "One or more parameters of the operation 'assignLicense' are missing from the request "
        "payload. The missing parameters are: addLicenses.",
    )
    assert post({"addLicenses": [], "removeLicenses": [seeded.sku]}) == (400, NOT_HELD)
    assert post({"addLicenses": [], "removeLicenses": []})[0] == 400
    unknown = "00000000-0000-4000-8000-000000000000"
    status, message = post({"addLicenses": [{"skuId": unknown, "disabledPlans": []}],
                            "removeLicenses": []})  # fmt: skip
    assert status == 400 and "does not correspond to a valid company License" in message


def test_a_missing_licence_permission_is_named(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All", "User.Read.All"}
    with pytest.raises(PermissionDenied, match=r"LicenseAssignment\.ReadWrite\.All") as caught:
        directory.remove(seeded.sku, user_of(fake_graph, seeded.ada))
    assert "User.ReadWrite.All" in str(caught.value)
    assert fake_graph.users[seeded.ada].direct_licences == [seeded.sku]


def test_listing_holders_without_user_read_all_names_it(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    fake_graph.granted = {"LicenseAssignment.ReadWrite.All"}
    with pytest.raises(PermissionDenied, match=r"User\.Read\.All"):
        list(directory.members(seeded.sku))


def test_a_failure_part_way_through_the_holders_raises_source_error(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    fake_graph.inject("GET", "/users", *[Fault.unavailable()] * 5, skip=1)
    with pytest.raises(SourceError, match="part-way"):
        list(directory.members(seeded.sku))


def test_a_lost_answer_to_the_removal_is_our_removal(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    """The write went through but its answer was lost: the retry is told the user no longer
    holds it, which the client marks as after its own unanswered write."""
    fake_graph.inject("POST", "/users/*/assignLicense", Fault.connection_reset(after_work=True))
    result = directory.remove(seeded.sku, user_of(fake_graph, seeded.bob))
    assert result.outcome is RemovalOutcome.NOT_MEMBER and result.after_own_write
    assert NOT_HELD in result.detail


def test_the_seat_of_a_direct_removal_is_freed_at_once_or_still_held(
    fake_graph: FakeGraph, directory: EntraLicenceDirectory, seeded: Seeded
) -> None:
    directory.remove(seeded.sku, user_of(fake_graph, seeded.ada))
    fake_graph.add_member(seeded.group, seeded.bob)  # bob gets it from the group meanwhile
    fake_graph.users[seeded.bob].direct_licences.clear()
    seats = GraphLicences(directory._client).seats(
        [
            SeatQuery("a", seeded.ada, seeded.sku, direct=True),
            SeatQuery("b", seeded.bob, seeded.sku, direct=True),
        ]
    )
    assert seats["a"].state is SeatState.FREED
    assert seats["b"].state is SeatState.STILL_LICENSED and seeded.group in seats["b"].detail
