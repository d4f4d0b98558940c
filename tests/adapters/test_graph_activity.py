"""EntraActivityUsage (usage source `entra-activity`) against the Graph fake's user listing with
signInActivity (tests/fakes/graph_usage.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reclaim.adapters.graph.activity import FALLBACK, SUCCESSFUL, EntraActivityUsage
from reclaim.domain.model import UsageRow
from reclaim.domain.policy import (
    DirectoryKind,
    DirectorySpec,
    MatchOn,
    Policy,
    UsageSourceKind,
    UsageSpec,
)
from reclaim.errors import ConfigurationError, SourceError
from tests.adapters.test_graph import make_directory
from tests.fakes.graph import FakeGraph, Fault, fake_graph
from tests.fakes.graph_usage import SIGNIN_ACTIVITY_PAGE, set_sign_in_activity

__all__ = ["fake_graph"]  # the fixture, imported for pytest

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def policy(match_on: MatchOn = MatchOn.UPN) -> Policy:
    return Policy(
        name="m365",
        application="Microsoft 365 E3",
        directory=DirectorySpec(kind=DirectoryKind.ENTRA, group="g"),
        usage=UsageSpec(
            source=UsageSourceKind.ENTRA_ACTIVITY,
            match_on=match_on,
            lookback=90 * DAY,
            inactive_for=90 * DAY,
        ),
    )


def usage_source(graph: FakeGraph) -> EntraActivityUsage:
    return EntraActivityUsage(make_directory(graph)._client)


@pytest.fixture
def tenant(fake_graph: FakeGraph) -> dict[str, str]:
    """ada signed in lately; bob only before December 2023 (no successful date kept); cy never;
    dee failed to sign in yesterday, last succeeded 200 days ago."""
    ids = {n: fake_graph.add_user(f"{n}@Contoso.test") for n in ("ada", "bob", "cy", "dee")}
    set_sign_in_activity(
        fake_graph, ids["ada"], successful=NOW - 2 * DAY, interactive=NOW - 9 * DAY
    )
    set_sign_in_activity(fake_graph, ids["bob"], interactive=datetime(2023, 6, 1, tzinfo=UTC))
    set_sign_in_activity(fake_graph, ids["dee"], successful=NOW - 200 * DAY, interactive=NOW - DAY)
    return ids


def test_one_row_per_user_dated_by_the_last_successful_sign_in(
    fake_graph: FakeGraph, tenant: dict[str, str]
) -> None:
    export = usage_source(fake_graph).usage(policy(), NOW)
    assert sorted(export.rows, key=lambda r: r.user_key) == [
        UsageRow("ada@contoso.test", None, at=NOW - 2 * DAY, at_from=SUCCESSFUL),
        UsageRow("bob@contoso.test", None, at=datetime(2023, 6, 1, tzinfo=UTC), at_from=FALLBACK),
        UsageRow("cy@contoso.test", None),  # never signed in: observed, no date
        UsageRow("dee@contoso.test", None, at=NOW - 200 * DAY, at_from=SUCCESSFUL),
    ]
    (request,) = fake_graph.requests
    assert request.path == "/users"
    assert request.query == {
        "$select": "id,userPrincipalName,mail,createdDateTime,signInActivity",
        "$top": "999",
    }
    assert "signInActivity" in export.clock


def test_pages_of_signin_activity_are_followed(fake_graph: FakeGraph) -> None:
    """Graph answers at most 120 users a page when signInActivity is selected."""
    count = 2 * SIGNIN_ACTIVITY_PAGE + 5
    fake_graph.add_users(count)
    rows = list(usage_source(fake_graph).usage(policy(MatchOn.OBJECT_ID), NOW).rows)
    assert len(rows) == count and len({r.user_key for r in rows}) == count
    assert fake_graph.count("GET", "/users") == 3


def test_missing_audit_log_permission_is_named(
    fake_graph: FakeGraph, tenant: dict[str, str]
) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All", "User.Read.All"}
    with pytest.raises(ConfigurationError, match=r"AuditLog\.Read\.All"):
        usage_source(fake_graph).usage(policy(), NOW)


def test_no_premium_licence_is_a_configuration_error(
    fake_graph: FakeGraph, tenant: dict[str, str]
) -> None:
    fake_graph.premium = False
    with pytest.raises(ConfigurationError, match="P1 or P2"):
        usage_source(fake_graph).usage(policy(), NOW)


def test_a_failure_part_way_raises_source_error(fake_graph: FakeGraph) -> None:
    fake_graph.add_users(SIGNIN_ACTIVITY_PAGE + 1)
    fake_graph.inject("GET", "/users", *[Fault.unavailable()] * 5, skip=1)
    export = usage_source(fake_graph).usage(policy(), NOW)
    with pytest.raises(SourceError, match="part-way"):
        list(export.rows)


def test_matching_on_sid_is_refused(fake_graph: FakeGraph) -> None:
    with pytest.raises(ConfigurationError, match="sid"):
        usage_source(fake_graph).usage(policy(MatchOn.SID), NOW)
    assert fake_graph.requests == []
