"""EntraDirectory against the Graph fake: join dates, nested groups and transitive members."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reclaim import usecases
from reclaim.adapters.graph.members import EntraDirectory
from reclaim.adapters.sqlite import SqliteStore
from reclaim.domain.model import PolicyState, UsageRow
from reclaim.domain.selection import DecisionKind, decide, index_usage
from reclaim.errors import ConfigurationError, SourceError
from tests.adapters.test_graph import make_directory
from tests.conftest import make_policy
from tests.fakes.graph import FakeGraph, fake_graph
from tests.support.memory import MemoryAdapters, MemoryQueue, MemoryUsage

__all__ = ["fake_graph"]  # the fixture, imported for pytest

NOW = datetime.now(UTC).replace(microsecond=0)
LONG_AGO = NOW - timedelta(days=400)


@pytest.fixture
def entra(fake_graph: FakeGraph) -> EntraDirectory:
    return EntraDirectory(make_directory(fake_graph)._client)


def plan(entra: EntraDirectory, tmp_path: Path, rows: list[UsageRow], **policy: object):
    """A plan (run 1: no snapshot yet) of group SF over the real adapter; usage in memory."""

    class Adapters(MemoryAdapters):
        def directory(self, policy):  # type: ignore[no-untyped-def, override]
            return entra

    chosen = make_policy(
        directory={"kind": "entra", "group": policy.pop("group"), "file": None}, **policy
    )
    ids = (f"id-{n:03d}" for n in itertools.count())
    ctx = usecases.Context(
        SqliteStore(tmp_path / "s.sqlite3"),
        MemoryQueue(),
        Adapters(None, MemoryUsage(rows, NOW)),  # type: ignore[arg-type]
        {chosen.name: chosen},
        new_id=lambda: next(ids),
    )
    outcome = usecases.run_policy(ctx, chosen, NOW, read_only=True)
    assert outcome.halt is None, outcome.halt
    return {d.member.user.upn: d for d in outcome.decisions}


def test_someone_added_yesterday_is_new_on_the_first_run(
    fake_graph: FakeGraph, entra: EntraDirectory, tmp_path: Path
) -> None:
    """The defect: with a 90-day grace, a member added yesterday was a CANDIDATE on run 1."""
    group = fake_graph.add_group("SF")
    old, fresh = fake_graph.add_user("old@c.test"), fake_graph.add_user("fresh@c.test")
    fake_graph.add_member(group, old)  # before the audit log's retention: no evidence
    fake_graph.add_member(group, fresh, at=NOW - timedelta(days=1))
    rows = [UsageRow("old@c.test", 0.0), UsageRow("fresh@c.test", 0.0)]
    decisions = plan(entra, tmp_path, rows, group=group, new_member_grace="90d")
    assert decisions["fresh@c.test"].kind is DecisionKind.NEW
    assert "Entra audit log: Add member to group" in decisions["fresh@c.test"].reason
    assert decisions["fresh@c.test"].evidence.member_since == NOW - timedelta(days=1)
    assert decisions["old@c.test"].kind is DecisionKind.CANDIDATE
    assert decisions["old@c.test"].reason.endswith("; join date unknown (baseline)")
    audit = next(r for r in fake_graph.requests if r.path == "/auditLogs/directoryAudits")
    assert audit.query["$filter"] == (
        f"activityDisplayName eq 'Add member to group' and targetResources/any(t: t/id eq '{group}')"
    )
    assert "$select" not in audit.query


def test_the_newest_add_wins_and_only_adds_to_this_group_count(
    fake_graph: FakeGraph, entra: EntraDirectory
) -> None:
    group, other = fake_graph.add_group("SF"), fake_graph.add_group("Other")
    ada = fake_graph.add_user("ada@c.test")
    fake_graph.add_member(group, ada, at=NOW - timedelta(days=20))
    fake_graph.add_member(group, ada, at=NOW - timedelta(days=3))  # removed and added again
    fake_graph.add_member(other, ada, at=NOW - timedelta(hours=1))
    fake_graph.audit_page_size = 1  # the log is paged too
    (member,) = entra.members(group)
    assert member.added_at == NOW - timedelta(days=3)
    assert member.added_from == "Entra audit log: Add member to group"


def test_a_user_created_within_the_grace_is_new_and_first_run_new_covers_the_rest(
    fake_graph: FakeGraph, entra: EntraDirectory, tmp_path: Path
) -> None:
    group = fake_graph.add_group("SF")
    recent = fake_graph.add_user("recent@c.test", created=NOW - timedelta(days=10))
    unknown = fake_graph.add_user("unknown@c.test", created=None)
    fake_graph.add_member(group, recent, unknown)
    rows = [UsageRow("recent@c.test", 0.0), UsageRow("unknown@c.test", 0.0)]
    decisions = plan(entra, tmp_path / "a", rows, group=group)
    assert decisions["recent@c.test"].kind is DecisionKind.NEW
    assert "user created" in decisions["recent@c.test"].evidence.joined
    assert decisions["unknown@c.test"].kind is DecisionKind.CANDIDATE
    cautious = plan(entra, tmp_path / "b", rows, group=group, first_run="new")
    assert cautious["unknown@c.test"].kind is DecisionKind.NEW
    assert "first_run: new" in cautious["unknown@c.test"].reason


def test_members_of_a_nested_exclusion_group_are_excluded(
    fake_graph: FakeGraph, entra: EntraDirectory, tmp_path: Path
) -> None:
    """exclude.groups: [XAdmins], XAdmins holds group XTier0 = {x0, x1}: both are EXCLUDED."""
    group = fake_graph.add_group("SF")
    admins, tier0 = fake_graph.add_group("XAdmins"), fake_graph.add_group("XTier0")
    x0, x1, y = (fake_graph.add_user(f"{n}@c.test") for n in ("x0", "x1", "y"))
    fake_graph.add_member(group, x0, x1, y)
    fake_graph.add_member(tier0, x0, x1)
    fake_graph.add_member(admins, tier0)
    fake_graph.add_member(tier0, admins)  # a cycle, which Entra allows
    fake_graph.page_size = 1
    rows = [UsageRow(f"{n}@c.test", 0.0) for n in ("x0", "x1", "y")]
    decisions = plan(entra, tmp_path, rows, group=group, exclude={"groups": [admins]})
    assert decisions["x0@c.test"].kind is DecisionKind.EXCLUDED
    assert decisions["x1@c.test"].kind is DecisionKind.EXCLUDED
    assert decisions["y@c.test"].kind is DecisionKind.CANDIDATE


def test_members_through_a_nested_licensing_group_are_listed_not_evaluated(
    fake_graph: FakeGraph, entra: EntraDirectory, tmp_path: Path
) -> None:
    group, team = fake_graph.add_group("SF"), fake_graph.add_group("SF-Team")
    direct, both, inner = (fake_graph.add_user(f"{n}@c.test") for n in ("direct", "both", "inner"))
    fake_graph.add_member(group, direct, both, team)
    fake_graph.add_member(team, both, inner)
    rows = [UsageRow(f"{n}@c.test", 60.0) for n in ("direct", "both", "inner")]
    decisions = plan(entra, tmp_path, rows, group=group)
    assert decisions["both@c.test"].kind is DecisionKind.ACTIVE  # direct as well: evaluated
    nested = decisions["inner@c.test"]
    assert nested.kind is DecisionKind.NESTED
    assert nested.reason == (
        "member through nested group SF-Team: not evaluated, remove them from SF-Team or add "
        "its members to the group directly"
    )
    assert [g.display_name for g in entra.member_groups(group)] == ["SF-Team"]


def test_the_fake_lists_members_of_every_type_like_graph(fake_graph: FakeGraph) -> None:
    group, inner = fake_graph.add_group("SF"), fake_graph.add_group("Inner")
    user = fake_graph.add_user("u@c.test")
    fake_graph.add_member(group, user, inner)
    client = make_directory(fake_graph)._client
    listed = client.call("GET", f"/groups/{group}/members", permission="", what="list")
    assert [v["@odata.type"] for v in listed.body["value"]] == [
        "#microsoft.graph.user",
        "#microsoft.graph.group",
    ]
    cast = client.call(
        "GET", f"/groups/{group}/transitiveMembers/microsoft.graph.group", permission="", what="g"
    )
    assert [v["id"] for v in cast.body["value"]] == [inner]


@pytest.mark.parametrize(
    "options",
    [
        "$select=activityDateTime",
        "$filter=activityDisplayName ne 'Add member to group'",
        "$filter=targetResources/any(t: t/displayName eq 'SF')",
    ],
)
def test_the_fake_refuses_audit_queries_graph_refuses(fake_graph: FakeGraph, options: str) -> None:
    client = make_directory(fake_graph)._client
    reply = client.call(
        "GET", f"/auditLogs/directoryAudits?{options}", permission="", what="read the audit log"
    )
    assert reply.status == 400


def test_without_audit_permission_the_listing_fails_closed(
    fake_graph: FakeGraph, entra: EntraDirectory
) -> None:
    group = fake_graph.add_group("SF")
    fake_graph.add_member(group, fake_graph.add_user("u@c.test"))
    fake_graph.granted = {"GroupMember.ReadWrite.All", "User.Read.All"}
    with pytest.raises(ConfigurationError, match=r"AuditLog\.Read\.All"):
        list(entra.members(group))


def test_a_transitive_listing_that_breaks_part_way_fails_closed(
    fake_graph: FakeGraph, entra: EntraDirectory
) -> None:
    from tests.fakes.graph import Fault

    group = fake_graph.add_group("SF")
    fake_graph.add_member(group, *fake_graph.add_users(3))
    fake_graph.page_size = 1
    fake_graph.inject("GET", "/groups/*/transitiveMembers/*", *[Fault.unavailable()] * 5, skip=1)
    with pytest.raises(SourceError, match="failed part-way"):
        list(entra.transitive_users(group))


def test_selection_reads_the_evidence_it_was_given() -> None:
    """A join date from the directory wins over reclaim's snapshots (unit check of the rule)."""
    from reclaim.domain.model import Member, User

    member = Member(User(upn="a@c.test"), added_at=NOW - timedelta(days=2), added_from="X")
    usage = index_usage([UsageRow("a@c.test", 0.0)], {"a@c.test"}, NOW)
    state = PolicyState(baseline_at=LONG_AGO, first_seen={"a@c.test": LONG_AGO})
    decision = decide(member, usage, state, make_policy(), NOW)
    assert decision.kind is DecisionKind.NEW and decision.evidence.joined == "X"
