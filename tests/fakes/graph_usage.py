"""The Graph fake's usage signals: the sign-in log (v1.0 and beta) and users' signInActivity.

Held to what Graph documents, never more permissive:

- `GET /auditLogs/signIns` takes `$filter`, `$top` and `$skiptoken` only (learn.microsoft.com
  /graph/api/signin-list: "This method supports the $top, $skiptoken, and $filter OData query
  parameters"); any other option, `$select` first, gets Graph's real 400 BadRequest "Query option
  'Select' is not allowed. ..." (api-facts.md section 8). `$filter` clauses joined by `and`:
  `appId eq '...'`, `createdDateTime ge|le <time>` and, on beta only,
  `signInEventTypes/any(t: t eq '<type>')`. v1.0 lists interactive sign-ins only; beta lists
  non-interactive ones only when that filter asks for them. Newest first, pages of at most 1000.
  Needs AuditLog.Read.All and an Entra ID P1/P2 tenant (`premium`), 5 requests per 10 s when
  `reports_limit` is set.
- `GET /users` without `$filter`: every user, `$select`, `$top` (1..999) and `$skiptoken`.
  `signInActivity` comes only on `$select` (learn.microsoft.com/graph/api/resources/signinactivity),
  needs AuditLog.Read.All and P1/P2, and pages hold at most 120 users then ("Requests with $top set
  higher than 120 will return pages with up to 120 users", user-list documentation). A user who
  never signed in has `signInActivity: null`.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tests.fakes.graph import (
    _READ_AUDIT,
    _USER_PROPERTIES,
    _denied,
    _error,
    _iso,
    _offset,
    _select,
    _skiptoken,
)
from tests.fakes.identity import FakeReply

if TYPE_CHECKING:
    from tests.fakes.graph import FakeGraph, FakeSignIn

_SIGNIN_OPTIONS = {"$filter", "$top", "$skiptoken"}
_USER_LIST_OPTIONS = {"$select", "$top", "$skiptoken"}
SIGNIN_ACTIVITY_PAGE = 120  # the most users a page holds when signInActivity is selected
_TIME_CLAUSE = re.compile(r"^createdDateTime (ge|le) (\S+)$")
_APP_CLAUSE = re.compile(r"^appId eq '((?:[^']|'')*)'$")
_EVENT_CLAUSE = re.compile(r"^\(?signInEventTypes/any\((\w+):\s*\1 eq '(\w+)'\)\)?$")
EVENT_TYPES = {"interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity"}


def set_sign_in_activity(
    graph: FakeGraph,
    user_id: str,
    *,
    successful: datetime | None = None,
    interactive: datetime | None = None,
    non_interactive: datetime | None = None,
) -> None:
    """The user's signInActivity as Entra keeps it (null properties where nothing is recorded,
    e.g. lastSuccessfulSignInDateTime for a sign-in before December 2023)."""

    def request_id(at: datetime | None) -> str | None:
        return None if at is None else f"req-{user_id[:8]}-{at:%Y%m%d%H%M%S}"

    with graph._lock:
        graph.sign_in_activity[user_id] = {
            "lastSignInDateTime": _iso(interactive),
            "lastSignInRequestId": request_id(interactive),
            "lastNonInteractiveSignInDateTime": _iso(non_interactive),
            "lastNonInteractiveSignInRequestId": request_id(non_interactive),
            "lastSuccessfulSignInDateTime": _iso(successful),
            "lastSuccessfulSignInRequestId": request_id(successful),
        }


def _not_allowed(option: str) -> FakeReply:
    name = {"$orderby": "OrderBy", "$skiptoken": "SkipToken"}.get(option, option[1:].title())
    return _error(
        400,
        "BadRequest",
        f"Query option '{name}' is not allowed. To allow it, set the 'AllowedQueryOptions' "
        "property on EnableQueryAttribute or QueryValidationSettings.",
    )


def _non_premium() -> FakeReply:
    return _error(
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    )


def _within_reports_limit(graph: FakeGraph) -> FakeReply | None:
    if graph.reports_limit is None:
        return None
    limit, window = graph.reports_limit
    now = time.monotonic()
    with graph._lock:
        while graph._report_times and graph._report_times[0] <= now - window:
            graph._report_times.popleft()
        if len(graph._report_times) >= limit:
            wait = graph._report_times[0] + window - now
            return _error(
                429,
                "TooManyRequests",
                "Too many requests.",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        graph._report_times.append(now)
    return None


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def sign_ins(graph: FakeGraph, query: dict[str, str], host_url: str, *, beta: bool) -> FakeReply:
    """GET /{v1.0|beta}/auditLogs/signIns (see the module docstring)."""
    if not graph.premium:
        return _non_premium()
    refused = next((o for o in query if o.startswith("$") and o not in _SIGNIN_OPTIONS), None)
    if refused is not None:
        return _not_allowed(refused)
    limited = _within_reports_limit(graph)
    if limited is not None:
        return limited
    app_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_type = "interactiveUser"
    text = query.get("$filter", "")
    for clause in (c.strip() for c in text.split(" and ")) if text else ():
        if found := _APP_CLAUSE.match(clause):
            app_id = found.group(1).replace("''", "'")
        elif found := _TIME_CLAUSE.match(clause):
            at = _time(found.group(2))
            if at is None:
                return _error(400, "BadRequest", f"Invalid DateTimeOffset: {found.group(2)}")
            since, until = (at, until) if found.group(1) == "ge" else (since, at)
        elif beta and (found := _EVENT_CLAUSE.match(clause)) and found.group(2) in EVENT_TYPES:
            event_type = found.group(2)
        else:
            return _error(400, "BadRequest", f"Invalid filter clause: {text}")
    top = int(query.get("$top", "1000"))
    if not 1 <= top <= 1000:
        return _error(400, "BadRequest", "Invalid page size: $top must be 1 to 1000.")
    size = min(top, graph.signin_page_size)
    offset = _offset(query["$skiptoken"]) if "$skiptoken" in query else 0
    interactive = event_type == "interactiveUser"
    with graph._lock:
        matching = sorted(
            (
                s
                for s in graph.sign_ins
                if (app_id is None or s.app_id == app_id)
                and (since is None or s.created >= since)
                and (until is None or s.created <= until)
                and s.interactive == interactive
                and event_type in ("interactiveUser", "nonInteractiveUser")
            ),
            key=lambda s: s.created,
            reverse=True,  # newest first, as Graph lists them
        )
    values = [_sign_in_json(s, beta) for s in matching[offset : offset + size]]
    version = "beta" if beta else "v1.0"
    page: dict[str, Any] = {
        "@odata.context": f"{host_url}/{version}/$metadata#auditLogs/signIns",
        "value": values,
    }
    if offset + size < len(matching):
        link_query = {k: v for k, v in query.items() if k != "$skiptoken"}
        link_query["$skiptoken"] = _skiptoken(offset + size)
        page["@odata.nextLink"] = f"{host_url}/{version}/auditLogs/signIns?" + "&".join(
            f"{k}={quote(v, safe=',$:')}" for k, v in link_query.items()
        )
    return FakeReply(200, page)


def _sign_in_json(sign_in: FakeSignIn, beta: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": sign_in.id,
        "createdDateTime": sign_in.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "userPrincipalName": sign_in.upn,
        "userId": sign_in.user_id,
        "appId": sign_in.app_id,
        "isInteractive": sign_in.interactive,
    }
    if beta:  # the beta type only
        data["signInEventTypes"] = [
            "interactiveUser" if sign_in.interactive else "nonInteractiveUser"
        ]
    return data


def list_users(graph: FakeGraph, query: dict[str, str], host_url: str) -> FakeReply:
    """GET /users without $filter (see the module docstring)."""
    refused = next((o for o in query if o.startswith("$") and o not in _USER_LIST_OPTIONS), None)
    if refused is not None:
        return _error(400, "BadRequest", f"The fake Graph does not serve {refused} on /users.")
    selected = _select(query, _USER_PROPERTIES | {"signInActivity"}, "user")
    if isinstance(selected, FakeReply):
        return selected
    activity = selected is not None and "signInActivity" in selected
    if activity and not graph.granted & _READ_AUDIT:
        return _denied()
    if activity and not graph.premium:
        return _non_premium()
    try:
        top = int(query.get("$top", "100"))
    except ValueError:
        top = 0
    if not 1 <= top <= 999:
        return _error(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{query.get('$top')}'. Must be between 1 and 999 "
            "inclusive.",
        )
    size = min(top, graph.page_size, SIGNIN_ACTIVITY_PAGE if activity else top)
    offset = _offset(query["$skiptoken"]) if "$skiptoken" in query else 0
    plain = [n for n in selected if n != "signInActivity"] if selected is not None else None
    with graph._lock:
        users = list(graph.users.values())
        values = []
        for user in users[offset : offset + size]:
            data = graph._user_json(user, plain)
            if activity:
                data["signInActivity"] = graph.sign_in_activity.get(user.id)
            values.append(data)
    page: dict[str, Any] = {"@odata.context": f"{host_url}/v1.0/$metadata#users", "value": values}
    if offset + size < len(users):
        link_query = {k: v for k, v in query.items() if k != "$skiptoken"}
        link_query["$skiptoken"] = _skiptoken(offset + size)
        page["@odata.nextLink"] = f"{host_url}/v1.0/users?" + "&".join(
            f"{k}={quote(v, safe=',$:')}" for k, v in link_query.items()
        )
    return FakeReply(200, page)
