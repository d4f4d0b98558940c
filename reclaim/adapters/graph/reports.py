"""The `m365-reports` usage source: the Microsoft 365 active user detail report.

`GET /reports/getOffice365ActiveUserDetail(period='D7|D30|D90|D180')` (Reports.Read.All) answers
302 to a preauthenticated download URL on another host, which sends CSV (columns as listed on
learn.microsoft.com/graph/api/reportroot-getoffice365activeuserdetail: no published schema covers
them). Each row gives a user's "<Product> Last Activity Date"; the report's own clock is its
"Report Refresh Date" (usually a day or two behind). The period read is the shortest that covers
usage.inactive_for.

A tenant may conceal user names in reports (Microsoft 365 admin center, Settings > Org settings >
Services > Reports; adminReportSettings.displayConcealedNames): the UPNs are then hashes that
match no member, every member would look inactive, so the source fails closed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from reclaim.adapters.graph.client import GraphClient, shared_client
from reclaim.domain.model import UsageRow, normalise_key
from reclaim.domain.policy import M365Product, MatchOn, Policy
from reclaim.errors import ConfigurationError, PermanentError, SourceError, TransientError
from reclaim.ports import Secrets, UsageExport

if TYPE_CHECKING:
    from reclaim.settings import Settings

READ_REPORTS = "Reports.Read.All"
PERIODS = ((7, "D7"), (30, "D30"), (90, "D90"), (180, "D180"))
COLUMN_PRODUCT = {
    M365Product.EXCHANGE: "Exchange",
    M365Product.ONEDRIVE: "OneDrive",
    M365Product.SHAREPOINT: "SharePoint",
    M365Product.SKYPE_FOR_BUSINESS: "Skype For Business",
    M365Product.YAMMER: "Yammer",
    M365Product.TEAMS: "Teams",
}
UPN_COLUMN = "User Principal Name"
REFRESH_COLUMN = "Report Refresh Date"
# What a concealed name looks like: a hash of 32 hexadecimal digits instead of a UPN.
_CONCEALED = re.compile(r"^[0-9A-Fa-f]{32}$")
CONCEALED_HINT = (
    "the tenant conceals user names in Microsoft 365 usage reports, so no row can be matched to "
    "a member and every member would look inactive. In the Microsoft 365 admin center, Settings > "
    "Org settings > Services > Reports, clear 'Display concealed user, group, and site names in "
    "all reports' (adminReportSettings.displayConcealedNames), then run again"
)


def period_for(inactive_for: timedelta) -> str:
    """The shortest report period that covers `inactive_for` (validation caps it at 180d)."""
    for days, name in PERIODS:
        if inactive_for <= timedelta(days=days):
            return name
    raise ConfigurationError(
        "usage.inactive_for is longer than a Microsoft 365 usage report covers (180d)"
    )


def _date(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None  # empty: no activity recorded


class M365ReportUsage:
    """reclaim.ports.UsageSource from the active user detail report: one row per user, dated by
    the last activity in the policy's product (no date: no activity on record)."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> M365ReportUsage:
        return cls(shared_client(settings, secrets))

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        spec = policy.usage
        if spec.match_on is not MatchOn.UPN or spec.inactive_for is None:
            raise ConfigurationError(
                f"policy {policy.name}: m365-reports needs match_on: upn and usage.inactive_for"
            )
        period = period_for(spec.inactive_for)
        what = f"download the Microsoft 365 active user report ({period})"
        path = f"/reports/getOffice365ActiveUserDetail(period='{period}')"
        try:
            reply = self._client.call("GET", path, permission=READ_REPORTS, what=what)
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed, the run stops: {error}") from error
        if reply.status != 200 or not isinstance(reply.body, str):
            raise SourceError(f"Graph {what}: unexpected {reply.describe()}, not a CSV report")
        reader = csv.DictReader(io.StringIO(reply.body))
        columns = self._columns(spec.product)
        missing = [
            c for c in (UPN_COLUMN, REFRESH_COLUMN, *columns) if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise SourceError(f"Graph {what}: the report has no column {missing[0]!r}")
        records = list(reader)  # one row per user: the report is read whole before judging
        if any(_CONCEALED.match(r.get(UPN_COLUMN) or "") for r in records):
            raise SourceError(CONCEALED_HINT)
        refreshed = [d for r in records if (d := _date(r.get(REFRESH_COLUMN) or ""))]
        clock = f"the report's Report Refresh Date ({period})"
        return UsageExport(
            observed_at=max(refreshed, default=None),
            rows=self._rows(records, columns),
            clock=clock,
        )

    @staticmethod
    def _columns(product: M365Product) -> list[str]:
        names = COLUMN_PRODUCT.values() if product is M365Product.ANY else [COLUMN_PRODUCT[product]]
        return [f"{name} Last Activity Date" for name in names]

    @staticmethod
    def _rows(records: list[dict[str, str]], columns: list[str]) -> Iterator[UsageRow]:
        for record in records:
            if (record.get("Is Deleted") or "").strip().lower() == "true":
                continue
            key = normalise_key(record.get(UPN_COLUMN) or "")
            if not key:
                continue
            dated = [(d, c) for c in columns if (d := _date(record.get(c) or ""))]
            at, column = max(dated, default=(None, ""))
            yield UsageRow(key, None, at=at, at_from=column)
