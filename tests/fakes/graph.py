"""A fake Microsoft Graph (v1.0) tenant over real HTTPS, with its own token endpoint.

Reusable for adapter, end-to-end and benchmark tests:

    with FakeGraph() as graph:
        sku = graph.new_sku()
        group = graph.add_group("Salesforce users", licences=[sku])
        user = graph.add_user("ada@contoso.test")
        graph.add_member(group, user)
        ...  # point RECLAIM_GRAPH_BASE_URL at graph.url, RECLAIM_AUTHORITY_HOST at
        ...  # graph.authority_host, RECLAIM_TENANT_ID / CLIENT_ID at graph.tenant_id / client_id,
        ...  # RECLAIM_CA_BUNDLE at graph.ca_file, and the secret at graph.client_secret

What it serves, with Graph's status codes and error bodies: group read, member listing
(`members` and `transitiveMembers`, users and nested groups with their @odata.type, or cast to
microsoft.graph.user / microsoft.graph.group; paged by @odata.nextLink, page size knob), member
removal by DELETE .../$ref (a DELETE without /$ref deletes the user object, as Graph does when the
app may), member add by POST .../$ref, user read and $filter by userPrincipalName/mail/id,
a user's manager (GET /users/{id}/manager, set by set_manager: the directoryObject with its
@odata.type, 404 Request_ResourceNotFound when unset),
licenseAssignmentStates (one per direct assignment and per licensing group, kept after a removal
until process_licences() when licence_lag is on), assignedLicenses and createdDateTime,
/auditLogs/signIns (v1.0 and beta) and GET /users with signInActivity (tests/fakes/graph_usage.py),
POST /users/{id}/sendMail (tests/fakes/graph_mail.py: graph_mail.enable(graph, user), graph.mail.sent),
/auditLogs/directoryAudits ("Add member to group" entries seeded by
add_member(..., at=...); $filter on activityDisplayName, activityDateTime and
targetResources/any(t: t/id eq ...) only, no $select, as documented), and
POST /$batch (at most 20 unique ids, items answered in another order).

Knobs: page_size, signin_page_size, granted (application permissions), premium (P1/P2 for sign-in
logs), add_user(restricted=True) for a user in a restricted management administrative unit (its
membership changes get 403 Authorization_RequestDenied naming the target object), inject(...) faults for the next requests on a path (429/503/504 with or without
Retry-After, slow answers, malformed JSON, expired token, 403, a connection dropped before or
after the work was done), throttle_writes(capacity, refill_per_second) for Graph's write token
bucket, reports_limit for the 5-per-10-s reports limit, latency=(low, high) seconds every answer
takes (token endpoint included), like a real round trip, and write_latency=(low, high) instead
for POST/PATCH/PUT/DELETE below /v1.0 (Graph's writes take 0.3-0.5 s).
Every request is logged (`requests`, `count(...)`), $batch items included with in_batch=True.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import math
import random
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest

from tests.contracts.answers import check_answer
from tests.fakes import graph_licences, graph_mail
from tests.fakes.identity import FakeIdentity, FakeReply, FakeRequest, FakeService

LEAST_PRIVILEGED = frozenset({"GroupMember.ReadWrite.All", "User.Read.All", "AuditLog.Read.All"})
_READ_GROUPS = {"GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
                "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}  # fmt: skip
_WRITE_MEMBERS = {"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
_READ_USERS = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
               "Directory.ReadWrite.All"}  # fmt: skip
_DELETE_USERS = {"User.ReadWrite.All", "Directory.ReadWrite.All"}
_READ_AUDIT = {"AuditLog.Read.All"}

_GROUP_PROPERTIES = {
    "id", "displayName", "groupTypes", "membershipRule", "onPremisesSyncEnabled",
    "securityEnabled", "assignedLicenses", "mailEnabled", "description",
}  # fmt: skip
_USER_PROPERTIES = {
    "id", "userPrincipalName", "mail", "displayName", "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier", "licenseAssignmentStates", "assignedLicenses",
    "accountEnabled", "createdDateTime", "employeeLeaveDateTime",
}  # fmt: skip
# employeeLeaveDateTime needs User-LifeCycleInfo.Read.All; without it Graph answers null, not 403
_READ_LIFECYCLE = {"User-LifeCycleInfo.Read.All", "User-LifeCycleInfo.ReadWrite.All"}
# Graph takes the cast with its namespace or the namespace's alias (Microsoft's SDK sends graph.user)
_CASTS = {f"{namespace}.{kind}": kind for namespace in ("microsoft.graph", "graph")
          for kind in ("user", "group")}  # fmt: skip
ADD_MEMBER = "Add member to group"
# The filter clauses GET /auditLogs/directoryAudits takes (Graph: eq/ge/le on activityDateTime,
# eq on activityDisplayName, any() on targetResources' id); anything else is refused.
_AUDIT_CLAUSE = re.compile(
    r"^(?:activityDisplayName eq '((?:[^']|'')*)'"
    r"|targetResources/any\((\w+):\s*\2/id eq '((?:[^']|'')*)'\)"
    r"|activityDateTime (ge|le) (\S+))$"
)

# ---- tenant state -------------------------------------------------------------------------------


@dataclass
class FakeUser:
    id: str
    upn: str
    mail: str | None
    display_name: str
    sam_account_name: str | None = None
    sid: str | None = None
    direct_licences: list[str] = field(default_factory=list)  # skuIds assigned directly
    created: datetime | None = None  # createdDateTime (null for some old accounts, as in Graph)
    # in a restricted management administrative unit: the app may not change it (403 on the user)
    restricted: bool = False
    disabled_plans: dict[str, list[str]] = field(default_factory=dict)  # per direct skuId
    enabled: bool = True  # accountEnabled (Samba, unlike Entra, creates users disabled)
    leaves: datetime | None = None  # employeeLeaveDateTime
    manager: str | None = None  # the manager's user id (GET /users/{id}/manager), None: unset


@dataclass
class FakeGroup:
    id: str
    display_name: str
    group_types: list[str]
    membership_rule: str | None
    on_premises_sync_enabled: bool | None
    security_enabled: bool
    licences: list[str]  # skuIds the group assigns
    members: dict[str, None] = field(default_factory=dict)  # ordered set of user and group ids
    mail_enabled: bool = False  # a mail-enabled security group or distribution list


@dataclass(frozen=True)
class FakeAudit:
    """An "Add member to group" entry of the directory audit log."""

    id: str
    at: datetime
    user_id: str
    group_id: str
    activity: str = ADD_MEMBER


@dataclass(frozen=True)
class FakeSignIn:
    id: str
    user_id: str
    upn: str
    app_id: str
    created: datetime
    interactive: bool = True  # non-interactive ones are listed by the beta endpoint only


# ---- fault injection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What the fake does instead of (or before) answering one matching request."""

    status: int = 0  # 429, 503, 504, 401, 403: answer this instead of doing the work
    retry_after: float | None = None  # Retry-After header (seconds) on that answer
    delay: float = 0.0  # slow answer: wait this long, then answer normally
    malformed: bool = False  # answer 200 with a truncated JSON body, doing nothing
    # close the connection without an answer: "before" the work (nothing changed) or "after" it
    # (the change is made, the client never hears of it: its retry finds the work done)
    reset: str = ""

    @classmethod
    def throttled(cls, retry_after: float | None = 0) -> Fault:
        return cls(status=429, retry_after=retry_after)

    @classmethod
    def unavailable(cls, retry_after: float | None = None) -> Fault:
        return cls(status=503, retry_after=retry_after)

    @classmethod
    def gateway_timeout(cls) -> Fault:
        return cls(status=504)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls(malformed=True)

    @classmethod
    def connection_reset(cls, *, after_work: bool = False) -> Fault:
        return cls(reset="after" if after_work else "before")

    @classmethod
    def expired_token(cls) -> Fault:
        return cls(status=401)

    @classmethod
    def denied(cls) -> Fault:
        return cls(status=403)


@dataclass
class _Injection:
    method: str  # "*" for any
    path: str  # glob over the decoded path below /v1.0, e.g. /groups/*/members/*/$ref
    faults: deque[Fault]
    skip: int  # matching requests to let through before the faults start


@dataclass
class _TokenBucket:
    capacity: float
    refill_per_second: float
    tokens: float
    updated: float

    def take(self) -> float:
        """0 when a write may go ahead, else seconds until the bucket holds one token."""
        now = time.monotonic()
        self.tokens = min(
            self.capacity, self.tokens + (now - self.updated) * self.refill_per_second
        )
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.refill_per_second


class _ConnectionDropped(Exception):
    """Raised in the server thread so the connection closes with no answer (see FakeGraph.start)."""


@dataclass
class _DropConnection(FakeReply):
    """The reply to a connection-reset fault: logged with status 0, never written."""

    status: int = 0

    def payload(self) -> bytes:
        raise _ConnectionDropped


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # decoded, below /v1.0 (e.g. /groups/x/members/y/$ref)
    target: str  # as sent (percent-encoded path and query), below /v1.0
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any
    in_batch: bool
    status: int
    at: float = field(default_factory=time.monotonic)  # when the answer was decided


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> FakeReply:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request_id = str(uuid.uuid4())
    return FakeReply(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": now,
                    "request-id": request_id,
                    "client-request-id": request_id,
                },
            }
        },
        headers=dict(headers or {}),
    )


def _not_found(resource_id: str) -> FakeReply:
    return _error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{resource_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"RFNwdAIAAQAAA:{offset}".encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    padded = token + "=" * (-len(token) % 4)
    return int(base64.urlsafe_b64decode(padded).decode().rsplit(":", 1)[1])


_CLAUSE = r"(\w+) eq '((?:[^']|'')*)'"
_USER_FILTER = re.compile(rf"^{_CLAUSE}(?: or {_CLAUSE})*$")


# ---- the fake -----------------------------------------------------------------------------------


class FakeGraph(FakeService):
    def __init__(
        self,
        *,
        tenant_id: str = "",
        client_id: str = "",
        client_secret: str = "",
        page_size: int = 999,
        signin_page_size: int = 1000,
        expires_in: int = 3599,
    ) -> None:
        super().__init__()
        self.identity = FakeIdentity(tenant_id, expires_in=expires_in)
        self.tenant_id = self.identity.tenant_id
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or f"fake-secret-{uuid.uuid4().hex}"
        self.identity.add_client(self.client_id, secret=self.client_secret)
        self.page_size = page_size  # members per page, at most the client's $top
        self.signin_page_size = signin_page_size
        self.granted: set[str] = set(LEAST_PRIVILEGED)  # application permissions of the app
        self.premium = True  # Entra ID P1/P2: needed for the sign-in logs
        # The audience tokens must carry: "" = this fake's own address; Graph's own
        # (https://graph.microsoft.com) when the fake stands behind a proxy or API Management.
        self.audience = ""
        self.reports_limit: tuple[int, float] | None = None  # (requests, seconds) on signIns
        self.users: dict[str, FakeUser] = {}
        self.groups: dict[str, FakeGroup] = {}
        self.sign_ins: list[FakeSignIn] = []
        self.sign_in_activity: dict[str, dict[str, str | None]] = {}  # graph_usage.set_...
        # the Microsoft 365 active user report (tests/fakes/graph_reports.py)
        self.report_activity: dict[str, dict[str, date]] = {}  # user id -> product -> date
        self.report_concealed = False  # the tenant conceals user names in reports
        self.report_refreshed: date | None = None  # Report Refresh Date (default: yesterday)
        self.audits: list[FakeAudit] = []
        self.audit_page_size = 100
        self.deleted_users: list[str] = []  # users deleted by a DELETE without /$ref
        self.subscribed: set[str] = set()  # SKUs of the tenant beyond those assigned now
        self.mail = graph_mail.Mailboxes()  # sendMail (tests/fakes/graph_mail.py)
        self._lock = threading.RLock()
        self._injections: list[_Injection] = []
        self._write_bucket: _TokenBucket | None = None
        self._report_times: deque[float] = deque()
        self._log: list[LoggedRequest] = []
        self.latency: tuple[float, float] | None = None  # (low, high) seconds per answer
        self.write_latency: tuple[float, float] | None = None  # instead of latency, for writes
        # Group-based licensing is asynchronous: with licence_lag on, a removed member keeps the
        # group's licence assignment until process_licences() (Entra's background processing).
        self.licence_lag = False
        self._releasing: set[tuple[str, str]] = set()  # (user id, group id) not yet processed

    def start(self) -> Self:
        super().start()
        assert self._server is not None
        server = self._server.server
        report = server.handle_error

        def handle_error(request: Any, client_address: Any) -> None:
            # A connection-reset fault ends the request this way on purpose: not worth a traceback.
            if not isinstance(sys.exc_info()[1], _ConnectionDropped):
                report(request, client_address)

        server.handle_error = handle_error  # type: ignore[method-assign]
        return self

    # -- addresses

    @property
    def url(self) -> str:
        """The Graph base URL, like https://graph.microsoft.com/v1.0."""
        return f"{self.base_url}/v1.0"

    @property
    def authority_host(self) -> str:
        return self.base_url

    def settings_env(self, credential_name: str = "graph-client-secret") -> dict[str, str]:
        """RECLAIM_* variables pointing reclaim's Graph path at this fake, secrets from env."""
        return {
            "RECLAIM_SECRETS_SOURCE": "env",
            "RECLAIM_TENANT_ID": self.tenant_id,
            "RECLAIM_CLIENT_ID": self.client_id,
            "RECLAIM_GRAPH_CLIENT_SECRET_NAME": credential_name,
            "RECLAIM_GRAPH_BASE_URL": self.url,
            "RECLAIM_AUTHORITY_HOST": self.authority_host,
            "RECLAIM_CA_BUNDLE": str(self.ca_file),
            "RECLAIM_SECRET_"
            + re.sub(r"[^A-Z0-9]", "_", credential_name.upper()): self.client_secret,
        }

    # -- seeding

    @staticmethod
    def new_sku() -> str:
        return str(uuid.uuid4())

    def add_user(
        self,
        upn: str,
        *,
        mail: str | None = "",
        display_name: str = "",
        sam_account_name: str | None = None,
        sid: str | None = None,
        user_id: str = "",
        direct_licences: list[str] | None = None,
        created: datetime | None = datetime(2020, 1, 6, 9, 0, tzinfo=UTC),
        restricted: bool = False,
    ) -> str:
        user = FakeUser(
            id=user_id or str(uuid.uuid4()),
            upn=upn,
            mail=upn if mail == "" else mail,
            display_name=display_name or upn.split("@")[0],
            sam_account_name=sam_account_name,
            sid=sid,
            direct_licences=list(direct_licences or []),
            created=created,
            restricted=restricted,
        )
        with self._lock:
            self.users[user.id] = user
        return user.id

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        """Set (or, with None, clear) the user's manager, as PUT /users/{id}/manager/$ref would."""
        with self._lock:
            self.users[user_id].manager = manager_id

    def add_users(self, count: int, domain: str = "contoso.test") -> list[str]:
        return [self.add_user(f"user{n:06d}@{domain}") for n in range(count)]

    def add_group(
        self,
        display_name: str,
        *,
        group_id: str = "",
        dynamic: bool = False,
        synced: bool = False,
        licences: list[str] | None = None,
        security_enabled: bool = True,
        mail_enabled: bool = False,
    ) -> str:
        group = FakeGroup(
            id=group_id or str(uuid.uuid4()),
            display_name=display_name,
            group_types=["DynamicMembership"] if dynamic else [],
            membership_rule='(user.department -eq "Sales")' if dynamic else None,
            on_premises_sync_enabled=True if synced else None,
            security_enabled=security_enabled,
            licences=list(licences or []),
            mail_enabled=mail_enabled,
        )
        with self._lock:
            self.groups[group.id] = group
        return group.id

    def add_member(self, group_id: str, *member_ids: str, at: datetime | None = None) -> None:
        """Users or groups (nesting) as direct members; with `at`, the directory audit log
        records each user's "Add member to group" at that time (without, the add predates it)."""
        with self._lock:
            for member_id in member_ids:
                self.groups[group_id].members[member_id] = None
                if at is not None and member_id in self.users:
                    self.audits.append(FakeAudit(str(uuid.uuid4()), at, member_id, group_id))

    def sync_removal(self, group_id: str, *user_ids: str) -> None:
        """What directory sync does after an on-premises AD removal: the synced group loses the
        members (Graph itself refuses to change a synced group)."""
        with self._lock:
            group = self.groups[group_id]
            for user_id in user_ids:
                if group.members.pop(user_id, "absent") is None and self.licence_lag:
                    self._releasing.add((user_id, group_id))

    def process_licences(self) -> None:
        """Group-based licensing catches up: removed members lose the groups' assignments."""
        with self._lock:
            self._releasing.clear()

    def remove_member(self, group_id: str, user_id: str) -> None:
        """As an administrator would, outside reclaim."""
        with self._lock:
            self.groups[group_id].members.pop(user_id, None)

    def is_member(self, group_id: str, user_id: str) -> bool:
        with self._lock:
            return user_id in self.groups[group_id].members

    def add_sign_in(
        self, user_id: str, app_id: str, when: datetime, *, interactive: bool = True
    ) -> None:
        user = self.users[user_id]
        with self._lock:
            self.sign_ins.append(
                FakeSignIn(str(uuid.uuid4()), user.id, user.upn, app_id, when, interactive)
            )

    # -- knobs

    def inject(self, method: str, path: str, *faults: Fault, skip: int = 0) -> None:
        """The next len(faults) requests matching method ("*" = any) and path (a glob below
        /v1.0; $batch items count) get these faults, one each, after `skip` matches pass."""
        with self._lock:
            self._injections.append(_Injection(method.upper(), path, deque(faults), skip))

    def throttle_writes(self, capacity: float, refill_per_second: float) -> None:
        """Graph's write limit as a token bucket (real: 3,000 per 150 s per app and tenant,
        i.e. capacity 3000, refill 20/s): writes beyond it get 429 + Retry-After."""
        self._write_bucket = _TokenBucket(
            capacity, refill_per_second, tokens=capacity, updated=time.monotonic()
        )

    def expire_tokens(self) -> None:
        """Tokens issued so far stop working (401 InvalidAuthenticationToken) from now on."""
        self.identity.expire_all_tokens()

    # -- the request log

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def count(
        self, method: str | None = None, path: str | None = None, in_batch: bool | None = None
    ) -> int:
        """Requests seen, by method, path glob (below /v1.0) and whether inside a $batch."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path is None or fnmatch.fnmatchcase(r.path, path))
            and (in_batch is None or r.in_batch == in_batch)
        )

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def token_requests(self) -> int:
        return self.identity.tokens_issued()

    # -- serving

    def handle(self, request: FakeRequest) -> FakeReply:
        reply = self._handle(request)
        # held to Graph's v1.0 types in every test (tests/contracts/answers.py)
        check_answer(request.method, request.path, request.body, reply.status, reply.body)
        write = (
            request.method in ("POST", "PATCH", "PUT", "DELETE")
            and request.path.startswith("/v1.0/")
            and request.path != "/v1.0/$batch"
        )
        latency = self.write_latency if write and self.write_latency else self.latency
        if latency is not None:
            reply.delay += random.uniform(*latency)
        return reply

    def _handle(self, request: FakeRequest) -> FakeReply:
        from tests.fakes import graph_reports  # it builds on this module's helpers

        if request.path.startswith(graph_reports.DOWNLOAD_PREFIX):  # preauthenticated
            reply = graph_reports.download(self, request.path)
            self._record(
                request.method, request.path, request.target, request.headers, None, False, reply
            )
            return reply
        if request.path.startswith("/beta/"):
            path, target = request.path, request.target  # beta paths keep their prefix
        elif not request.path.startswith("/v1.0/") and request.path != "/v1.0":
            return self.identity.handle(request)
        else:
            path = request.path[len("/v1.0") :] or "/"
            target = request.target[len("/v1.0") :]
        body = _json_or_raw(request.body)
        token, why = self.identity.check(
            request.headers.get("authorization", ""), self.audience or request.host_url
        )
        if token is None:
            reply = _error(
                401,
                "InvalidAuthenticationToken",
                {
                    "empty": "Access token is empty.",
                    "expired": "Lifetime validation failed, the token is expired.",
                    "audience": "Access token validation failure. Invalid audience.",
                }.get(why, "IDX14100: JWT is not well formed, there are no dots (.)."),
            )
            self._record(request.method, path, target, request.headers, body, False, reply)
            return reply
        reply = self._dispatch(
            request.method, path, target, request.query, request.headers, body, request.host_url
        )
        self._record(request.method, path, target, request.headers, body, False, reply)
        return reply

    def _record(
        self,
        method: str,
        path: str,
        target: str,
        headers: Any,
        body: Any,
        in_batch: bool,
        reply: FakeReply,
    ) -> None:
        query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        entry = LoggedRequest(
            method,
            path,
            target,
            query,
            {k.lower(): v for k, v in dict(headers or {}).items()},
            body,
            in_batch,
            reply.status,
        )
        with self._lock:
            self._log.append(entry)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for injection in self._injections:
                if injection.method not in ("*", method) or not fnmatch.fnmatchcase(
                    path, injection.path
                ):
                    continue
                if injection.skip:
                    injection.skip -= 1
                    return None
                if injection.faults:
                    fault = injection.faults.popleft()
                    if not injection.faults:
                        self._injections.remove(injection)
                    return fault
        return None

    def _dispatch(
        self,
        method: str,
        path: str,
        target: str,
        query: Any,
        headers: Any,
        body: Any,
        host_url: str,
    ) -> FakeReply:
        fault = self._take_fault(method, path)
        delay = 0.0
        if fault is not None:
            if fault.status in (429, 503, 504):
                retry = (
                    {}
                    if fault.retry_after is None
                    else {"Retry-After": _seconds(fault.retry_after)}
                )
                if fault.status == 429:
                    return _error(429, "TooManyRequests", "Too many requests.", retry)
                if fault.status == 503:
                    return _error(503, "serviceNotAvailable", "Service Unavailable.", retry)
                return _error(504, "UnknownError", "Gateway Timeout.", retry)
            if fault.status == 401:
                return _error(
                    401,
                    "InvalidAuthenticationToken",
                    "Lifetime validation failed, the token is expired.",
                )
            if fault.status == 403:
                return _denied()
            if fault.malformed:
                return FakeReply(
                    200, b'{"@odata.context":"https://graph/$metadata","value":[{"id":'
                )
            if fault.reset == "before":
                return _DropConnection()
            delay = fault.delay
        if path == "/$batch" and method == "POST":
            reply = self._batch(body, host_url)
        else:
            reply = self._route(method, path, dict(query), body, host_url, dict(headers or {}))
        if fault is not None and fault.reset == "after":
            return _DropConnection()
        reply.delay += delay
        return reply

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        host_url: str,
        headers: dict[str, str] | None = None,
    ) -> FakeReply:
        from tests.fakes import graph_reports, graph_usage  # they build on this module

        parts = path.strip("/").split("/")
        is_write = method in ("POST", "PATCH", "PUT", "DELETE")
        if is_write and self._write_bucket is not None:
            with self._lock:
                wait = self._write_bucket.take()
            if wait:
                return _error(
                    429,
                    "TooManyRequests",
                    "Too many requests.",
                    {
                        "Retry-After": str(max(1, math.ceil(wait))),
                        "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{self.client_id}/"
                        f"{self.tenant_id}",
                        "x-ms-throttle-information": "WriteLimitExceeded",
                    },
                )
        licensing = graph_licences.route(self, method, parts, query, headers or {}, body, host_url)
        if licensing is not None:
            return licensing
        mailing = graph_mail.route(self, method, parts, headers or {}, body)
        if mailing is not None:
            return mailing
        match parts:
            case ["groups", group_id] if method == "GET":
                return self._need(_READ_GROUPS) or self._get_group(group_id, query)
            case ["groups", group_id, "members" | "transitiveMembers" as listing, *cast] if (
                method == "GET" and len(cast) <= 1
            ):
                return self._need(_READ_GROUPS) or self._list_members(
                    group_id, query, host_url, listing, cast[0] if cast else ""
                )
            case ["groups", group_id, "members", user_id, "$ref"] if method == "DELETE":
                return self._need(_WRITE_MEMBERS) or self._remove(group_id, user_id)
            case ["groups", group_id, "members", user_id] if method == "DELETE":
                return self._need(_DELETE_USERS) or self._delete_user(user_id)
            case ["groups", group_id, "members", "$ref"] if method == "POST":
                return self._need(_WRITE_MEMBERS) or self._add(group_id, body)
            case ["users", key] if method == "GET":
                return self._need(_READ_USERS) or self._get_user(key, query)
            case ["users", key, "manager"] if method == "GET":
                return self._need(_READ_USERS) or self._get_manager(key, query)
            case ["users"] if method == "GET" and "$filter" not in query:
                return self._need(_READ_USERS) or graph_usage.list_users(self, query, host_url)
            case ["users"] if method == "GET":
                return self._need(_READ_USERS) or self._find_users(query)
            case ["auditLogs", "signIns"] if method == "GET":
                return self._need(_READ_AUDIT) or graph_usage.sign_ins(
                    self, query, host_url, beta=False
                )
            case ["reports", function] if method == "GET":
                return graph_reports.report(self, function, host_url)
            case ["beta", "auditLogs", "signIns"] if method == "GET":
                return self._need(_READ_AUDIT) or graph_usage.sign_ins(
                    self, query, host_url, beta=True
                )
            case ["auditLogs", "directoryAudits"] if method == "GET":
                return self._need(_READ_AUDIT) or self._directory_audits(query, host_url)
        return _error(
            400, "BadRequest", f"Resource not found for the segment '{parts[-1] if parts else ''}'."
        )

    def _need(self, any_of: set[str]) -> FakeReply | None:
        return None if self.granted & any_of else _denied()

    # -- groups

    def _get_group(self, group_id: str, query: dict[str, str]) -> FakeReply:
        selected = _select(query, _GROUP_PROPERTIES, "group")
        if isinstance(selected, FakeReply):
            return selected
        with self._lock:
            group = self.groups.get(group_id)
            if group is None:
                return _not_found(group_id)
            data = {
                "id": group.id,
                "displayName": group.display_name,
                "groupTypes": list(group.group_types),
                "membershipRule": group.membership_rule,
                "onPremisesSyncEnabled": group.on_premises_sync_enabled,
                "securityEnabled": group.security_enabled,
                "mailEnabled": group.mail_enabled,
                "description": None,
                "assignedLicenses": [{"disabledPlans": [], "skuId": s} for s in group.licences],
            }
        return FakeReply(
            200, {"@odata.context": "$metadata#groups/$entity", **_pick(data, selected)}
        )

    def _list_members(
        self, group_id: str, query: dict[str, str], host_url: str, listing: str, cast: str
    ) -> FakeReply:
        """members or transitiveMembers, of every type or cast to users or groups, paged."""
        kind = _CASTS.get(cast, "") if cast else "directoryObject"
        if not kind:
            return _error(400, "BadRequest", f"Resource not found for the segment '{cast}'.")
        allowed = {"user": _USER_PROPERTIES, "group": _GROUP_PROPERTIES}.get(
            kind, _USER_PROPERTIES | _GROUP_PROPERTIES
        )
        selected = _select(query, allowed, kind)
        if isinstance(selected, FakeReply):
            return selected
        try:
            top = int(query.get("$top", "100"))
        except ValueError:
            top = 0
        if not 1 <= top <= 999:
            return _error(
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{query.get('$top')}'. Must be between 1 and 999 "
                "inclusive.",
            )
        offset = _offset(query["$skiptoken"]) if "$skiptoken" in query else 0
        size = min(top, self.page_size)
        with self._lock:
            if group_id not in self.groups:
                return _not_found(group_id)
            ids = self._member_ids(group_id, transitive=listing == "transitiveMembers")
            ids = [
                i for i in ids if kind == "directoryObject" or (i in self.users) == (kind == "user")
            ]
            more = offset + size < len(ids)
            values = [self._object_json(i, selected) for i in ids[offset : offset + size]]
        page: dict[str, Any] = {
            "@odata.context": f"{host_url}/v1.0/$metadata#{kind}s({','.join(selected or [])})",
            "value": values,
        }
        if more:
            link_query = {k: v for k, v in query.items() if k != "$skiptoken"}
            link_query["$skiptoken"] = _skiptoken(offset + size)
            page["@odata.nextLink"] = (
                f"{host_url}/v1.0/groups/{group_id}/{listing}{'/' + cast if cast else ''}?"
                + "&".join(f"{k}={quote(v, safe=',$')}" for k, v in link_query.items())
            )
        return FakeReply(200, page)

    def _member_ids(self, group_id: str, *, transitive: bool) -> list[str]:
        """Direct members, or every member at any depth once (cycles allowed, as in Entra)."""
        direct = [i for i in self.groups[group_id].members if i in self.users or i in self.groups]
        if not transitive:
            return direct
        found: dict[str, None] = {}
        pending = list(direct)
        while pending:
            member = pending.pop(0)
            if member in found or member == group_id:
                continue
            found[member] = None
            if member in self.groups:
                pending.extend(self.groups[member].members)
        return [i for i in found if i in self.users or i in self.groups]

    def _object_json(self, object_id: str, selected: list[str] | None) -> dict[str, Any]:
        if object_id in self.users:
            user = self._user_json(self.users[object_id], selected)
            return user if self.granted & _READ_USERS else graph_licences.nameless(user)
        group = self.groups[object_id]
        data = {"@odata.type": "#microsoft.graph.group", "id": group.id,
                "displayName": group.display_name, "groupTypes": list(group.group_types),
                "securityEnabled": group.security_enabled,
                "mailEnabled": group.mail_enabled}  # fmt: skip
        return {"@odata.type": data["@odata.type"], **_pick(data, selected)}

    def _remove(self, group_id: str, user_id: str) -> FakeReply:
        with self._lock:
            group = self.groups.get(group_id)
            if group is None:
                return _not_found(group_id)
            if user_id not in group.members:
                return _not_found(user_id)
            refused = self._refuse_change(group)
            if refused:
                return refused
            member = self.users.get(user_id)
            if member is not None and member.restricted:
                return _error(403, "Authorization_RequestDenied", _RESTRICTED_MESSAGE)
            del group.members[user_id]
            if self.licence_lag and group.licences:
                self._releasing.add((user_id, group_id))
        return FakeReply(204)

    def _add(self, group_id: str, body: Any) -> FakeReply:
        reference = body.get("@odata.id") if isinstance(body, dict) else None
        if not isinstance(reference, str) or "/directoryObjects/" not in reference:
            return _error(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'members' of resource 'Group'.",
            )
        user_id = unquote(reference.rsplit("/directoryObjects/", 1)[1])
        with self._lock:
            group = self.groups.get(group_id)
            if group is None:
                return _not_found(group_id)
            if user_id not in self.users:
                return _not_found(user_id)
            if user_id in group.members:
                return _error(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following "
                    "modified properties: 'members'.",
                )
            refused = self._refuse_change(group)
            if refused:
                return refused
            group.members[user_id] = None
            self._releasing.discard((user_id, group_id))
        return FakeReply(204)

    @staticmethod
    def _refuse_change(group: FakeGroup) -> FakeReply | None:
        if group.mail_enabled and "Unified" not in group.group_types:
            return _error(400, "Request_BadRequest", graph_licences.MAIL_ENABLED)
        if "DynamicMembership" in group.group_types:
            return _error(
                400,
                "Request_BadRequest",
                "Insufficient privileges to complete the operation: members of a group with "
                "dynamic membership cannot be changed.",
            )
        if group.on_premises_sync_enabled:
            return _error(
                400,
                "Request_BadRequest",
                "Unable to update the specified properties for on-premises mastered Directory "
                "Sync objects or objects currently undergoing migration.",
            )
        return None

    def _delete_user(self, user_id: str) -> FakeReply:
        """What Graph does with DELETE /groups/{g}/members/{u} (no /$ref): deletes the user."""
        with self._lock:
            if user_id not in self.users:
                return _not_found(user_id)
            del self.users[user_id]
            for group in self.groups.values():
                group.members.pop(user_id, None)
            self.deleted_users.append(user_id)
        return FakeReply(204)

    # -- users

    def _user_json(self, user: FakeUser, selected: list[str] | None) -> dict[str, Any]:
        states = [
            {
                "skuId": sku,
                "assignedByGroup": None,
                "state": "Active",
                "error": "None",
                "disabledPlans": user.disabled_plans.get(sku, []),
                "lastUpdatedDateTime": "2025-01-01T00:00:00Z",
            }
            for sku in user.direct_licences
        ]
        for group in self.groups.values():
            if user.id in group.members or (user.id, group.id) in self._releasing:
                states.extend(
                    {
                        "skuId": sku,
                        "assignedByGroup": group.id,
                        "state": "Active",
                        "error": "None",
                        "disabledPlans": [],
                        "lastUpdatedDateTime": "2025-01-01T00:00:00Z",
                    }
                    for sku in group.licences
                )
        data = {
            "@odata.type": "#microsoft.graph.user",
            "id": user.id,
            "userPrincipalName": user.upn,
            "mail": user.mail,
            "displayName": user.display_name,
            "onPremisesSamAccountName": user.sam_account_name,
            "onPremisesSecurityIdentifier": user.sid,
            # null (200) when the app may not read it, as Graph does (and nameless() below)
            "accountEnabled": user.enabled,
            "employeeLeaveDateTime": _iso(user.leaves) if self.granted & _READ_LIFECYCLE else None,
            "licenseAssignmentStates": states,
            # What the user holds, one entry per SKU however many sources give it.
            "assignedLicenses": [
                {"skuId": sku, "disabledPlans": user.disabled_plans.get(sku, [])}
                for sku in dict.fromkeys(st["skuId"] for st in states if st["state"] == "Active")
            ],
            "createdDateTime": _iso(user.created),
        }
        return {"@odata.type": data["@odata.type"], **_pick(data, selected)}

    def _find_user(self, key: str) -> FakeUser | None:
        lowered = key.lower()
        return self.users.get(key) or next(
            (u for u in self.users.values() if u.upn.lower() == lowered), None
        )

    def _get_user(self, key: str, query: dict[str, str]) -> FakeReply:
        selected = _select(query, _USER_PROPERTIES, "user")
        if isinstance(selected, FakeReply):
            return selected
        with self._lock:
            user = self._find_user(key)
            if user is None:
                return _not_found(key)
            return FakeReply(200, self._user_json(user, selected))

    def _get_manager(self, key: str, query: dict[str, str]) -> FakeReply:
        """GET /users/{id}/manager: a directoryObject with its @odata.type, or Graph's 404 when
        the user is unknown or has no manager."""
        selected = _select(query, _USER_PROPERTIES, "directoryObject")
        if isinstance(selected, FakeReply):
            return selected
        with self._lock:
            user = self._find_user(key)
            if user is None:
                return _not_found(key)
            manager = self.users.get(user.manager) if user.manager else None
            if manager is None:
                return _not_found("manager")
            return FakeReply(
                200,
                {
                    "@odata.context": "$metadata#directoryObjects/$entity",
                    **self._user_json(manager, selected),
                },
            )

    def _find_users(self, query: dict[str, str]) -> FakeReply:
        selected = _select(query, _USER_PROPERTIES, "user")
        if isinstance(selected, FakeReply):
            return selected
        text = query.get("$filter", "")
        if not _USER_FILTER.match(text):
            return _error(400, "BadRequest", f"Invalid filter clause: {text}")
        clauses = [(p, v.replace("''", "'")) for p, v in re.findall(_CLAUSE, text)]
        if any(p not in ("userPrincipalName", "mail", "id") for p, _ in clauses):
            return _error(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter.")
        with self._lock:
            found = [
                self._user_json(u, selected)
                for u in self.users.values()
                if any(
                    (getattr(u, {"userPrincipalName": "upn"}.get(p, p)) or "").lower() == v.lower()
                    for p, v in clauses
                )
            ]
        return FakeReply(200, {"@odata.context": "$metadata#users", "value": found})

    # -- directory audit log

    def _directory_audits(self, query: dict[str, str], host_url: str) -> FakeReply:
        """GET /auditLogs/directoryAudits: $filter, $top and $skiptoken only (no $select)."""
        if "$select" in query:
            return _error(400, "BadRequest", "Query option 'Select' is not allowed.")
        text = query.get("$filter", "")
        tests: list[Any] = []
        for clause in text.split(" and ") if text else []:
            found = _AUDIT_CLAUSE.match(clause.strip())
            if not found:
                return _error(400, "BadRequest", f"Invalid filter clause: {text}")
            activity, _, target, operator, when = found.groups()
            if activity is not None:
                name = activity.replace("''", "'")
                tests.append(lambda a, name=name: a.activity == name)
            elif target is not None:
                wanted = target.replace("''", "'")
                tests.append(lambda a, wanted=wanted: wanted in (a.user_id, a.group_id))
            else:
                try:
                    bound = datetime.fromisoformat(when.replace("Z", "+00:00"))
                except ValueError:
                    return _error(400, "BadRequest", f"Invalid DateTimeOffset: {when}")
                if operator == "ge":
                    tests.append(lambda a, bound=bound: a.at >= bound)
                else:
                    tests.append(lambda a, bound=bound: a.at <= bound)
        top = int(query.get("$top", "100"))
        if not 1 <= top <= 999:
            return _error(400, "BadRequest", "Invalid page size: $top must be 1 to 999.")
        size = min(top, self.audit_page_size)
        offset = _offset(query["$skiptoken"]) if "$skiptoken" in query else 0
        with self._lock:
            matching = sorted(
                (a for a in self.audits if all(test(a) for test in tests)),
                key=lambda a: a.at,
                reverse=True,  # newest first, as Graph lists them
            )
            values = [self._audit_json(a) for a in matching[offset : offset + size]]
        page: dict[str, Any] = {
            "@odata.context": f"{host_url}/v1.0/$metadata#auditLogs/directoryAudits",
            "value": values,
        }
        if offset + size < len(matching):
            link_query = {k: v for k, v in query.items() if k != "$skiptoken"}
            link_query["$skiptoken"] = _skiptoken(offset + size)
            page["@odata.nextLink"] = f"{host_url}/v1.0/auditLogs/directoryAudits?" + "&".join(
                f"{k}={quote(v, safe=',$:')}" for k, v in link_query.items()
            )
        return FakeReply(200, page)

    def _audit_json(self, audit: FakeAudit) -> dict[str, Any]:
        """The shape of a real "Add member to group" entry (types in graph-v1.0-types.json)."""
        user = self.users.get(audit.user_id)
        group = self.groups.get(audit.group_id)
        return {
            "id": f"Directory_{audit.id}",
            "category": "GroupManagement",
            "correlationId": str(uuid.uuid4()),
            "result": "success",
            "resultReason": "",
            "activityDisplayName": audit.activity,
            "activityDateTime": _iso(audit.at),
            "loggedByService": "Core Directory",
            "operationType": "Assign",
            "initiatedBy": {"app": None, "user": {"id": str(uuid.uuid4()),
                                                   "userPrincipalName": "admin@contoso.test"}},
            "targetResources": [
                {"id": audit.user_id, "displayName": None, "type": "User",
                 "userPrincipalName": user.upn if user else None, "modifiedProperties": []},
                {"id": audit.group_id, "displayName": group.display_name if group else None,
                 "type": "Group", "modifiedProperties": []},
            ],
            "additionalDetails": [],
        }  # fmt: skip

    # -- JSON batching

    def _batch(self, body: Any, host_url: str) -> FakeReply:
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > 20:
            return _error(
                400, "BadRequest", "Number of requests in the batch exceeds the maximum of 20."
            )
        ids = [str(item.get("id", "")) for item in items if isinstance(item, dict)]
        if len(ids) != len(items) or "" in ids or len(set(ids)) != len(ids):
            return _error(400, "BadRequest", "Batch request contains duplicate or missing ids.")
        responses = []
        delay = 0.0
        for item in items:
            reply = self._batch_item(item, host_url)
            if isinstance(reply, _DropConnection):
                return reply  # a reset inside a $batch drops the whole batch's connection
            delay += reply.delay
            response: dict[str, Any] = {
                "id": str(item["id"]),
                "status": reply.status,
                "headers": dict(reply.headers),
            }
            if reply.body is not None and not isinstance(reply.body, bytes):
                response["body"] = reply.body
                response["headers"].setdefault("Content-Type", "application/json")
            responses.append(response)
        responses.reverse()  # Graph may answer in any order: clients must match by id
        return FakeReply(200, {"responses": responses}, delay=delay)

    def _batch_item(self, item: dict[str, Any], host_url: str) -> FakeReply:
        method = str(item.get("method", "")).upper()
        url = str(item.get("url", ""))
        if url.startswith("http"):
            reply = _error(400, "BadRequest", "Batch request urls must be relative.")
            self._record(method, url, url, {}, None, True, reply)
            return reply
        target = url if url.startswith("/") else "/" + url
        parts = urlsplit(target)
        path = unquote(parts.path)
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        body = item.get("body")
        if body is not None and "content-type" not in headers:
            reply = _error(
                400, "BadRequest", "Content-Type header is required for requests with a body."
            )
        else:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            reply = self._dispatch(method, path, target, query, headers, body, host_url)
        self._record(method, path, target, headers, body, True, reply)
        return reply


_RESTRICTED_MESSAGE = (
    "Insufficient privileges to complete the operation. Target object is a member of a restricted "
    "management administrative unit and can only be modified by administrators scoped to that "
    "administrative unit."
)


def _denied() -> FakeReply:
    return _error(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json_or_raw(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def _select(query: dict[str, str], allowed: set[str], kind: str) -> list[str] | FakeReply | None:
    """The $select list (None = all); 400 for a property the type does not have."""
    text = query.get("$select")
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        return _error(
            400,
            "BadRequest",
            f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.{kind}'.",
        )
    return names


def _pick(data: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
    if selected is None:
        return {k: v for k, v in data.items() if not k.startswith("@")}
    return {k: data[k] for k in ["id", *selected] if k in data}


@pytest.fixture
def fake_graph() -> Iterator[FakeGraph]:
    """A started FakeGraph (small pages are a knob: fake_graph.page_size = 3)."""
    with FakeGraph() as graph:
        yield graph
