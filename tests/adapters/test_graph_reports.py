"""M365ReportUsage (usage source `m365-reports`) against the Graph fake's active user detail
report, which follows Microsoft's documentation page (tests/fakes/graph_reports.py, DOCS_PAGE):
302 to a preauthenticated download URL on another host, CSV with the page's columns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reclaim.adapters.graph.reports import CONCEALED_HINT, M365ReportUsage, period_for
from reclaim.domain.model import UsageRow
from reclaim.domain.policy import (
    DirectoryKind,
    DirectorySpec,
    M365Product,
    MatchOn,
    Policy,
    UsageSourceKind,
    UsageSpec,
)
from reclaim.errors import ConfigurationError, SourceError
from tests.adapters.test_graph import make_directory
from tests.fakes.graph import FakeGraph, fake_graph
from tests.fakes.graph_reports import COLUMNS, DOCS_PAGE, set_report_activity

__all__ = ["fake_graph"]  # the fixture, imported for pytest

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def policy(product: M365Product = M365Product.ANY, days: int = 30) -> Policy:
    return Policy(
        name="e3",
        application="Microsoft 365 E3",
        directory=DirectorySpec(kind=DirectoryKind.ENTRA, group="g"),
        usage=UsageSpec(
            source=UsageSourceKind.M365_REPORTS,
            match_on=MatchOn.UPN,
            lookback=days * DAY,
            inactive_for=days * DAY,
            product=product,
        ),
    )


@pytest.fixture
def tenant(fake_graph: FakeGraph) -> dict[str, str]:
    fake_graph.granted |= {"Reports.Read.All"}
    fake_graph.report_refreshed = date(2026, 3, 29)
    ids = {n: fake_graph.add_user(f"{n}@Contoso.test") for n in ("ada", "bob", "cy")}
    set_report_activity(fake_graph, ids["ada"], Teams=date(2026, 3, 27), Exchange=date(2026, 1, 2))
    set_report_activity(fake_graph, ids["bob"], Exchange=date(2026, 3, 28))
    return ids  # cy: no activity on record


def usage_source(graph: FakeGraph) -> M365ReportUsage:
    return M365ReportUsage(make_directory(graph)._client)


def test_the_fake_report_has_the_columns_of_microsofts_documentation_page() -> None:
    """The columns as listed on DOCS_PAGE, in that order (the page is the only source)."""
    assert DOCS_PAGE.endswith("/graph/api/reportroot-getoffice365activeuserdetail")
    assert COLUMNS[:5] == (
        "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date",
    )  # fmt: skip
    assert "Teams Last Activity Date" in COLUMNS and COLUMNS[-1] == "Assigned Products"
    assert len(COLUMNS) == 24


def test_rows_carry_the_last_activity_of_the_product(
    fake_graph: FakeGraph, tenant: dict[str, str]
) -> None:
    export = usage_source(fake_graph).usage(policy(M365Product.TEAMS), NOW)
    assert export.observed_at == datetime(2026, 3, 29, tzinfo=UTC)  # Report Refresh Date
    teams = "Teams Last Activity Date"
    assert sorted(export.rows, key=lambda r: r.user_key) == [
        UsageRow("ada@contoso.test", None, at=datetime(2026, 3, 27, tzinfo=UTC), at_from=teams),
        UsageRow("bob@contoso.test", None),
        UsageRow("cy@contoso.test", None),
    ]
    report, download = fake_graph.requests
    assert report.path == "/reports/getOffice365ActiveUserDetail(period='D30')"
    assert report.status == 302 and download.status == 200
    # the preauthenticated URL is on another host: the app's token is not sent there
    assert "authorization" not in download.headers


def test_any_product_takes_the_newest_activity(
    fake_graph: FakeGraph, tenant: dict[str, str]
) -> None:
    rows = {r.user_key: r for r in usage_source(fake_graph).usage(policy(), NOW).rows}
    assert rows["ada@contoso.test"].at == datetime(2026, 3, 27, tzinfo=UTC)
    assert rows["bob@contoso.test"].at_from == "Exchange Last Activity Date"
    assert rows["cy@contoso.test"].at is None


@pytest.mark.parametrize(("days", "period"), [(7, "D7"), (8, "D30"), (90, "D90"), (91, "D180")])
def test_the_period_read_is_the_shortest_covering_inactive_for(days: int, period: str) -> None:
    assert period_for(days * DAY) == period


def test_a_tenant_that_conceals_user_names_fails_closed_naming_the_setting(
    fake_graph: FakeGraph, tenant: dict[str, str]
) -> None:
    fake_graph.report_concealed = True
    with pytest.raises(SourceError) as caught:
        usage_source(fake_graph).usage(policy(), NOW)
    assert str(caught.value) == CONCEALED_HINT
    assert "Display concealed user, group, and site names in all reports" in CONCEALED_HINT


def test_without_reports_read_all_the_permission_is_named(fake_graph: FakeGraph) -> None:
    fake_graph.add_user("ada@contoso.test")
    with pytest.raises(ConfigurationError, match=r"Reports\.Read\.All"):
        usage_source(fake_graph).usage(policy(), NOW)
