"""The Graph fake's Microsoft 365 usage report: the active user detail report, as documented.

No published schema covers the report's CSV; this follows Microsoft's documentation page
https://learn.microsoft.com/graph/api/reportroot-getoffice365activeuserdetail (copied from
microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/api/
reportroot-getoffice365activeuserdetail.md):

- `GET /reports/getOffice365ActiveUserDetail(period='{D7|D30|D90|D180}')` needs Reports.Read.All
  and answers `302 Found` with the report's preauthenticated download URL in `Location`, on
  another host (reports.office.com in Graph; `localhost` here, Graph being `127.0.0.1`). Another
  period is refused with 400;
- the download needs no Authorization header and sends `application/octet-stream` CSV (with a
  UTF-8 byte order mark) with the page's columns, in its order (COLUMNS);
- `report_concealed` = True is a tenant with "Display concealed user, group, and site names in
  all reports" on: user names and display names are 32-digit hashes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from tests.fakes.graph import _denied, _error
from tests.fakes.identity import FakeReply

if TYPE_CHECKING:
    from tests.fakes.graph import FakeGraph

DOCS_PAGE = "https://learn.microsoft.com/graph/api/reportroot-getoffice365activeuserdetail"
PRODUCTS = ("Exchange", "OneDrive", "SharePoint", "Skype For Business", "Yammer", "Teams")
COLUMNS = (
    "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date",
    *(f"Has {p} License" for p in PRODUCTS),
    *(f"{p} Last Activity Date" for p in PRODUCTS),
    *(f"{p} License Assign Date" for p in PRODUCTS),
    "Assigned Products",
)  # fmt: skip
PERIODS = {"D7", "D30", "D90", "D180"}
_READ_REPORTS = {"Reports.Read.All"}
DOWNLOAD_PREFIX = "/data/download/"


def set_report_activity(graph: FakeGraph, user_id: str, **last_active: date) -> None:
    """A user's last activity date per product, e.g. Teams=date(...), Exchange=date(...)
    (products by their column names without spaces: SkypeForBusiness)."""
    with graph._lock:
        graph.report_activity[user_id] = dict(last_active)


def report(graph: FakeGraph, function: str, host_url: str) -> FakeReply:
    """GET /reports/{function}: only getOffice365ActiveUserDetail(period='Dn') is served."""
    name, _, argument = function.partition("(")
    if name != "getOffice365ActiveUserDetail":
        return _error(400, "BadRequest", f"Resource not found for the segment '{name}'.")
    if not graph.granted & _READ_REPORTS:
        return _denied()
    period = argument.rstrip(")").removeprefix("period=").strip("'")
    if period not in PERIODS:
        return _error(400, "BadRequest", f"Invalid period: {argument.rstrip(')')}")
    token = f"{period}-{uuid.uuid4().hex}"
    download = host_url.replace("127.0.0.1", "localhost") + DOWNLOAD_PREFIX + token
    return FakeReply(302, b"", headers={"Location": download, "Content-Type": "text/plain"})


def download(graph: FakeGraph, path: str) -> FakeReply:
    """The preauthenticated download: the report as CSV."""
    token = path.removeprefix(DOWNLOAD_PREFIX)
    if token.split("-", 1)[0] not in PERIODS:
        return FakeReply(404, b"The report link has expired.", {"Content-Type": "text/plain"})
    refreshed = graph.report_refreshed or (datetime.now(UTC) - timedelta(days=1)).date()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    with graph._lock:
        for user in graph.users.values():
            activity = graph.report_activity.get(user.id, {})
            upn, shown = user.upn, user.display_name
            if graph.report_concealed:
                # the pseudonyms Microsoft shows: 32 hexadecimal digits
                upn = hashlib.md5(upn.encode()).hexdigest().upper()
                shown = hashlib.md5(shown.encode()).hexdigest().upper()
            last = [activity.get(p.replace(" ", "")) for p in PRODUCTS]
            writer.writerow(
                [
                    refreshed.isoformat(), upn, shown, "False", "",
                    *("True" for _ in PRODUCTS),
                    *((d.isoformat() if d else "") for d in last),
                    *("2020-01-06" for _ in PRODUCTS),
                    "MICROSOFT 365 E3",
                ]
            )  # fmt: skip
    body = "\ufeff" + out.getvalue()
    return FakeReply(200, body.encode(), {"Content-Type": "application/octet-stream"})
