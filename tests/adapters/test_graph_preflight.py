"""Pre-flight refusals and failure details that say what Graph said (issue 15, item 3).

Against the Graph fake over HTTPS; the fake answers as Graph does (tests/fakes/graph_licences.py
names the source of each answer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reclaim.adapters.graph.client import GraphReply
from reclaim.adapters.graph.directory import GraphDirectory
from reclaim.adapters.graph.members import EntraDirectory
from reclaim.adapters.graph.signins import EntraSignInsUsage
from reclaim.domain.policy import DirectoryKind, DirectorySpec, Policy, UsageSourceKind, UsageSpec
from reclaim.errors import GroupRefused, PermanentError, PermissionDenied
from reclaim.ports import RemovalOutcome
from tests.adapters.test_graph import Tenant, make_directory, user_of
from tests.fakes.graph import LEAST_PRIVILEGED, FakeGraph, fake_graph
from tests.fakes.graph_licences import MAIL_ENABLED

__all__ = ["fake_graph"]  # the fixture, imported for pytest


@pytest.fixture
def directory(fake_graph: FakeGraph) -> EntraDirectory:
    return EntraDirectory(make_directory(fake_graph)._client)


@pytest.fixture
def tenant(fake_graph: FakeGraph) -> Tenant:
    sku = fake_graph.new_sku()
    group = fake_graph.add_group("Salesforce users", licences=[sku])
    users = fake_graph.add_users(3)
    fake_graph.add_member(group, *users)
    return Tenant(group, sku, users)


# ---- mail-enabled groups ------------------------------------------------------------------------


def test_a_mail_enabled_group_is_refused_before_anything_happens(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("All Sales (distribution)", mail_enabled=True)
    with pytest.raises(GroupRefused, match="mail-enabled") as caught:
        directory.check_group(group)
    assert "Exchange Online" in str(caught.value)
    assert fake_graph.count("DELETE") == fake_graph.count("POST") == 0


def test_the_fake_refuses_member_writes_on_a_mail_enabled_group_as_graph_does(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    """The real 400 (microsoftgraph/microsoft-graph-docs#14827), and reclaim's detail keeps
    Graph's code and message: not a bare 400 Request_BadRequest."""
    group = fake_graph.add_group("Mail-enabled security", mail_enabled=True)
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.add_member(group, user)
    with pytest.raises(PermanentError) as caught:
        directory.remove(group, user_of(fake_graph, user))
    assert f"400 Request_BadRequest: {MAIL_ENABLED}" in str(caught.value)
    assert fake_graph.is_member(group, user)
    with pytest.raises(PermanentError, match="mail-enabled security groups"):
        directory.add(group, user_of(fake_graph, fake_graph.add_user("bo@contoso.test")))


def test_a_microsoft_365_group_is_mail_enabled_and_still_managed(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("Sales team", mail_enabled=True)
    fake_graph.groups[group].group_types = ["Unified"]
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.add_member(group, user)
    assert directory.check_group(group).display_name == "Sales team"
    assert directory.remove(group, user_of(fake_graph, user)).outcome is RemovalOutcome.REMOVED


# ---- Graph's own words in every failure detail --------------------------------------------------


def test_an_unexpected_refusal_keeps_graphs_code_and_message(
    fake_graph: FakeGraph, directory: GraphDirectory
) -> None:
    group = fake_graph.add_group("SF-Licensed", synced=True)
    user = fake_graph.add_user("ada@contoso.test")
    fake_graph.add_member(group, user)
    with pytest.raises(PermanentError) as caught:
        directory.remove(group, user_of(fake_graph, user))
    assert "400 Request_BadRequest: Unable to update the specified properties for on-premises" in (
        str(caught.value)
    )


def test_a_token_in_graphs_message_is_never_repeated() -> None:
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJncmFwaCJ9.c2lnbmF0dXJl"
    reply = GraphReply(
        400, body={"error": {"code": "BadRequest", "message": f"bad header Bearer {token}"}}
    )
    assert reply.describe() == "400 BadRequest: bad header Bearer [token]"
    long = GraphReply(500, body={"error": {"code": "x", "message": "word " * 200}})
    assert len(long.describe()) < 320 and long.describe().endswith("...")
    assert GraphReply(404).describe() == "404"


# ---- permissions named --------------------------------------------------------------------------


@pytest.mark.parametrize("listing", ["members", "transitive_users"])
def test_members_without_user_read_all_fail_closed_naming_it(
    fake_graph: FakeGraph, directory: EntraDirectory, tenant: Tenant, listing: str
) -> None:
    """Graph answers 200 with nameless users (only id), not 403: nothing may be judged."""
    fake_graph.granted = {"GroupMember.ReadWrite.All", "AuditLog.Read.All"}
    with pytest.raises(PermissionDenied, match=r"lacks User\.Read\.All") as caught:
        list(getattr(directory, listing)(tenant.group))
    assert caught.value.permission == "User.Read.All"
    (page,) = [r for r in fake_graph.requests if "/members" in r.path or "/transitive" in r.path]
    assert page.status == 200  # the fake answers like Graph: no 403 to go by


def test_the_group_only_directory_fails_closed_too(fake_graph: FakeGraph, tenant: Tenant) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All"}
    with pytest.raises(PermissionDenied, match=r"User\.Read\.All"):
        list(make_directory(fake_graph).members(tenant.group))


def test_with_every_permission_members_are_listed(
    fake_graph: FakeGraph, directory: EntraDirectory, tenant: Tenant
) -> None:
    fake_graph.granted = set(LEAST_PRIVILEGED)
    assert len(list(directory.members(tenant.group))) == 3


def test_the_sign_in_log_names_auditlog_and_directory_read_all(fake_graph: FakeGraph) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All", "User.Read.All"}
    policy = Policy(
        name="salesforce",
        application="Salesforce",
        directory=DirectorySpec(kind=DirectoryKind.ENTRA, group="g"),
        usage=UsageSpec(
            source=UsageSourceKind.ENTRA_SIGNINS,
            app_id="2a5b6c7d-0000-4000-8000-00000000a99e",
            lookback=timedelta(days=7),
        ),
    )
    usage = EntraSignInsUsage(make_directory(fake_graph)._client)
    with pytest.raises(PermissionDenied) as caught:
        list(usage.usage(policy, datetime.now(UTC)).rows)
    assert "AuditLog.Read.All" in str(caught.value) and "Directory.Read.All" in str(caught.value)
