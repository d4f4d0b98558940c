"""GraphLicences against the Graph fake over real HTTPS: a seat is freed only once licence
processing has removed the group's assignment and no direct assignment or other group gives the
same SKU; 20 users to a $batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient, RetryPolicy
from reclaim.adapters.graph.licences import GraphLicences
from reclaim.errors import ConfigurationError
from reclaim.ports import SeatQuery, SeatState
from reclaim.settings import Settings
from tests.adapters.test_graph import FakeClock, Tenant, make_directory, tenant, user_of
from tests.fakes.graph import FakeGraph, fake_graph

__all__ = ["fake_graph", "tenant"]  # fixtures, imported for pytest

# the project's copy of Graph's published v1.0 types (source named in tests/contracts/README.md)
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "graph-v1.0-types.json"


@pytest.fixture
def licences(fake_graph: FakeGraph) -> GraphLicences:
    env = fake_graph.settings_env()
    clock = FakeClock()
    retry = RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)
    return GraphLicences(
        GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env), retry)
    )


def removed(fake_graph: FakeGraph, tenant: Tenant, user_id: str) -> None:
    del fake_graph.groups[tenant.group].members[user_id]


def test_freed_only_when_no_other_source_gives_the_sku(
    fake_graph: FakeGraph, licences: GraphLicences, tenant: Tenant
) -> None:
    only_group, direct_too, other_group_too, never_removed = tenant.users[:4]
    fake_graph.users[direct_too].direct_licences.append(tenant.sku)
    other = fake_graph.add_group("Other licensing group", licences=[tenant.sku])
    fake_graph.add_member(other, other_group_too)
    for user_id in (only_group, direct_too, other_group_too):
        removed(fake_graph, tenant, user_id)
    results = licences.seats([SeatQuery(u, u, tenant.sku, tenant.group) for u in tenant.users[:4]])
    assert results[only_group].state is SeatState.FREED
    assert results[direct_too].state is SeatState.STILL_LICENSED
    assert "directly" in results[direct_too].detail
    assert results[other_group_too].state is SeatState.STILL_LICENSED
    assert other in results[other_group_too].detail
    assert results[never_removed].state is SeatState.PENDING  # still this group's assignment


def test_pending_until_licence_processing_settles(
    fake_graph: FakeGraph, licences: GraphLicences, tenant: Tenant
) -> None:
    fake_graph.licence_lag = True
    user = tenant.users[0]
    make_directory(fake_graph).remove(tenant.group, user_of(fake_graph, user))
    assert not fake_graph.is_member(tenant.group, user)
    query = SeatQuery(user, user, tenant.sku, tenant.group)
    assert licences.seats([query])[user].state is SeatState.PENDING
    fake_graph.process_licences()
    assert licences.seats([query])[user].state is SeatState.FREED


def test_a_user_synced_from_ad_is_found_by_upn_and_waits_for_any_group(
    fake_graph: FakeGraph, licences: GraphLicences, tenant: Tenant
) -> None:
    """Without the synced group's Entra id, an assignment by any group may still be that one."""
    synced, direct = tenant.users[:2]
    fake_graph.users[direct].direct_licences.append(tenant.sku)
    removed(fake_graph, tenant, direct)
    upn = fake_graph.users[synced].upn
    results = licences.seats(
        [SeatQuery("a", upn, tenant.sku), SeatQuery("b", fake_graph.users[direct].upn, tenant.sku)]
    )
    assert results["a"].state is SeatState.PENDING
    assert results["b"].state is SeatState.STILL_LICENSED
    removed(fake_graph, tenant, synced)
    assert licences.seats([SeatQuery("a", upn, tenant.sku)])["a"].state is SeatState.FREED


def test_twenty_users_to_a_batch_and_an_unknown_user_is_unknown(
    fake_graph: FakeGraph, licences: GraphLicences, tenant: Tenant
) -> None:
    users = fake_graph.add_users(40)
    fake_graph.clear_log()
    queries = [SeatQuery(u, u, tenant.sku, tenant.group) for u in users]
    queries.append(SeatQuery("gone", "6f1c0000-0000-0000-0000-00000000dead", tenant.sku))
    results = licences.seats(queries)
    assert results["gone"].state is SeatState.UNKNOWN
    assert all(results[u].state is SeatState.FREED for u in users)  # never had the SKU
    batches = [r for r in fake_graph.requests if r.path == "/$batch"]
    assert [len(b.body["requests"]) for b in batches] == [20, 20, 1]
    items = [r for r in fake_graph.requests if r.in_batch]
    assert {r.query["$select"] for r in items} == {"assignedLicenses,licenseAssignmentStates"}


def test_a_missing_user_read_permission_is_named(
    fake_graph: FakeGraph, licences: GraphLicences, tenant: Tenant
) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All"}
    with pytest.raises(ConfigurationError, match=r"User\.Read\.All"):
        licences.seats([SeatQuery("a", tenant.users[0], tenant.sku, tenant.group)])


def test_the_fake_serves_graphs_published_licence_types(
    fake_graph: FakeGraph, tenant: Tenant
) -> None:
    """licenseAssignmentState and assignedLicense as in Graph's v1.0 metadata (contracts/)."""
    types = json.loads(CONTRACTS.read_text())["types"]
    fake_graph.users[tenant.users[0]].direct_licences.append(tenant.sku)
    data = fake_graph._user_json(fake_graph.users[tenant.users[0]], None)
    assert set(data) - {"@odata.type", "id"} <= set(types["user"]["properties"])
    assert len(data["licenseAssignmentStates"]) == 2  # direct and by the group
    for state in data["licenseAssignmentStates"]:
        assert set(state) == set(types["licenseAssignmentState"]["properties"])
    for licence in data["assignedLicenses"]:
        assert set(licence) == set(types["assignedLicense"]["properties"])
    assert [a["skuId"] for a in data["assignedLicenses"]] == [tenant.sku]  # one seat per SKU
