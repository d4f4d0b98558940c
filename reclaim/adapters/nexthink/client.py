"""Nexthink Infinity: usage from a saved NQL API query, campaigns and their answers, and group
removals through a remote action (the on-premises AD path of Nexthink's licence reclamation pack).

API facts: shared/reference/api-facts.md section 1.2 (Nexthink OpenAPI files, docs.nexthink.com).

- Auth: OAuth client credentials at settings.nexthink_token_url; the token is cached and refreshed
  120 s before its expires_in runs out, one fetch at a time across threads.
- NQL: the API runs only queries saved under Administration > NQL API queries, with a
  string-to-string parameter map. `POST /api/v2/nql/execute` answers at once but is capped at about
  1,000 rows (and ~5 s of server time); `POST /api/v1/nql/export` runs in the background, is polled
  at `/api/v1/nql/status/{exportId}` and leaves a CSV file (here GZIP-compressed) at a pre-signed
  link valid for 15 minutes.
- Usage always goes through export: the usage query scans every user's metering over the
  look-back window, which is the bulk, low-frequency query the export is made for; execute would
  truncate it at 1,000 rows for any organisation bigger than that (and truncation would turn real
  users into "never observed"), or time out. The download is streamed to an anonymous temporary
  file and read lazily, so a million-row export is never held in memory. The data's age is the
  newest value of usage.timestamp_column in it, not the moment the export completed.
- Answers and remote-action executions are small, frequent queries: they use v2 execute and
  switch to export when execute returns 1,000 rows or more (the result may have been cut).
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import requests
import urllib3

from reclaim.adapters.files import usage_rows
from reclaim.adapters.http_retry import RetryPolicy, send_with_retries
from reclaim.domain.durations import format_duration
from reclaim.domain.lifecycle import Request
from reclaim.domain.model import AnswerValue, Member, User
from reclaim.domain.policy import DirectorySpec, Policy
from reclaim.errors import ConfigurationError, PermanentError, SourceError, TransientError
from reclaim.ports import (
    AddOutcome,
    AskResult,
    ChannelAnswer,
    Directory,
    GroupInfo,
    RemovalOutcome,
    RemovalResult,
    Secrets,
    UsageExport,
)
from reclaim.settings import Settings

log = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN = 120.0  # seconds before expiry a cached token is replaced
EXECUTE_ROW_LIMIT = 1000  # v2 execute returns at most this many rows
CAMPAIGN_USERS_PER_TRIGGER = 10_000
MAX_CAMPAIGN_EXPIRY_MINUTES = 525_600
# The campaign parameter that carries the application's name. The pack's campaign declares
# `application_name` (its NQL filters on parameters.application_name); a campaign with other
# parameter ids needs this constant changed: Nexthink rejects a trigger whose keys differ.
CAMPAIGN_APPLICATION_PARAMETER = "application_name"
# Input ids of the "Invoke remove user from AD group" remote action. Nexthink does not publish
# them; check the remote action's inputs (Remote actions > Manage) and pass others if they differ.
SAM_ACCOUNT_NAME_INPUT = "SamAccountName"
GROUP_NAME_INPUT = "GroupName"
TRIGGER_SOURCE = "reclaim"
MAX_TRIGGER_REASON = 500

_GZIP_MAGIC = b"\x1f\x8b"
_DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportPolling:
    """How the status of an export is polled: growing pauses, and a limit on the whole wait."""

    first_pause: float = 1.0
    longest_pause: float = 15.0
    give_up_after: float = 1800.0


class NexthinkClient:
    """One authenticated, thread-safe connection to a Nexthink instance's API."""

    def __init__(
        self,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: Callable[[], str],
        *,
        secret_name: str = "",
        ca_bundle: str = "",
        retry: RetryPolicy | None = None,
        polling: ExportPolling | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._secret_name = secret_name
        self.retry = retry or RetryPolicy()
        self.polling = polling or ExportPolling()
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._utcnow = utcnow
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not override verify
        self.session.verify = ca_bundle or True
        self._token_lock = threading.Lock()
        self._token = ""
        self._token_expires_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets, **options: Any) -> NexthinkClient:
        required = {
            "RECLAIM_NEXTHINK_BASE_URL": settings.nexthink_base_url,
            "RECLAIM_NEXTHINK_TOKEN_URL": settings.nexthink_token_url,
            "RECLAIM_NEXTHINK_CLIENT_ID": settings.nexthink_client_id,
            "RECLAIM_NEXTHINK_CLIENT_SECRET_NAME": settings.nexthink_client_secret_name,
        }
        missing = [variable for variable, value in required.items() if not value]
        if missing:
            raise ConfigurationError(f"Nexthink is not configured: set {', '.join(missing)}")
        name = settings.nexthink_client_secret_name
        return cls(
            settings.nexthink_base_url,
            settings.nexthink_token_url,
            settings.nexthink_client_id,
            lambda: secrets.get(name),  # read at each token fetch, so a rotated secret is used
            secret_name=name,
            ca_bundle=settings.ca_bundle,
            **options,
        )

    # ---- auth ----------------------------------------------------------------------------------

    def token(self) -> str:
        """A bearer token that is valid for at least TOKEN_REFRESH_MARGIN more seconds."""
        with self._token_lock:  # one fetch at a time; the others wait and reuse it
            if self._token and self._clock() < self._token_expires_at - TOKEN_REFRESH_MARGIN:
                return self._token
            self._token, self._token_expires_at = self._fetch_token()
            return self._token

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = ""

    def _fetch_token(self) -> tuple[str, float]:
        secret = self._client_secret()
        asked_at = self._clock()
        response = send_with_retries(
            lambda: self.session.post(
                self.token_url,
                data={"grant_type": "client_credentials", "scope": "service:integration"},
                auth=(self.client_id, secret),
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            ),
            what="Nexthink token",
            policy=self.retry,
            sleep=self._sleep,
        )
        body = _json_object(response)
        if response.status_code in (400, 401, 403):
            reason = ": ".join(
                str(body[k]) for k in ("error", "error_description") if body.get(k)
            ) or (f"HTTP {response.status_code}")
            raise ConfigurationError(
                f"Nexthink refused the API credential ({reason}): check "
                f"RECLAIM_NEXTHINK_CLIENT_ID and the secret named {self._secret_name!r}"
            )
        if response.status_code != 200 or not body.get("access_token"):
            raise ConfigurationError(
                f"Nexthink token endpoint answered HTTP {response.status_code} without a token: "
                "check RECLAIM_NEXTHINK_TOKEN_URL (https://<instance>-login.<region>.nexthink.cloud"
                "/oauth2/default/v1/token)"
            )
        try:
            lifetime = float(body.get("expires_in", 900))
        except (TypeError, ValueError):
            lifetime = 900.0  # the lifetime Nexthink's own SDK assumes
        return str(body["access_token"]), asked_at + lifetime

    # ---- calls ---------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        not_found: str = "",
    ) -> requests.Response:
        """A 2xx response to an authenticated call; a 401 gets one more try with a new token."""
        url = self.base_url + path
        for fresh_token_tried in (False, True):
            token = self.token()
            response = send_with_retries(
                functools.partial(
                    self.session.request,
                    method,
                    url,
                    json=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Accept": "application/json",
                        "x-utc-times": "true",
                    },
                    timeout=self.timeout,
                ),
                what=what,
                policy=self.retry,
                sleep=self._sleep,
                idempotent=idempotent,
            )
            if response.status_code == 401 and not fresh_token_tried:
                self._forget_token(token)  # revoked or expired early
                continue
            break
        if 200 <= response.status_code < 300:
            return response
        raise _failure(response, what, not_found)

    # ---- NQL -----------------------------------------------------------------------------------

    def execute(self, query_id: str, parameters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Rows of a saved query through v2 execute (at most EXECUTE_ROW_LIMIT of them)."""
        response = self.call(
            "POST",
            "/api/v2/nql/execute",
            what=f"NQL query {query_id}",
            body={"queryId": query_id, "parameters": dict(parameters)},
            not_found=_unknown_query(query_id),
        )
        data = _json_object(response).get("data")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise SourceError(f"NQL query {query_id}: the answer has no list of rows in 'data'")
        return data

    def export(self, query_id: str, parameters: Mapping[str, str]) -> ExportedResult:
        """Run a saved query as an export, wait for it, and download its file."""
        what = f"NQL export of {query_id}"
        started = self.call(
            "POST",
            "/api/v1/nql/export",
            what=what,
            body={"queryId": query_id, "parameters": dict(parameters), "compression": "GZIP"},
            not_found=_unknown_query(query_id),
        )
        export_id = _json_object(started).get("exportId")
        if not export_id:
            raise SourceError(f"{what}: the answer has no exportId")
        results_url, completed_at = self._wait_for_export(str(export_id), what)
        return ExportedResult(completed_at, self._download(results_url, what))

    def _wait_for_export(self, export_id: str, what: str) -> tuple[str, datetime]:
        deadline = self._clock() + self.polling.give_up_after
        pause = self.polling.first_pause
        while True:
            response = self.call(
                "GET",
                f"/api/v1/nql/status/{export_id}",
                what=what,
                not_found=f"Nexthink no longer knows export {export_id}",
            )
            status = _json_object(response)
            state = str(status.get("status", ""))
            if response.status_code == 206:
                # Fail closed: users cut from the result would look as if never observed.
                raise SourceError(
                    f"{what}: Nexthink truncated the results at the licence's maximum number "
                    "of results; narrow the query"
                )
            if state == "COMPLETED":
                url = status.get("resultsFileUrl")
                if not url:
                    raise SourceError(f"{what}: COMPLETED without a resultsFileUrl")
                return str(url), self._utcnow()
            if state == "ERROR":
                raise SourceError(
                    f"{what} failed in Nexthink: {status.get('errorDescription') or 'no reason'}"
                )
            if state not in ("SUBMITTED", "IN_PROGRESS"):
                raise SourceError(f"{what}: unexpected export status {state!r}")
            if self._clock() + pause > deadline:
                raise TransientError(
                    f"{what}: still {state} after {self.polling.give_up_after:.0f}s",
                    retry_after=self.polling.longest_pause,
                )
            self._sleep(pause)
            pause = min(pause * 2, self.polling.longest_pause)

    def _download(self, url: str, what: str) -> IO[bytes]:
        """The results file in an anonymous temporary file (gone from disk once closed).

        The link is pre-signed (S3): it is fetched without our bearer token.
        """
        response = send_with_retries(
            lambda: self.session.get(url, stream=True, timeout=self.timeout),
            what=f"{what}: download",
            policy=self.retry,
            sleep=self._sleep,
        )
        with response:
            if response.status_code == 403:
                raise TransientError(f"{what}: the results link was refused (expired?)")
            if response.status_code != 200:
                raise SourceError(
                    f"{what}: downloading the results failed (HTTP {response.status_code})"
                )
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by whoever reads the rows
            try:
                response.raw.decode_content = False  # the stored bytes; gzip is detected later
                shutil.copyfileobj(response.raw, spool, _DOWNLOAD_CHUNK)
            except (OSError, urllib3.exceptions.HTTPError) as error:
                spool.close()
                raise TransientError(
                    f"{what}: the download broke off ({type(error).__name__})"
                ) from error
        spool.seek(0)
        return spool

    def query_rows(self, query_id: str, parameters: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Rows of a saved query as dicts: execute, or export when execute may have cut them."""
        rows = self.execute(query_id, parameters)
        if len(rows) < EXECUTE_ROW_LIMIT:
            return iter(rows)
        log.info("NQL query %s hit the execute limit of %d rows; exporting", query_id, len(rows))
        return self.export(query_id, parameters).dict_rows()


@dataclass
class ExportedResult:
    """A downloaded export: when it completed, and its file (plain or gzip CSV), read once."""

    completed_at: datetime
    file: IO[bytes]

    def lines(self) -> Iterator[str]:
        """The file's text, line by line, read lazily; the file is closed when they run out."""
        spool = self.file
        try:
            gzipped = spool.read(2) == _GZIP_MAGIC
            spool.seek(0)
            binary: IO[bytes] | gzip.GzipFile = (
                gzip.GzipFile(fileobj=spool, mode="rb") if gzipped else spool
            )
            try:
                yield from io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
            except (OSError, EOFError, UnicodeDecodeError) as error:
                raise SourceError(f"the exported results file is unreadable: {error}") from error
        finally:
            spool.close()

    def dict_rows(self) -> Iterator[dict[str, str]]:
        reader = csv.reader(self.lines())
        try:
            header = next(reader, None)
            if header is None:
                return
            for row in reader:
                if row:
                    yield dict(zip(header, row, strict=False))
        except csv.Error as error:
            raise SourceError(f"the exported results file is not valid CSV: {error}") from error


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _unknown_query(query_id: str) -> str:
    return (
        f"Nexthink has no NQL API query with id {query_id}: save it under "
        "Administration > Content management > NQL API queries"
    )


def _failure(response: requests.Response, what: str, not_found: str) -> Exception:
    """The reclaim error for a final non-2xx answer (its message is Nexthink's, never a secret)."""
    status = response.status_code
    body = _json_object(response)
    said = " ".join(str(body[k]) for k in ("code", "message") if body.get(k))
    detail = f" ({said})" if said else ""
    if status == 401:
        return ConfigurationError(f"{what}: Nexthink refused a fresh access token (401){detail}")
    if status == 403:
        return ConfigurationError(
            f"{what}: not authorised (403){detail}: give the API credential's profile the "
            "permission for this API (NQL API queries, campaigns or remote actions)"
        )
    if status == 404:
        return ConfigurationError(f"{what}: {not_found or 'not found (404)'}{detail}")
    if 400 <= status < 500:
        return ConfigurationError(f"{what}: Nexthink rejected the request (HTTP {status}){detail}")
    return TransientError(f"{what}: HTTP {status}{detail}")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _require_columns(row: Mapping[str, Any], wanted: Sequence[str], what: str) -> None:
    missing = [column for column in wanted if column not in row]
    if missing:
        raise SourceError(
            f"{what}: column(s) {', '.join(repr(c) for c in missing)} not in the result; "
            f"columns there: {', '.join(repr(c) for c in row) or 'none'}"
        )


def _parse_time(value: str, what: str) -> datetime:
    """An NQL timestamp (ISO 8601; UTC as asked with x-utc-times when no offset is given)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SourceError(f"{what}: {value!r} is not a date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- usage ---------------------------------------------------------------------------------------


def usage_parameters(policy: Policy) -> dict[str, str]:
    """What the usage query gets: application and lookback, then the policy's own parameters."""
    return {
        "application": policy.application,
        "lookback": format_duration(policy.usage.lookback),
        **policy.usage.parameters,
    }


class NexthinkUsage:
    """UsageSource `nexthink`: the policy's saved usage query, exported and streamed.

    The export is parsed like a CSV usage export (reclaim.adapters.files.usage_rows): columns
    usage.user_column and usage.usage_column (and the optional answer columns), the unit converted
    to minutes, an empty value meaning "observed, no use", a value that is not a number failing
    the whole source with its line and column.
    """

    def __init__(self, client: NexthinkClient) -> None:
        self.client = client

    def usage(self, policy: Policy, now: datetime) -> UsageExport:
        query_id = policy.usage.query_id
        result = self.client.export(query_id, usage_parameters(policy))
        source = f"Nexthink export of {query_id} (policy {policy.name})"
        # The age is the data's own: the newest usage.timestamp_column, never when the export
        # ran (an export of collectors that stopped weeks ago completes today all the same).
        return UsageExport(
            observed_at=None,
            rows=usage_rows(result.lines(), policy, source),
            clock=f"newest {policy.usage.timestamp_column} in the export of {query_id}",
        )


# ---- campaigns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerColumns:
    """The columns the answers query returns (README has the NQL that produces them)."""

    user_sid: str = "user.sid"
    answer: str = "answers.question1.label"  # "yes" (still needed) or "no"
    answered_at: str = "response_time"


def expiry_minutes(policy: Policy) -> int:
    minutes = math.ceil(policy.campaign.respond_within.total_seconds() / 60)
    return max(1, min(MAX_CAMPAIGN_EXPIRY_MINUTES, minutes))


class NexthinkCampaign:
    """Campaign channel `nexthink`: triggers the policy's campaign; reads answers through NQL."""

    def __init__(
        self,
        client: NexthinkClient,
        answers_query_id: str,
        columns: AnswerColumns | None = None,
    ) -> None:
        self.client = client
        self.answers_query_id = answers_query_id
        self.columns = columns or AnswerColumns()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets) -> NexthinkCampaign:
        return cls(
            NexthinkClient.from_settings(settings, secrets), settings.nexthink_answers_query_id
        )

    def ask(self, policy: Policy, requests: Sequence[Request]) -> AskResult:
        """Trigger the campaign for each request's user, by SID, 10,000 at a time.

        Per-user results inside a 200 are honoured. If a later batch fails, the requests already
        asked are still reported and the rest are not_asked with the reason; a failure of the
        first batch is raised, as nothing was asked.
        """
        asked: dict[str, str] = {}
        not_asked: dict[str, str] = {}
        by_sid: dict[str, Request] = {}
        for request in requests:
            sid = request.user.sid.strip()
            if not sid:
                not_asked[request.id] = "no SID known"
            elif sid.upper() in by_sid:
                not_asked[request.id] = f"same SID as request {by_sid[sid.upper()].id}"
            else:
                by_sid[sid.upper()] = request
        pending = list(by_sid.values())
        for start in range(0, len(pending), CAMPAIGN_USERS_PER_TRIGGER):
            batch = pending[start : start + CAMPAIGN_USERS_PER_TRIGGER]
            try:
                results = self._trigger(policy, batch)
            except (TransientError, ConfigurationError, SourceError) as error:
                if start == 0:
                    raise
                not_asked.update((r.id, f"not triggered: {error}") for r in pending[start:])
                break
            for request in batch:
                outcome = results.get(request.user.sid.strip().upper())
                if outcome is None:
                    not_asked[request.id] = "Nexthink returned no result for this SID"
                elif outcome[0]:
                    asked[request.id] = outcome[0]
                else:
                    not_asked[request.id] = outcome[1] or "Nexthink created no request"
        return AskResult(asked=asked, not_asked=not_asked)

    def _trigger(self, policy: Policy, batch: Sequence[Request]) -> dict[str, tuple[str, str]]:
        """SID (upper case) -> (Nexthink requestId or "", message)."""
        response = self.client.call(
            "POST",
            "/api/v1/euf/campaign/trigger",
            what=f"campaign {policy.campaign.id} of policy {policy.name}",
            body={
                "campaignNqlId": policy.campaign.id,
                "userSid": [r.user.sid.strip() for r in batch],
                "expiresInMinutes": expiry_minutes(policy),
                "parameters": {CAMPAIGN_APPLICATION_PARAMETER: policy.application},
            },
            idempotent=False,
            not_found=f"no campaign {policy.campaign.id}: is it published with a manual trigger?",
        )
        entries = _json_object(response).get("requests")
        if not isinstance(entries, list):
            raise SourceError(
                f"campaign {policy.campaign.id}: the trigger answer has no 'requests' list"
            )
        results: dict[str, tuple[str, str]] = {}
        for entry in entries:
            if isinstance(entry, dict) and entry.get("userSid"):
                results[str(entry["userSid"]).upper()] = (
                    _text(entry.get("requestId")),
                    _text(entry.get("message")),
                )
        return results

    def answers(self, policy: Policy, since: datetime) -> Iterable[ChannelAnswer]:
        """Yes/no answers given at or after `since`, from the answers query, by user SID.

        The answers query runs per policy (parameters campaign_id and application), so a SID
        names the request: the service matches it to the user's request under this policy.
        Rows without an answer yet are skipped, and so are labels other than yes/no (logged):
        neither may count as consent.
        """
        what = f"answers query {self.answers_query_id} of policy {policy.name}"
        parameters = {"campaign_id": policy.campaign.id, "application": policy.application}
        return _answers(
            self.client.query_rows(self.answers_query_id, parameters), since, what, self.columns
        )


def _answers(
    rows: Iterator[dict[str, Any]], since: datetime, what: str, columns: AnswerColumns
) -> Iterator[ChannelAnswer]:
    for number, row in enumerate(rows, start=1):
        if number == 1:
            _require_columns(row, [columns.user_sid, columns.answer, columns.answered_at], what)
        label = _text(row.get(columns.answer)).lower()
        sid = _text(row.get(columns.user_sid))
        if not label or not sid:
            continue
        try:
            value = AnswerValue(label)
        except ValueError:
            log.warning("%s: row %d: answer %r is neither yes nor no; skipped", what, number, label)
            continue
        answered_at = _parse_time(_text(row.get(columns.answered_at)), f"{what}, row {number}")
        if answered_at >= since:
            yield ChannelAnswer(value, answered_at, user=sid)


# ---- remote action -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionColumns:
    """The columns the executions query returns (remote_action.executions)."""

    request_id: str = "request_id"
    status: str = "status"
    status_details: str = "status_details"


_SUCCEEDED = frozenset({"success"})
_FAILED = frozenset({"failure", "expired", "cancelled", "canceled"})


class NexthinkRemoteActionDirectory:
    """Directory kind `nexthink-remote-action`: removals run as a remote action on devices that
    reach Active Directory; they finish later (RemovalTracker). Nexthink cannot read group
    membership, so listing members, the pre-flight check and re-adding go to an inner directory
    (LDAP, or a CSV export of the group)."""

    def __init__(
        self,
        client: NexthinkClient,
        spec: DirectorySpec,
        executions_query_id: str,
        inner: Directory | None = None,
        *,
        sam_account_name_input: str = SAM_ACCOUNT_NAME_INPUT,
        group_name_input: str = GROUP_NAME_INPUT,
        columns: ExecutionColumns | None = None,
    ) -> None:
        if not spec.devices:
            raise ConfigurationError(
                "nexthink-remote-action needs directory.devices: the collector ids of devices "
                "that can reach Active Directory"
            )
        self.client = client
        self.spec = spec
        self.executions_query_id = executions_query_id
        self.inner = inner
        self.sam_account_name_input = sam_account_name_input
        self.group_name_input = group_name_input
        self.columns = columns or ExecutionColumns()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        secrets: Secrets,
        policy: Policy,
        inner: Directory | None = None,
    ) -> NexthinkRemoteActionDirectory:
        return cls(
            NexthinkClient.from_settings(settings, secrets),
            policy.directory,
            settings.nexthink_executions_query_id,
            inner,
        )

    def _inner(self, needed_for: str) -> Directory:
        if self.inner is None:
            raise ConfigurationError(
                f"nexthink-remote-action cannot {needed_for}: Nexthink does not expose group "
                "membership; configure an AD (LDAP) connection or a CSV export of the group"
            )
        return self.inner

    def check_group(self, group: str) -> GroupInfo:
        return self._inner("check the group").check_group(group)

    def members(self, group: str) -> Iterator[Member]:
        return self._inner("list members").members(group)

    def member_groups(self, group: str) -> list[GroupInfo]:
        return self._inner("list nested groups").member_groups(group)

    def transitive_users(self, group: str) -> Iterator[User]:
        return self._inner("list the users of nested groups").transitive_users(group)

    def add(self, group: str, user: User) -> AddOutcome:
        if self.inner is None:
            raise ConfigurationError(
                "restore for nexthink-remote-action: re-add through the AD path"
            )
        return self.inner.add(group, user)

    def remove(
        self, group: str, user: User, *, request_id: str = "", run_id: str = ""
    ) -> RemovalResult:
        """Trigger the remote action; the outcome is known later through finished()."""
        sam = user.sam_account_name.strip()
        if not sam:
            raise PermanentError(
                f"{user.label}: no sAMAccountName known; the remote action removes by it"
            )
        # The request id first: a long group name may be cut at the 500-character limit.
        reference = f" (request {request_id})" if request_id else ""
        reason = f"Licence reclamation{reference}: remove {sam} from {group}"
        response = self.client.call(
            "POST",
            "/api/v1/act/execute",
            what=f"remote action {self.spec.remote_action_id} for {sam}",
            body={
                "remoteActionId": self.spec.remote_action_id,
                "devices": list(self.spec.devices),
                "params": {self.sam_account_name_input: sam, self.group_name_input: group},
                "triggerInfo": {
                    "externalSource": TRIGGER_SOURCE,
                    "reason": reason[:MAX_TRIGGER_REASON],
                    "externalReference": f"{run_id}/{request_id}",
                },
            },
            idempotent=False,
            not_found=f"no remote action {self.spec.remote_action_id}",
        )
        nexthink_request = _text(_json_object(response).get("requestId"))
        if not nexthink_request:
            raise SourceError(
                f"remote action {self.spec.remote_action_id}: the answer has no requestId"
            )
        return RemovalResult(RemovalOutcome.REQUESTED, detail=nexthink_request)

    def finished(self, requests: Sequence[Request]) -> dict[str, RemovalResult]:
        """Requests whose remote action has finished: REMOVED when an execution succeeded, FAILED
        when every execution failed; still-running ones are left out.

        request.detail holds Nexthink's requestId (from remove()).
        """
        ours = {r.detail: r.id for r in requests if r.detail}
        if not ours:
            return {}
        what = f"executions query {self.executions_query_id}"
        rows = self.client.query_rows(
            self.executions_query_id, {"remote_action_id": self.spec.remote_action_id}
        )
        columns = self.columns
        statuses: dict[str, list[tuple[str, str]]] = {}
        for number, row in enumerate(rows, start=1):
            if number == 1:
                _require_columns(row, [columns.request_id, columns.status], what)
            nexthink_request = _text(row.get(columns.request_id))
            if nexthink_request in ours:
                statuses.setdefault(nexthink_request, []).append(
                    (_text(row.get(columns.status)).lower(), _text(row.get(columns.status_details)))
                )
        results: dict[str, RemovalResult] = {}
        for nexthink_request, executions in statuses.items():
            result = _execution_result(executions)
            if result is not None:
                results[ours[nexthink_request]] = result
        return results


def _execution_result(executions: Sequence[tuple[str, str]]) -> RemovalResult | None:
    """One device that succeeded is enough; all must have failed for a failure."""
    for status, details in executions:
        if status in _SUCCEEDED:
            return RemovalResult(RemovalOutcome.REMOVED, detail=details or status)
    if all(status in _FAILED for status, _ in executions):
        details = "; ".join(f"{status}: {d}" if d else status for status, d in executions)
        return RemovalResult(RemovalOutcome.FAILED, detail=details)
    return None
