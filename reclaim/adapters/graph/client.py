"""The Graph HTTP client: one pooled session, app-only token, retries that honour Retry-After, JSON batching."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from reclaim.adapters.graph.auth import AppToken, certificate_credential
from reclaim.adapters.graph.errors import (
    denied,
)
from reclaim.adapters.graph.pacing import FleetPacer, WritePacer, fleet_pacer
from reclaim.adapters.http_retry import retry_after_seconds
from reclaim.errors import (
    ConfigurationError,
    DirectoryOutage,
    PermanentError,
    SourceError,
    TransientError,
)
from reclaim.ports import (
    Secrets,
)

if TYPE_CHECKING:
    from reclaim.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_MESSAGE_LIMIT = 300  # characters of Graph's error.message kept in a detail
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
BATCH_LIMIT = 20  # Graph's JSON batching takes at most 20 requests per $batch


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
        """Status, Graph's error.code and error.message: what Graph said, for every failure
        detail (its message names the cause, e.g. a mail-enabled group). A token-shaped run in
        the message is masked, and the message is cut short, so a detail never carries a
        secret or a page of text."""
        said = f"{self.status} {self.error_code}".strip()
        message = _JWT.sub("[token]", " ".join(self.error_message.split()))
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        return f"{said}: {message}" if message else said


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


class _RetryableFault(Exception):
    """A failure worth another attempt that carries no HTTP status (connection, bad JSON)."""


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
        scope: str = "",
        ca_bundle: str = "",
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        pool_size: int = 16,
        write_pacer: WritePacer | FleetPacer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.retry = retry or RetryPolicy()
        self.write_pacer: WritePacer | FleetPacer = write_pacer or WritePacer(
            clock=self.retry.clock, sleep=self.retry.sleep
        )
        self._timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not override verify
        self.session.verify = ca_bundle or True
        self.session.mount(
            "https://", HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        )
        self._token = AppToken(
            authority=authority,
            client_id=client_id,
            # Graph's own host is its audience (https://graph.microsoft.com/.default, and e.g.
            # https://graph.microsoft.us/.default in a sovereign cloud); behind a proxy or API
            # Management the base URL's host is not, so RECLAIM_GRAPH_SCOPE names it.
            scope=scope or f"{self.origin}/.default",
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

        retry = retry or RetryPolicy()
        return cls(
            base_url=settings.graph_base_url,
            authority=f"{settings.authority_host}/{settings.tenant_id}",
            client_id=settings.client_id,
            load_credential=load_credential,
            scope=settings.graph_scope,
            ca_bundle=settings.ca_bundle,
            retry=retry,
            # RECLAIM_GRAPH_TIMEOUT bounds each request; the retry budget bounds the call.
            timeout=(min(10.0, settings.graph_timeout), float(settings.graph_timeout)),
            write_pacer=fleet_pacer(settings, clock=retry.clock, sleep=retry.sleep),
        )

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://"):
            # nextLinks are absolute; never send the token to a host other than Graph's.
            if not path_or_url.startswith(self.origin + "/"):
                raise SourceError(f"Graph returned a link to another host: {path_or_url[:80]}")
            return path_or_url
        return self.base_url + path_or_url

    def call(
        self,
        method: str,
        path: str,
        *,
        permission: str,
        what: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> GraphReply:
        """One request, retried while worth it; 401/403 raise ConfigurationError naming
        `permission`; any other final status is returned for the caller to classify. `headers`
        are sent as well (ConsistencyLevel for advanced queries)."""
        policy = self.retry
        deadline = policy.clock() + policy.budget
        renewed_token = False
        unanswered = False  # an attempt that may have done the work without our hearing of it
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self._send(method, path, json, headers)
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

    def _send(
        self, method: str, path: str, body: Any, extra: Mapping[str, str] | None = None
    ) -> GraphReply:
        try:
            token = self._token.get()
        except TransientError as error:  # no token, so nothing was sent
            raise TransientError(str(error), error.retry_after, unsent=True) from error
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "x-ms-throttle-priority": "low",  # background work: throttled before interactive use
            **(extra or {}),
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
        if response.content and _is_download(response):
            # A usage report: Graph answers 302 to a preauthenticated download URL on another
            # host (requests follows it and drops the Authorization header), which sends CSV.
            parsed = response.content.decode("utf-8-sig", errors="replace")
        elif response.content:
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


def _is_download(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return response.ok and kind in ("application/octet-stream", "text/csv")


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


def final_throttle(reply: GraphReply, what: str) -> TransientError | None:
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
