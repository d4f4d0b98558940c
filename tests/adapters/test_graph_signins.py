"""EntraSignInsUsage (usage source `entra-signins`) against the Graph fake's sign-in log, which
refuses `$select` as Graph does (tests/fakes/graph_usage.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reclaim.adapters.graph.errors import READ_SIGNINS
from reclaim.adapters.graph.pacing import RateLimiter
from reclaim.adapters.graph.signins import EntraSignInsUsage, beta_root
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
from tests.adapters.test_graph import FakeClock, make_directory
from tests.fakes.graph import FakeGraph, Fault, fake_graph

__all__ = ["fake_graph"]  # the fixture, imported for pytest

APP_ID = "2a5b6c7d-0000-4000-8000-00000000a99e"
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def policy(app_id: str = APP_ID, match_on: MatchOn = MatchOn.UPN, days: int = 30) -> Policy:
    return Policy(
        name="salesforce",
        application="Salesforce",
        directory=DirectorySpec(kind=DirectoryKind.ENTRA, group="g"),
        usage=UsageSpec(
            source=UsageSourceKind.ENTRA_SIGNINS,
            app_id=app_id,
            match_on=match_on,
            lookback=timedelta(days=days),
        ),
    )


def usage_source(graph: FakeGraph, limiter: RateLimiter | None = None) -> EntraSignInsUsage:
    directory = make_directory(graph)
    return EntraSignInsUsage(directory._client, limiter or RateLimiter(clock=lambda: 0.0))


@pytest.fixture
def seeded(fake_graph: FakeGraph) -> dict[str, str]:
    """Ada signed in 3 times, Bob once, Cy only before the window, Dee only to another app."""
    fake_graph.signin_page_size = 2
    ids = {
        name: fake_graph.add_user(f"{name}@Contoso.test") for name in ("ada", "bob", "cy", "dee")
    }
    for days_ago in (1, 5, 29):
        fake_graph.add_sign_in(ids["ada"], APP_ID, NOW - timedelta(days=days_ago))
    fake_graph.add_sign_in(ids["bob"], APP_ID, NOW - timedelta(days=2))
    fake_graph.add_sign_in(ids["cy"], APP_ID, NOW - timedelta(days=31))
    fake_graph.add_sign_in(ids["dee"], "ffffffff-0000-4000-8000-000000000000", NOW)
    return ids


def test_one_row_per_sign_in_within_the_window(
    fake_graph: FakeGraph, seeded: dict[str, str]
) -> None:
    export = usage_source(fake_graph).usage(policy(), NOW)
    assert export.observed_at is None  # the log's own clock: its newest sign-in, on the rows
    rows = list(export.rows)
    day = timedelta(days=1)
    assert sorted(rows, key=lambda r: (r.user_key, r.at)) == [
        UsageRow("ada@contoso.test", 1.0, at=NOW - 29 * day),
        UsageRow("ada@contoso.test", 1.0, at=NOW - 5 * day),
        UsageRow("ada@contoso.test", 1.0, at=NOW - day),
        UsageRow("bob@contoso.test", 1.0, at=NOW - 2 * day),
    ]
    first = fake_graph.requests[0]
    assert first.query["$filter"] == (
        f"appId eq '{APP_ID}' and createdDateTime ge 2026-03-01T12:00:00Z"
    )
    assert set(first.query) == {"$filter", "$top"}  # no $select: Graph refuses it there
    assert first.query["$top"] == "1000"
    assert fake_graph.count("GET", "/auditLogs/signIns") == 2  # 4 sign-ins, pages of 2


def test_rows_are_streamed_page_by_page(fake_graph: FakeGraph, seeded: dict[str, str]) -> None:
    export = usage_source(fake_graph).usage(policy(), NOW)
    assert fake_graph.count("GET", "/auditLogs/signIns") == 1  # only the first page so far
    rows = iter(export.rows)
    next(rows), next(rows), next(rows)
    assert fake_graph.count("GET", "/auditLogs/signIns") == 2


def test_object_id_matching_keys_rows_by_user_id(
    fake_graph: FakeGraph, seeded: dict[str, str]
) -> None:
    rows = list(usage_source(fake_graph).usage(policy(match_on=MatchOn.OBJECT_ID), NOW).rows)
    assert {r.user_key for r in rows} == {seeded["ada"], seeded["bob"]}


def test_pages_keep_within_five_requests_per_ten_seconds(fake_graph: FakeGraph) -> None:
    fake_graph.signin_page_size = 1
    user = fake_graph.add_user("ada@contoso.test")
    for minutes in range(12):
        fake_graph.add_sign_in(user, APP_ID, NOW - timedelta(minutes=minutes))
    clock = FakeClock()
    request_times: list[float] = []
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    original = limiter.acquire

    def acquire() -> None:
        original()
        request_times.append(clock.now)

    limiter.acquire = acquire  # type: ignore[method-assign]
    rows = list(usage_source(fake_graph, limiter).usage(policy(), NOW).rows)
    assert len(rows) == 12 and len(request_times) == 12
    for index in range(len(request_times) - 5):
        assert request_times[index + 5] - request_times[index] >= 10.0
    assert clock.now == pytest.approx(20.0)  # 12 pages: windows at 0, 10 and 20 s


def test_rate_limiter_spaces_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(limit=2, window=10.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
    assert clock.sleeps == [10.0, 10.0]


def test_no_premium_licence_is_a_configuration_error(
    fake_graph: FakeGraph, seeded: dict[str, str]
) -> None:
    fake_graph.premium = False
    with pytest.raises(ConfigurationError) as caught:
        usage_source(fake_graph).usage(policy(), NOW)
    assert "P1 or P2" in str(caught.value)
    assert "Authentication_RequestFromNonPremiumTenantOrB2CTenant" in str(caught.value)


def test_missing_audit_log_permission_is_named(
    fake_graph: FakeGraph, seeded: dict[str, str]
) -> None:
    fake_graph.granted = {"GroupMember.ReadWrite.All", "User.Read.All"}
    with pytest.raises(ConfigurationError, match=r"AuditLog\.Read\.All"):
        usage_source(fake_graph).usage(policy(), NOW)


def test_a_failure_part_way_raises_source_error(
    fake_graph: FakeGraph, seeded: dict[str, str]
) -> None:
    fake_graph.inject("GET", "/auditLogs/signIns", *[Fault.unavailable()] * 5, skip=1)
    export = usage_source(fake_graph).usage(policy(), NOW)
    with pytest.raises(SourceError, match="part-way"):
        list(export.rows)


def test_a_throttled_page_is_retried(fake_graph: FakeGraph, seeded: dict[str, str]) -> None:
    fake_graph.inject("GET", "/auditLogs/signIns", Fault.throttled(retry_after=1), skip=1)
    rows = list(usage_source(fake_graph).usage(policy(), NOW).rows)
    assert len(rows) == 4


@pytest.mark.parametrize("app_id", ["", "Salesforce", "x' or appId ne 'y"])
def test_app_id_must_be_a_guid(fake_graph: FakeGraph, app_id: str) -> None:
    with pytest.raises(ConfigurationError, match="app_id"):
        usage_source(fake_graph).usage(policy(app_id=app_id), NOW)
    assert fake_graph.requests == []


def test_matching_on_sid_is_refused(fake_graph: FakeGraph) -> None:
    with pytest.raises(ConfigurationError, match="sid"):
        usage_source(fake_graph).usage(policy(match_on=MatchOn.SID), NOW)


def test_the_reports_limit_of_the_fake_bites_without_a_limiter(fake_graph: FakeGraph) -> None:
    """Why the limiter exists: past Graph's reports limit every further page is 429."""
    fake_graph.reports_limit = (2, 60.0)
    fake_graph.signin_page_size = 1
    user = fake_graph.add_user("ada@contoso.test")
    for minutes in range(4):
        fake_graph.add_sign_in(user, APP_ID, NOW - timedelta(minutes=minutes))
    export = usage_source(fake_graph, RateLimiter(limit=100)).usage(policy(), NOW)
    with pytest.raises(SourceError, match="429"):
        list(export.rows)
    throttled = [r for r in fake_graph.requests if r.status == 429]
    assert throttled and all(r.path == "/auditLogs/signIns" for r in throttled)


def test_the_fake_refuses_select_on_sign_ins_as_graph_does(fake_graph: FakeGraph) -> None:
    """Real Graph: 400 "Query option 'Select' is not allowed" (api-facts.md section 8)."""
    client = make_directory(fake_graph)._client
    reply = client.call(
        "GET", "/auditLogs/signIns?$select=userPrincipalName", permission=READ_SIGNINS, what="t"
    )
    assert (reply.status, reply.error_code) == (400, "BadRequest")
    assert reply.error_message.startswith("Query option 'Select' is not allowed.")
    assert "request-id" in reply.body["error"]["innerError"]
    for option in ("$orderby=createdDateTime", "$count=true", "$skip=2"):
        assert (
            client.call(
                "GET", f"/auditLogs/signIns?{option}", permission=READ_SIGNINS, what="t"
            ).status
            == 400
        )


def non_interactive_seeded(graph: FakeGraph) -> dict[str, str]:
    ids = {name: graph.add_user(f"{name}@contoso.test") for name in ("ada", "bob")}
    graph.add_sign_in(ids["ada"], APP_ID, NOW - timedelta(days=3))
    # bob works in a cached session: only silent token refreshes, never an interactive sign-in
    for days_ago in (1, 2):
        graph.add_sign_in(ids["bob"], APP_ID, NOW - timedelta(days=days_ago), interactive=False)
    return ids


def test_v1_reads_interactive_sign_ins_only(fake_graph: FakeGraph) -> None:
    non_interactive_seeded(fake_graph)
    export = usage_source(fake_graph).usage(policy(), NOW)
    assert [r.user_key for r in export.rows] == ["ada@contoso.test"]
    assert "interactive sign-in" in export.clock
    assert fake_graph.count("GET", "/beta/*") == 0


def test_non_interactive_sign_ins_come_from_the_beta_log_when_asked(
    fake_graph: FakeGraph,
) -> None:
    non_interactive_seeded(fake_graph)
    beta = policy()
    beta = replace(beta, usage=replace(beta.usage, non_interactive_beta=True))
    rows = list(usage_source(fake_graph).usage(beta, NOW).rows)
    assert sorted(r.user_key for r in rows) == [
        "ada@contoso.test", "bob@contoso.test", "bob@contoso.test",
    ]  # fmt: skip
    (request,) = [r for r in fake_graph.requests if r.path == "/beta/auditLogs/signIns"]
    assert request.query["$filter"] == (
        f"appId eq '{APP_ID}' and createdDateTime ge 2026-03-01T12:00:00Z and "
        "signInEventTypes/any(t: t eq 'nonInteractiveUser')"
    )
    assert "$select" not in request.query


def test_the_beta_endpoint_needs_a_v1_base_url_to_sit_beside() -> None:
    assert beta_root("https://graph.microsoft.us/v1.0") == "https://graph.microsoft.us/beta"
    assert beta_root("https://proxy.test/graph/v1.0") == "https://proxy.test/graph/beta"
    with pytest.raises(ConfigurationError, match=r"RECLAIM_GRAPH_BASE_URL must end in /v1\.0"):
        beta_root("https://proxy.test/graph")
