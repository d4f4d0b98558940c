"""FakeGraph's direct licence assignment, and the answers Graph gives without some permissions.

Routed from FakeGraph._route (tests/fakes/graph.py); each answer follows what Graph is documented
or reported to answer (sources beside each message):

- `GET /users?$filter=assignedLicenses/any(x:x/skuId eq {guid})`: the users holding a SKU from
  any source (assignedLicenses counts group-based assignments too). An advanced query: it takes
  `ConsistencyLevel: eventual` and `$count=true` (learn.microsoft.com/graph/aad-advanced-queries);
  without them, or with the GUID quoted as a string, 400 as Graph. Paged like every listing.
- `POST /users/{id}/assignLicense` (learn.microsoft.com/graph/api/user-assignlicense): both
  `addLicenses` and `removeLicenses` are required (msgraph-sdk-powershell#3361 shows Graph's
  400 when one is missing); removing a licence the user holds only through a group is 400
  Request_BadRequest "User license is inherited from a group membership and it cannot be removed
  directly from the user." (Okta's support article quotes Graph's answer); removing one the user
  does not hold is 400 "User does not have a corresponding license."; adding a SKU the tenant does
  not have is 400. All or nothing; 200 with the user on success. Needs
  LicenseAssignment.ReadWrite.All, User.ReadWrite.All or Directory.ReadWrite.All.
- Member writes on a mail-enabled group that is not a Microsoft 365 ("Unified") group: 400
  Request_BadRequest "Cannot Update a mail-enabled security groups and or distribution list."
  (microsoftgraph/microsoft-graph-docs#14827).
- Member listings without User.Read.All (or a Directory read permission): 200, each user with
  only @odata.type and id, every other property null (api-facts.md section 8).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.fakes.identity import FakeReply

if TYPE_CHECKING:
    from tests.fakes.graph import FakeGraph, FakeUser

ASSIGN_LICENCES = {"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All",
                   "Directory.ReadWrite.All"}  # fmt: skip
MAIL_ENABLED = "Cannot Update a mail-enabled security groups and or distribution list."
INHERITED = (
    "User license is inherited from a group membership and it cannot be removed directly from "
    "the user."
)
NOT_HELD = "User does not have a corresponding license."
_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_HOLDERS = re.compile(rf"^assignedLicenses/any\((\w+):\s*\1/skuId eq ({_GUID})\)$")
_QUOTED_HOLDERS = re.compile(rf"^assignedLicenses/any\((\w+):\s*\1/skuId eq '({_GUID})'\)$")


def route(
    graph: FakeGraph,
    method: str,
    parts: list[str],
    query: dict[str, str],
    headers: dict[str, str],
    body: Any,
    host_url: str,
) -> FakeReply | None:
    """The answer when the request is one of this module's, else None."""
    from tests.fakes.graph import _READ_USERS

    match parts:
        case ["users"] if method == "GET" and "assignedLicenses" in query.get("$filter", ""):
            return graph._need(_READ_USERS) or _holders(graph, query, headers, host_url)
        case ["users", key, "assignLicense"] if method == "POST":
            return graph._need(ASSIGN_LICENCES) or _assign(graph, key, body)
    return None


def nameless(user: dict[str, Any]) -> dict[str, Any]:
    """A listed user as Graph shows it to an app without User.Read.All: only type and id."""
    return {k: v if k in ("@odata.type", "id") else None for k, v in user.items()}


def effective_skus(graph: FakeGraph, user: FakeUser) -> dict[str, str | None]:
    """Each SKU the user holds now -> the group it comes from (None: assigned directly)."""
    held: dict[str, str | None] = {}
    for group in graph.groups.values():
        if user.id in group.members:
            held.update({sku: group.id for sku in group.licences if sku not in held})
    held.update({sku: None for sku in user.direct_licences})
    return held


def _holders(
    graph: FakeGraph, query: dict[str, str], headers: dict[str, str], host_url: str
) -> FakeReply:
    from tests.fakes.graph import _USER_PROPERTIES, _error, _offset, _select, _skiptoken

    text = query.get("$filter", "")
    if _QUOTED_HOLDERS.match(text):
        return _error(
            400,
            "BadRequest",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.Guid' and 'Edm.String' for operator kind 'Equal'.",
        )
    found = _HOLDERS.match(text)
    advanced = headers.get("consistencylevel") == "eventual" and query.get("$count") == "true"
    if not found or not advanced:
        return _error(
            400,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified for property 'assignedLicenses' "
            "of resource 'User'.",
        )
    selected = _select(query, _USER_PROPERTIES, "user")
    if isinstance(selected, FakeReply):
        return selected
    top = int(query.get("$top", "100"))
    if not 1 <= top <= 999:
        return _error(400, "Request_UnsupportedQuery", f"Invalid page size specified: '{top}'.")
    sku = found.group(2).lower()
    size = min(top, graph.page_size)
    offset = _offset(query["$skiptoken"]) if "$skiptoken" in query else 0
    with graph._lock:
        holders = [u for u in graph.users.values() if sku in effective_skus(graph, u)]
        values = [graph._user_json(u, selected) for u in holders[offset : offset + size]]
    page: dict[str, Any] = {
        "@odata.context": f"{host_url}/v1.0/$metadata#users",
        "@odata.count": len(holders),
        "value": values,
    }
    if offset + size < len(holders):
        link = {k: v for k, v in query.items() if k != "$skiptoken"}
        link["$skiptoken"] = _skiptoken(offset + size)
        page["@odata.nextLink"] = f"{host_url}/v1.0/users?" + "&".join(
            f"{k}={_quote(v)}" for k, v in link.items()
        )
    return FakeReply(200, page)


def _assign(graph: FakeGraph, key: str, body: Any) -> FakeReply:
    from tests.fakes.graph import _RESTRICTED_MESSAGE, _error, _not_found

    fields = ("addLicenses", "removeLicenses")
    missing = [k for k in fields if not isinstance(body, dict) or k not in body]
    if missing:
        return _error(
            400,
            "Request_BadRequest",
            "One or more parameters of the operation 'assignLicense' are missing from the "
            f"request payload. The missing parameters are: {', '.join(missing)}.",
        )
    adds, removes = body["addLicenses"], body["removeLicenses"]
    if not isinstance(adds, list) or not isinstance(removes, list):
        return _error(400, "Request_BadRequest", "Invalid value for 'assignLicense' parameters.")
    if not adds and not removes:
        return _error(
            400,
            "Request_BadRequest",
            "No license changes provided. At least one license to add or remove must be specified.",
        )
    with graph._lock:
        user = graph._find_user(key)
        if user is None:
            return _not_found(key)
        if user.restricted:
            return _error(403, "Authorization_RequestDenied", _RESTRICTED_MESSAGE)
        held = effective_skus(graph, user)
        for sku in (str(s).lower() for s in removes):
            if sku not in held:
                return _error(400, "Request_BadRequest", NOT_HELD)
            if held[sku] is not None:  # held only through a group
                return _error(400, "Request_BadRequest", INHERITED)
        tenant = graph.subscribed | {s for g in graph.groups.values() for s in g.licences}
        tenant |= {s for u in graph.users.values() for s in u.direct_licences}
        added: dict[str, list[str]] = {}
        for item in adds:
            sku = str(item.get("skuId") or "").lower() if isinstance(item, dict) else ""
            plans = item.get("disabledPlans") if isinstance(item, dict) else None
            if not re.fullmatch(_GUID, sku) or not isinstance(plans, list):
                return _error(400, "Request_BadRequest", "Invalid value for 'addLicenses'.")
            if sku not in tenant:
                return _error(
                    400,
                    "Request_BadRequest",
                    f"License {sku} does not correspond to a valid company License.",
                )
            added[sku] = [str(p) for p in plans]
        for sku in (str(s).lower() for s in removes):
            graph.subscribed.add(sku)
            user.direct_licences.remove(sku)
            user.disabled_plans.pop(sku, None)
        for sku, plans in added.items():
            if sku not in user.direct_licences:
                user.direct_licences.append(sku)
            user.disabled_plans[sku] = plans
        return FakeReply(200, graph._user_json(user, None))


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe=",$:()/")
