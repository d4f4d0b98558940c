"""Microsoft Graph (Entra ID): the licensing-group Directory and the `entra-signins` UsageSource.

One GraphClient per process does the HTTP: an app-only token from msal (client secret or
certificate read through the Secrets port; msal caches it and fetches a new one five minutes
before expiry), one pooled requests.Session, `x-ms-throttle-priority: low` on every request, and
retries that honour Retry-After (429/503/504 and other 5xx, dropped connections, malformed JSON)
within a bounded number of attempts and a time budget, then TransientError(retry_after) so the
queue retries later. Errors are classified by HTTP status and Graph error code, never by the
wording of a message (one documented exception: "already a member" on add).

Application permissions (admin consent): GroupMember.ReadWrite.All (read groups and members,
remove and add members), User.Read.All (resolve users by UPN or mail; licence states for the seat
check of reclaim.adapters.graph_licences), AuditLog.Read.All (+ Entra ID P1/P2) for the entra-signins usage source.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

import msal
import requests
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from requests.adapters import HTTPAdapter

from reclaim.adapters.graph_errors import WRITE_MEMBERS, denied
from reclaim.adapters.http_retry import retry_after_seconds
from reclaim.domain.model import Member, UsageRow, User, normalise_key
from reclaim.domain.policy import MatchOn, Policy
from reclaim.errors import (
    ConfigurationError,
    DirectoryOutage,
    GroupRefused,
    PermanentError,
    ReclaimError,
    SourceError,
    TransientError,
    UserNotFound,
)
from reclaim.ports import (
    AddOutcome,
    GroupInfo,
    RemovalOutcome,
    RemovalResult,
    Secrets,
    UsageExport,
)

if TYPE_CHECKING:
    from reclaim.settings import Settings

log = logging.getLogger(__name__)

# The application permission each kind of call needs; named in ConfigurationError on 401/403.
READ_GROUPS = "GroupMember.Read.All (or GroupMember.ReadWrite.All)"
READ_USERS = "User.Read.All"
READ_SIGNINS = "AuditLog.Read.All (the tenant also needs Entra ID P1 or P2)"

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
BATCH_LIMIT = 20  # Graph's JSON batching takes at most 20 requests per $batch
MEMBERS_PAGE = 999  # the largest $top Graph allows for directory collections
SIGNINS_PAGE = 1000  # the largest page of /auditLogs/signIns

# Authority hosts msal can validate through instance discovery; any other host (a test fake, an
# on-premises proxy) is used as given with instance_discovery=False.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)

USER_FIELDS = (
    "id,userPrincipalName,mail,displayName,onPremisesSamAccountName,onPremisesSecurityIdentifier"
)
GROUP_FIELDS = (
    "id,displayName,groupTypes,membershipRule,onPremisesSyncEnabled,securityEnabled,"
    "assignedLicenses"
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


# ---- paths and OData ---------------------------------------------------------------------------


def segment(value: str) -> str:
    """An id as one path segment: `/`, `?`, `#` and `..` cannot change which resource is hit."""
    if not value:
        raise ValueError("an empty id cannot name a Graph resource")
    return quote(value, safe="")


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, inner single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def query(**params: str | int) -> str:
    """`$select=...&$top=...` from select=..., top=...; values percent-encoded."""
    return "&".join(f"${name}={quote(str(value), safe=',()=:$')}" for name, value in params.items())


def member_ref_path(group: str, object_id: str) -> str:
    """The DELETE path that removes a member. Without /$ref Graph deletes the user object."""
    return f"/groups/{segment(group)}/members/{segment(object_id)}/$ref"


def _user_lookup_path(identifier: str) -> str:
    if _GUID.match(identifier):
        return f"/users/{segment(identifier)}?{query(select=USER_FIELDS)}"
    literal = odata_string(identifier)
    return f"/users?{query(filter=f'userPrincipalName eq {literal} or mail eq {literal}', select=USER_FIELDS)}"


def _user_from(item: Mapping[str, Any]) -> User:
    return User(
        object_id=item.get("id") or "",
        upn=item.get("userPrincipalName") or "",
        mail=item.get("mail") or "",
        sam_account_name=item.get("onPremisesSamAccountName") or "",
        sid=item.get("onPremisesSecurityIdentifier") or "",
        display_name=item.get("displayName") or "",
    )


# ---- replies and retries -----------------------------------------------------------------------


@dataclass(frozen=True)
class GraphReply:
    """One Graph answer (top-level or an item of a $batch); body is parsed JSON or None."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    # An earlier attempt of the same call got no answer or a 5xx: a write may have been applied.
    after_unanswered: bool = False

    @property
    def error_code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code") or "") if isinstance(error, dict) else ""

    @property
    def error_message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("message") or "") if isinstance(error, dict) else ""

    @property
    def retry_after(self) -> float | None:
        """Seconds from Retry-After (delta-seconds or an HTTP date), None when absent."""
        value = next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)
        return retry_after_seconds(None if value is None else str(value))

    def describe(self) -> str:
        return f"{self.status} {self.error_code}".strip()


@dataclass(frozen=True)
class RetryPolicy:
    """How long a call keeps trying before TransientError hands the work back to the queue."""

    max_attempts: int = 5
    budget: float = 60.0  # seconds from the first attempt; a longer Retry-After ends it at once
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """Exponential, with jitter between half and the whole step so workers spread out."""
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return step * (0.5 + 0.5 * self.jitter())


class WritePacer:
    """After Graph throttles a write, every thread's writes go one per 1/rate seconds (the first
    after the Retry-After) until `quiet` seconds pass without another 429.

    Graph's write budget is 3,000 per 150 s per app and tenant (20/s). Without pacing, each worker
    thread learns the bucket is empty from its own 429; with it, the process spends the budget
    evenly and keeps its requests per removal near 1.
    """

    def __init__(
        self,
        rate: float = 20.0,
        quiet: float = 150.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.quiet = quiet
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0  # the next free slot
        self._engaged_until = 0.0

    def throttled(self, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            self._engaged_until = now + self.quiet
            self._next = max(self._next, now + (retry_after or 0.0))

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now >= self._engaged_until:
                return
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class _RetryableFault(Exception):
    """A failure worth another attempt that carries no HTTP status (connection, bad JSON)."""


# ---- tokens ------------------------------------------------------------------------------------


def certificate_credential(value: str, name: str) -> dict[str, str]:
    """msal's client_credential from a Key Vault certificate secret: PEM, or base64 PKCS#12."""
    if "-----BEGIN" not in value:
        value = _pkcs12_to_pem(value, name)
    blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(value)]
    keys = [b for kind, b in blocks if kind in ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")]
    certificates = [b for kind, b in blocks if kind == "CERTIFICATE"]
    if not keys or not certificates:
        raise ConfigurationError(
            f"secret {name!r} must hold a certificate with its unencrypted private key (PEM, or "
            "the PKCS#12 Key Vault keeps for a certificate)"
        )
    # msal derives the SHA-256 thumbprint from the certificate and sends it (x5t#S256) and the
    # chain (x5c) in the assertion header.
    return {"private_key": keys[0], "public_certificate": certificates[0]}


def _pkcs12_to_pem(value: str, name: str) -> str:
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(
            base64.b64decode(value, validate=True), None
        )
    except (ValueError, binascii.Error) as error:
        raise ConfigurationError(
            f"secret {name!r} is neither PEM nor base64 PKCS#12 without a password"
        ) from error
    if key is None or certificate is None:
        raise ConfigurationError(f"secret {name!r} holds no private key and certificate")
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    return key_pem + certificate.public_bytes(Encoding.PEM).decode()


class _AppToken:
    """App-only tokens from msal's cache; thread-safe; re-reads the credential after rotation."""

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        scope: str,
        load_credential: Callable[[], str | dict[str, str]],
        session: requests.Session,
        timeout: float,
    ) -> None:
        self._authority = authority
        self._client_id = client_id
        self._scope = scope
        self._load_credential = load_credential
        self._session = session
        self._timeout = timeout
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self._credential: str | dict[str, str] | None = None

    def _build(self, credential: str | dict[str, str]) -> msal.ConfidentialClientApplication:
        host = (urlsplit(self._authority).hostname or "").lower()
        try:
            app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=credential,
                authority=self._authority,
                instance_discovery=host in MICROSOFT_AUTHORITY_HOSTS,
                http_client=self._session,
                timeout=self._timeout,
            )
        except requests.RequestException as error:
            raise TransientError(
                f"the authority {self._authority} could not be reached ({type(error).__name__})"
            ) from error
        except ValueError as error:  # msal: the authority's OpenID configuration was refused
            raise ConfigurationError(
                f"the authority {self._authority} did not accept the tenant: check "
                f"RECLAIM_AUTHORITY_HOST and RECLAIM_TENANT_ID ({str(error).splitlines()[0][:200]})"
            ) from error
        self._credential = credential
        return app

    def get(self) -> str:
        with self._lock:
            if self._app is None:
                self._app = self._build(self._load_credential())
            result = self._acquire()
            if result.get("error") == "invalid_client":
                # The credential may have been rotated in Key Vault: read it again, retry once.
                fresh = self._load_credential()
                if fresh != self._credential:
                    self._app = self._build(fresh)
                    result = self._acquire()
        token = result.get("access_token")
        if token:
            return str(token)
        raise self._token_error(result)

    def _acquire(self) -> dict[str, Any]:
        assert self._app is not None
        try:
            return self._app.acquire_token_for_client(scopes=[self._scope])
        except requests.RequestException as error:
            raise TransientError(
                f"the token endpoint of {self._authority} could not be reached "
                f"({type(error).__name__})"
            ) from error

    def _token_error(self, result: Mapping[str, Any]) -> ReclaimError:
        error = str(result.get("error") or "unknown_error")
        codes = result.get("error_codes") or []
        aadsts = f"AADSTS{codes[0]}" if codes else ""
        where = f"token request to {self._authority} failed: {error} {aadsts}".strip()
        if error in ("temporarily_unavailable", "server_error"):
            return TransientError(where)
        return ConfigurationError(
            f"{where}: check RECLAIM_CLIENT_ID, RECLAIM_TENANT_ID and the client secret or "
            "certificate named by RECLAIM_GRAPH_CLIENT_SECRET_NAME / RECLAIM_GRAPH_CERTIFICATE_NAME"
        )

    def forget(self) -> None:
        """Drop cached tokens so the next get() asks the token endpoint for a new one."""
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()


# ---- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One request of a $batch; url is relative to the version root (/groups/...)."""

    method: str
    url: str
    body: Any = None


class GraphClient:
    """Graph over one pooled session; safe to share between threads."""

    def __init__(
        self,
        *,
        base_url: str,
        authority: str,
        client_id: str,
        load_credential: Callable[[], str | dict[str, str]],
        ca_bundle: str = "",
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        pool_size: int = 16,
        write_pacer: WritePacer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.retry = retry or RetryPolicy()
        self.write_pacer = write_pacer or WritePacer(clock=self.retry.clock, sleep=self.retry.sleep)
        self._timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not override verify
        self.session.verify = ca_bundle or True
        self.session.mount(
            "https://", HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        )
        self._token = _AppToken(
            authority=authority,
            client_id=client_id,
            scope=f"{self.origin}/.default",  # e.g. https://graph.microsoft.com/.default
            load_credential=load_credential,
            session=self.session,
            timeout=timeout[1],
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, secrets: Secrets, retry: RetryPolicy | None = None
    ) -> GraphClient:
        missing = settings.graph_missing()
        if missing:
            raise ConfigurationError(f"the Entra ID (Graph) path needs {', '.join(missing)}")

        def load_credential() -> str | dict[str, str]:
            # A certificate wins when both are named: it is the stronger credential.
            if settings.graph_certificate_name:
                name = settings.graph_certificate_name
                return certificate_credential(secrets.get(name), name)
            return secrets.get(settings.graph_client_secret_name)

        return cls(
            base_url=settings.graph_base_url,
            authority=f"{settings.authority_host}/{settings.tenant_id}",
            client_id=settings.client_id,
            load_credential=load_credential,
            ca_bundle=settings.ca_bundle,
            retry=retry,
            # RECLAIM_GRAPH_TIMEOUT bounds each request; the retry budget bounds the call.
            timeout=(min(10.0, settings.graph_timeout), float(settings.graph_timeout)),
        )

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://"):
            # nextLinks are absolute; never send the token to a host other than Graph's.
            if not path_or_url.startswith(self.origin + "/"):
                raise SourceError(f"Graph returned a link to another host: {path_or_url[:80]}")
            return path_or_url
        return self.base_url + path_or_url

    def call(
        self, method: str, path: str, *, permission: str, what: str, json: Any = None
    ) -> GraphReply:
        """One request, retried while worth it; 401/403 raise ConfigurationError naming
        `permission`; any other final status is returned for the caller to classify."""
        policy = self.retry
        deadline = policy.clock() + policy.budget
        renewed_token = False
        unanswered = False  # an attempt that may have done the work without our hearing of it
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self._send(method, path, json)
            except _RetryableFault as fault:
                retry_after, reason = None, str(fault)
                unanswered = outage = True
            else:
                if (
                    reply.status == 401
                    and reply.error_code == "InvalidAuthenticationToken"
                    and not renewed_token
                ):
                    # Expired or revoked mid-run although msal still holds it: one new token.
                    renewed_token = True
                    attempt -= 1
                    self._token.forget()
                    continue
                if reply.status in (401, 403):
                    raise denied(reply, permission, what)
                if reply.status not in RETRYABLE_STATUSES:
                    return replace(reply, after_unanswered=unanswered) if unanswered else reply
                retry_after, reason = reply.retry_after, reply.describe()
                outage = reply.status != 429  # throttling is not the directory being down
                unanswered = unanswered or outage
            delay = retry_after if retry_after is not None else policy.backoff(attempt)
            if attempt >= policy.max_attempts or delay > deadline - policy.clock():
                raise (DirectoryOutage if outage else TransientError)(
                    f"Graph {what}: {reason} after {attempt} attempt(s); try again later",
                    retry_after=delay,
                    unsent=not unanswered,  # every attempt was answered "throttled": none applied
                )
            log.warning("Graph %s: %s; retrying in %.1f s", what, reason, delay)
            policy.sleep(delay)

    def _send(self, method: str, path: str, body: Any) -> GraphReply:
        try:
            token = self._token.get()
        except TransientError as error:  # no token, so nothing was sent
            raise TransientError(str(error), error.retry_after, unsent=True) from error
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "x-ms-throttle-priority": "low",  # background work: throttled before interactive use
        }
        write = method != "GET" and path != "/$batch"
        if write:
            self.write_pacer.wait()
        try:
            response = self.session.request(
                method, self.url(path), headers=headers, json=body, timeout=self._timeout
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise _RetryableFault(f"connection failed ({type(error).__name__})") from error
        if write and response.status_code == 429:
            self.write_pacer.throttled(retry_after_seconds(response.headers.get("Retry-After")))
        parsed = None
        if response.content:
            try:
                parsed = response.json()
            except ValueError as error:
                if response.ok:
                    raise _RetryableFault(
                        f"answered {response.status_code} with malformed JSON"
                    ) from error
                parsed = None  # an error page that is not JSON: classified by status alone
        return GraphReply(response.status_code, response.headers, parsed)

    def batch(self, items: Sequence[BatchItem], *, permission: str, what: str) -> list[GraphReply]:
        """Run `items` through POST /$batch, 20 at a time; replies in the order of `items`.

        Items answered 429/5xx are sent again (only those), after the longest Retry-After among
        them or a backoff, within the retry policy; an item still throttled at the end keeps its
        429 reply for the caller to turn into TransientError.
        """
        replies: list[GraphReply] = []
        for start in range(0, len(items), BATCH_LIMIT):
            replies.extend(self._batch_chunk(items[start : start + BATCH_LIMIT], permission, what))
        return replies

    def _batch_chunk(
        self, items: Sequence[BatchItem], permission: str, what: str
    ) -> list[GraphReply]:
        policy = self.retry
        deadline = policy.clock() + policy.budget
        replies: dict[int, GraphReply] = {}
        pending = list(range(len(items)))
        attempt = 0
        while pending:
            attempt += 1
            requests_json = [_batch_request(str(i), items[i]) for i in pending]
            outer = self.call(
                "POST",
                "/$batch",
                json={"requests": requests_json},
                permission=permission,
                what=what,
            )
            answered = _batch_responses(outer, what)
            throttled: list[int] = []
            waits: list[float] = []
            for i in pending:
                reply = answered.get(str(i)) or GraphReply(503)  # unanswered: try it again
                replies[i] = reply
                if reply.status in RETRYABLE_STATUSES:
                    throttled.append(i)
                    if reply.retry_after is not None:
                        waits.append(reply.retry_after)
            if not throttled:
                break
            delay = max(waits) if waits else policy.backoff(attempt)
            if attempt >= policy.max_attempts or delay > deadline - policy.clock():
                break
            log.warning(
                "Graph %s: %d of %d batch items throttled; retrying them in %.1f s",
                what,
                len(throttled),
                len(pending),
                delay,
            )
            policy.sleep(delay)
            pending = throttled
        return [replies[i] for i in range(len(items))]


def _batch_request(request_id: str, item: BatchItem) -> dict[str, Any]:
    request: dict[str, Any] = {
        "id": request_id,
        "method": item.method,
        "url": item.url,
        "headers": {"x-ms-throttle-priority": "low"},
    }
    if item.body is not None:
        request["body"] = item.body
        request["headers"]["Content-Type"] = "application/json"  # Graph requires it with a body
    return request


def _batch_responses(outer: GraphReply, what: str) -> dict[str, GraphReply]:
    if outer.status != 200:
        raise PermanentError(f"Graph refused the $batch for {what} ({outer.describe()})")
    responses = outer.body.get("responses") if isinstance(outer.body, dict) else None
    if not isinstance(responses, list):
        raise TransientError(f"Graph answered the $batch for {what} without a responses list")
    answered: dict[str, GraphReply] = {}
    for response in responses:
        if isinstance(response, dict) and "id" in response:
            answered[str(response["id"])] = GraphReply(
                int(response.get("status") or 0),
                response.get("headers") or {},
                response.get("body"),
            )
    return answered


def _final_throttle(reply: GraphReply, what: str) -> TransientError | None:
    if reply.status in RETRYABLE_STATUSES:
        return TransientError(f"Graph {what}: {reply.describe()}", retry_after=reply.retry_after)
    return None


# One client per (settings, secrets) so the directory and the usage source share a token and a
# connection pool.
_shared_lock = threading.Lock()
_shared: dict[tuple[Settings, int], tuple[Secrets, GraphClient]] = {}


def shared_client(settings: Settings, secrets: Secrets) -> GraphClient:
    key = (settings, id(secrets))
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None or entry[0] is not secrets:
            entry = (secrets, GraphClient.from_settings(settings, secrets))
            _shared[key] = entry
        return entry[1]


# ---- the directory -----------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class BulkOutcome(Generic[T]):
    """What happened to one user of a bulk operation: an outcome, or the error for that user."""

    user: User
    outcome: T | None = None
    error: ReclaimError | None = None


class GraphDirectory:
    """reclaim.ports.Directory for Entra ID groups with assigned membership."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> GraphDirectory:
        return cls(shared_client(settings, secrets))

    # -- groups and members

    def check_group(self, group: str) -> GroupInfo:
        """Refuse groups whose members reclaim cannot (or must not) remove in the cloud."""
        path = f"/groups/{segment(group)}?{query(select=GROUP_FIELDS)}"
        reply = self._client.call("GET", path, permission=READ_GROUPS, what=f"read group {group}")
        if reply.status == 404 or (
            reply.status == 400 and reply.error_code == "Request_BadRequest"
        ):
            raise GroupRefused(
                f"Entra group {group!r} was not found ({reply.describe()}): the policy's "
                "directory.group must be the group's object id in this tenant"
            )
        data = self._expect_object(reply, f"read group {group}")
        name = data.get("displayName") or group
        if "DynamicMembership" in (data.get("groupTypes") or []):
            raise GroupRefused(
                f"Entra group {name!r} ({group}) has dynamic membership: its members cannot be "
                "removed. Reclaim from an assigned-membership licensing group instead, or change "
                "the group's membership rule"
            )
        if data.get("onPremisesSyncEnabled"):
            raise GroupRefused(
                f"Entra group {name!r} ({group}) is synced from on-premises Active Directory and "
                "cannot be changed in the cloud: use directory kind 'ad' (LDAP) or "
                "'nexthink-remote-action' with the AD group instead"
            )
        return GroupInfo(id=str(data.get("id") or group), display_name=str(name))

    def members(self, group: str) -> Iterator[Member]:
        """Every user member, page by page (999 per request); a failure part-way raises
        SourceError so no partial membership is ever acted on."""
        what = f"list members of group {group}"
        path: str | None = (
            f"/groups/{segment(group)}/members/microsoft.graph.user?"
            f"{query(select=USER_FIELDS, top=MEMBERS_PAGE)}"
        )
        for item in self._pages(path, READ_GROUPS, what, group):
            yield Member(user=_user_from(item))

    def _pages(
        self, path: str | None, permission: str, what: str, group: str
    ) -> Iterator[dict[str, Any]]:
        """The objects of every page from `path` on, following nextLink; a failure part-way
        raises SourceError, so nothing partial is acted on."""
        try:
            while path:
                reply = self._client.call("GET", path, permission=permission, what=what)
                if reply.status == 404:
                    raise GroupRefused(f"Entra group {group!r} was not found ({reply.describe()})")
                page = self._expect_object(reply, what)
                values = page.get("value")
                if not isinstance(values, list):
                    raise SourceError(f"Graph {what}: a page without a value list")
                yield from (v for v in values if isinstance(v, dict))
                path = page.get("@odata.nextLink")
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed part-way, nothing is acted on: {error}") from error

    # -- one user

    def remove(self, group: str, user: User, **_: str) -> RemovalResult:
        """DELETE the membership reference: one request. Whether a seat was freed is checked
        minutes later, after licence processing (reclaim.adapters.graph_licences)."""
        object_id = self._object_id(user)
        reply = self._client.call(
            "DELETE",
            member_ref_path(group, object_id),
            permission=WRITE_MEMBERS,
            what=f"remove {user.label} from group {group}",
        )
        return _removal_result(reply, group, user)

    def add(self, group: str, user: User) -> AddOutcome:
        object_id = self._object_id(user)
        reply = self._client.call(
            "POST",
            f"/groups/{segment(group)}/members/$ref",
            json=self._reference(object_id),
            permission=WRITE_MEMBERS,
            what=f"add {user.label} to group {group}",
        )
        return _add_outcome(reply, group, user)

    # -- many users

    def resolve(self, identifiers: Iterable[str]) -> dict[str, User]:
        """Users by UPN, mail or object id, looked up through $batch (20 per request);
        identifiers Entra ID does not know are absent from the result."""
        wanted = list(dict.fromkeys(i.strip() for i in identifiers if i and i.strip()))
        replies = self._client.batch(
            [BatchItem("GET", _user_lookup_path(i)) for i in wanted],
            permission=READ_USERS,
            what="resolve users",
        )
        found: dict[str, User] = {}
        for identifier, reply in zip(wanted, replies, strict=True):
            user = self._lookup_result(identifier, reply)
            if user is not None:
                found[identifier] = user
        return found

    def remove_many(self, group: str, users: Sequence[User]) -> list[BulkOutcome[RemovalResult]]:
        """Remove several users through $batch; one outcome per user, in order."""

        def classify(reply: GraphReply, user: User) -> RemovalResult:
            return _removal_result(reply, group, user)

        return self._bulk(
            group,
            users,
            lambda object_id: BatchItem("DELETE", member_ref_path(group, object_id)),
            classify,
            "remove members",
        )

    def add_many(self, group: str, users: Sequence[User]) -> list[BulkOutcome[AddOutcome]]:
        """Add several users back through $batch (bulk restore); one outcome per user."""

        def classify(reply: GraphReply, user: User) -> AddOutcome:
            return _add_outcome(reply, group, user)

        return self._bulk(
            group,
            users,
            lambda object_id: BatchItem(
                "POST", f"/groups/{segment(group)}/members/$ref", self._reference(object_id)
            ),
            classify,
            "add members",
        )

    def _bulk(
        self,
        group: str,
        users: Sequence[User],
        request_for: Callable[[str], BatchItem],
        classify: Callable[[GraphReply, User], T],
        what: str,
    ) -> list[BulkOutcome[T]]:
        resolved = self.resolve(u.upn or u.mail for u in users if not u.object_id)
        outcomes: list[BulkOutcome[T] | None] = [None] * len(users)
        to_send: list[int] = []
        ids: list[str] = []
        for index, user in enumerate(users):
            object_id = user.object_id or (resolved.get(user.upn or user.mail) or User()).object_id
            if object_id:
                to_send.append(index)
                ids.append(object_id)
            else:
                outcomes[index] = BulkOutcome(
                    user, error=UserNotFound(f"Entra ID has no user {user.label}")
                )
        replies = self._client.batch(
            [request_for(i) for i in ids], permission=WRITE_MEMBERS, what=f"{what} of {group}"
        )
        for index, reply in zip(to_send, replies, strict=True):
            user = users[index]
            if reply.status in (401, 403):
                raise denied(reply, WRITE_MEMBERS, f"{what} of group {group}")
            try:
                outcomes[index] = BulkOutcome(user, outcome=classify(reply, user))
            except ReclaimError as error:
                outcomes[index] = BulkOutcome(user, error=error)
        return [o for o in outcomes if o is not None]

    # -- helpers

    def _object_id(self, user: User) -> str:
        if user.object_id:
            return user.object_id
        identifier = user.upn or user.mail
        if not identifier:
            raise UserNotFound(
                f"user {user.label or '(no identifier)'} has no object id, UPN or mail"
            )
        reply = self._client.call(
            "GET", _user_lookup_path(identifier), permission=READ_USERS, what=f"find {identifier}"
        )
        found = self._lookup_result(identifier, reply)
        if found is None:
            raise UserNotFound(f"Entra ID has no user with UPN or mail {identifier}")
        return found.object_id

    def _lookup_result(self, identifier: str, reply: GraphReply) -> User | None:
        if reply.status == 404:
            return None
        if reply.status in (401, 403):
            raise denied(reply, READ_USERS, f"find {identifier}")
        throttled = _final_throttle(reply, f"find {identifier}")
        if throttled:
            raise throttled
        data = self._expect_object(reply, f"find {identifier}")
        if "value" not in data:
            return _user_from(data)
        matches = [_user_from(item) for item in data.get("value") or []]
        # A UPN match wins over a mail match: mail is not unique in every tenant.
        exact = [m for m in matches if normalise_key(m.upn) == normalise_key(identifier)]
        return next(iter(exact or matches), None)

    def _reference(self, object_id: str) -> dict[str, str]:
        return {"@odata.id": f"{self._client.base_url}/directoryObjects/{segment(object_id)}"}

    @staticmethod
    def _expect_object(reply: GraphReply, what: str) -> dict[str, Any]:
        if reply.status != 200:
            raise PermanentError(f"Graph {what}: unexpected {reply.describe()}")
        if not isinstance(reply.body, dict):
            raise TransientError(f"Graph {what}: answered 200 without a JSON object")
        return reply.body


def _removal_result(reply: GraphReply, group: str, user: User) -> RemovalResult:
    what = f"remove {user.label} from group {group}"
    if reply.status == 204:
        return RemovalResult(RemovalOutcome.REMOVED)
    if reply.status == 404 and reply.error_code == "Request_ResourceNotFound":
        # Graph answers the same for a missing group; the run's pre-flight check catches that.
        # After an unanswered attempt of this same DELETE, the 404 is that attempt's work.
        return RemovalResult(
            RemovalOutcome.NOT_MEMBER,
            detail=reply.error_code,
            after_own_write=reply.after_unanswered,
        )
    throttled = _final_throttle(reply, what)
    if throttled:
        raise throttled
    raise PermanentError(f"Graph refused to {what} ({reply.describe()})")


def _add_outcome(reply: GraphReply, group: str, user: User) -> AddOutcome:
    what = f"add {user.label} to group {group}"
    if reply.status == 204:
        return AddOutcome.ADDED
    # Graph gives "already a member" no code of its own: it is 400 Request_BadRequest like any
    # other bad add, so this one case also reads the message ("... references already exist ...").
    if (
        reply.status == 400
        and reply.error_code == "Request_BadRequest"
        and "already exist" in reply.error_message
    ):
        return AddOutcome.ALREADY_MEMBER
    if reply.status == 404 and reply.error_code == "Request_ResourceNotFound":
        raise UserNotFound(f"cannot {what}: the user or the group does not exist")
    throttled = _final_throttle(reply, what)
    if throttled:
        raise throttled
    raise PermanentError(f"Graph refused to {what} ({reply.describe()})")


# ---- usage: Entra ID sign-in logs ---------------------------------------------------------------


class RateLimiter:
    """At most `limit` calls in any `window` seconds (Graph's identity reports: 5 per 10 s per
    app and tenant). Per process; Graph's own 429 still covers several instances."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._recent: list[float] = []

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                self._recent = [t for t in self._recent if t > now - self.window]
                if len(self._recent) < self.limit:
                    self._recent.append(now)
                    return
                self._sleep(self._recent[0] + self.window - now)


def _signed_in_at(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


class EntraSignInsUsage:
    """reclaim.ports.UsageSource from /auditLogs/signIns: one row per sign-in to the policy's
    application within the look-back window (validation keeps it within the log's retention).
    The log records every sign-in, so a member absent from it signed in zero times."""

    KEY_FIELDS = {
        MatchOn.UPN: "userPrincipalName",
        MatchOn.MAIL: "userPrincipalName",  # the log has no mail; UPN equals mail in most tenants
        MatchOn.OBJECT_ID: "userId",
    }

    def __init__(self, client: GraphClient, limiter: RateLimiter | None = None) -> None:
        self._client = client
        self._limiter = limiter or RateLimiter()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> EntraSignInsUsage:
        return cls(shared_client(settings, secrets))

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        spec = policy.usage
        if not _GUID.match(spec.app_id or ""):
            raise ConfigurationError(
                f"policy {policy.name}: usage.app_id must be the application's appId (a GUID) "
                "for source entra-signins"
            )
        key_field = self.KEY_FIELDS.get(spec.match_on)
        if key_field is None:
            raise ConfigurationError(
                f"policy {policy.name}: entra-signins matches users by upn, mail or object_id, "
                f"not {spec.match_on.value}"
            )
        since = (now - spec.lookback).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = "/auditLogs/signIns?" + query(
            filter=f"appId eq {odata_string(spec.app_id)} and createdDateTime ge {since}",
            select="userPrincipalName,userId,createdDateTime",
            top=SIGNINS_PAGE,
        )
        what = f"read sign-ins of app {spec.app_id}"
        try:  # the first page eagerly: a permission problem shows before the run goes on
            first = self._page(path, what)
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed, the run stops: {error}") from error
        # The log's own clock: its newest sign-in (rows carry their createdDateTime).
        clock = f"newest sign-in to app {spec.app_id} in the Entra sign-in log"
        return UsageExport(observed_at=None, rows=self._rows(first, key_field, what), clock=clock)

    def _page(self, path: str, what: str) -> dict[str, Any]:
        self._limiter.acquire()
        reply = self._client.call("GET", path, permission=READ_SIGNINS, what=what)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise SourceError(f"Graph {what}: unexpected {reply.describe()}")
        if not isinstance(reply.body.get("value"), list):
            raise SourceError(f"Graph {what}: a page without a value list")
        return reply.body

    def _rows(self, page: dict[str, Any], key_field: str, what: str) -> Iterator[UsageRow]:
        try:
            while True:
                for item in page["value"]:
                    key = normalise_key(str(item.get(key_field) or ""))
                    if key:
                        yield UsageRow(key, 1.0, at=_signed_in_at(item.get("createdDateTime")))
                link = page.get("@odata.nextLink")
                if not link:
                    return
                page = self._page(link, what)
        except (TransientError, PermanentError) as error:
            raise SourceError(f"{what} failed part-way, the run stops: {error}") from error


__all__ = [
    "BatchItem",
    "BulkOutcome",
    "EntraSignInsUsage",
    "GraphClient",
    "GraphDirectory",
    "GraphReply",
    "RateLimiter",
    "RetryPolicy",
    "member_ref_path",
    "odata_string",
    "shared_client",
]
