"""An HTTPS fake of the Nexthink Infinity API, held to its OpenAPI files (api-facts.md 1.2, 8).

Every request to an operation of tests/contracts/nexthink/*.json is checked against it first (a
request the files do not allow gets 400, as Nexthink answers), and every answer it sends is
checked too: an answer they do not allow is replaced by a 500 naming the problem and recorded in
`contract_violations`, and leaving the `with` block raises AssertionError listing them. The
token endpoint and the results link are not in those files: they follow Nexthink's
authentication page and S3's behaviour, checked by hand below.

Routes: the OAuth token endpoint; NQL execute v1 (row arrays + headers) and v2 (objects), JSON or
CSV; NQL export with a status that moves SUBMITTED -> IN_PROGRESS -> COMPLETED and a results
file (plain or gzip CSV) served from a pre-signed-like link that refuses our bearer token, as S3
does; campaign trigger with per-user results; remote action execute and details. Saved queries
declare their parameters: a request with another set gets 400. Two are built in: the answers
query (campaign responses) and the executions query (remote_action.executions), computed from
what was triggered and what the test answered or finished. Times in query rows (datetime values)
are written without an offset: in UTC for execute with `x-utc-times: true`, in `export_zone`
for exports (Nexthink documents no zone there).

Knobs: fail(path, status, ...) queues faults (429 with Retry-After, 503, ...), slow(path, s)
delays answers, forbid(path) answers 403, revoke_tokens(), export_* settings. Counters: hits.
"""

from __future__ import annotations

import base64
import csv
import functools
import gzip
import io
import itertools
import json
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.settings import Settings
from tests.fakes.https import HttpsServer
from tests.fakes.nexthink_contract import REFUSAL, NexthinkContract, Operation

TOKEN_PATH = "/oauth2/default/v1/token"
EXECUTE_ROW_CAP = 1000
ANSWERS_QUERY = "#license_reclamation_answers"
EXECUTIONS_QUERY = "#license_reclamation_executions"
ANSWERS_HEADERS = ["user.sid", "answers.question1.label", "response_time", "state"]
EXECUTIONS_HEADERS = ["request_id", "device.uid", "status", "status_details", "time"]


@dataclass
class Fault:
    status: int
    times: int = 1
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    skip: int = 0  # matching requests let through before the fault starts


@dataclass
class NqlQuery:
    headers: list[str]
    rows: Callable[[dict[str, str]], Iterable[Sequence[Any]]]
    parameters: frozenset[str] = frozenset()  # the $names the saved query declares
    export_file: Path | None = None  # pre-generated gzip CSV for big results


@dataclass
class RemoteAction:
    inputs: list[str]  # scriptInfo.inputs[].id
    api_enabled: bool = True  # the API box on the remote action's General tab


@dataclass
class CampaignRequest:
    request_id: str
    campaign: str
    sid: str
    parameters: dict[str, str]
    expires_in_minutes: int
    answer: str = ""
    answered_at: datetime | None = None


@dataclass
class Execution:
    request_id: str
    remote_action: str
    device: str
    params: dict[str, str]
    trigger_info: dict[str, Any]
    status: str = "pending"
    details: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Export:
    export_id: str
    query_id: str
    parameters: dict[str, str]
    compression: str
    polls: int = 0
    file: Path | None = None


class FakeNexthink:
    """Context manager: `with FakeNexthink() as nx: nx.url, nx.token_url, nx.ca_file`."""

    def __init__(
        self,
        client_id: str = "reclaim-client",
        client_secret: str | None = None,
        token_lifetime: int = 900,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or uuid.uuid4().hex  # a fresh value per fake
        self.token_lifetime = token_lifetime
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.tokens_issued = 0
        self.hits: Counter[str] = Counter()  # "POST /api/v2/nql/execute" -> count
        self.bodies: dict[str, list[Any]] = {}  # route -> JSON bodies received
        self.download_headers: list[dict[str, str]] = []
        self.queries: dict[str, NqlQuery] = {
            ANSWERS_QUERY: NqlQuery(
                ANSWERS_HEADERS, self._answer_rows, frozenset({"campaign_id", "application"})
            ),
            EXECUTIONS_QUERY: NqlQuery(
                EXECUTIONS_HEADERS, self._execution_rows, frozenset({"remote_action_id"})
            ),
        }
        self.export_zone: tzinfo = UTC  # the zone naive times are written in, in exports
        self.campaigns: dict[str, set[str]] = {"#license_reclamation_request": {"application_name"}}
        self.unknown_sids: set[str] = set()  # the trigger creates no request for these users
        self.campaign_requests: dict[str, CampaignRequest] = {}
        self.remote_actions: dict[str, RemoteAction] = {
            "#invoke_remove_user_from_ad_group": RemoteAction(["SamAccountName", "GroupName"])
        }
        self.executions: list[Execution] = []
        self.exports: dict[str, Export] = {}
        self.export_polls_needed = 2  # status polls answered SUBMITTED / IN_PROGRESS first
        self.export_error = ""  # when set, exports end in ERROR with this description
        self.export_truncated = False  # status answers 206 (licence maximum reached)
        self.results_link_expired = False  # the download answers 403 AccessDenied
        self.ignore_compression = False  # plain CSV whatever was asked (before compression existed)
        self.faults: dict[str, list[Fault]] = {}
        self.delays: dict[str, list[float]] = {}
        self.forbidden: set[str] = set()
        self.contract = _contract()
        self.contract_violations: list[str] = []
        self.files = Path(tempfile.mkdtemp(prefix="fake-nexthink-"))
        self._server = HttpsServer(self._handler())
        # serve_forever polls for shutdown every 0.5 s by default: each test would wait that long
        self._server.thread = threading.Thread(
            target=self._server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # ---- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> FakeNexthink:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)
        shutil.rmtree(self.files, ignore_errors=True)
        if self.contract_violations:
            raise AssertionError(
                "the Nexthink fake answered what Nexthink's OpenAPI files do not allow:\n"
                + "\n".join(self.contract_violations)
            )

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def ca_file(self) -> Path:
        return self._server.ca_file

    # ---- seeding and knobs ---------------------------------------------------------------------

    def add_query(
        self,
        query_id: str,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        parameters: Iterable[str] = (),
    ) -> None:
        fixed = [list(r) for r in rows]
        self.queries[query_id] = NqlQuery(
            list(headers), lambda _params: fixed, frozenset(parameters)
        )

    def add_generated_query(
        self,
        query_id: str,
        headers: Sequence[str],
        count: int,
        make_row: Callable[[int], Sequence[Any]],
        parameters: Iterable[str] = (),
    ) -> None:
        """A big result: its gzip CSV export file is written now, in chunks; execute generates
        only the rows it returns."""
        path = self.files / f"{query_id.lstrip('#')}-generated.csv.gz"
        with gzip.open(path, "wt", compresslevel=1, newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(headers)
            for start in range(0, count, 50_000):
                writer.writerows(make_row(i) for i in range(start, min(count, start + 50_000)))
        self.queries[query_id] = NqlQuery(
            list(headers),
            lambda _params: (make_row(i) for i in range(count)),
            frozenset(parameters),
            export_file=path,
        )

    def fail(
        self,
        path: str,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        body: dict[str, Any] | None = None,
        skip: int = 0,
    ) -> None:
        """After `skip` more, the next `times` requests whose path starts with `path` get
        `status` (with `body` as JSON and a Retry-After header when given)."""
        with self.lock:
            self.faults.setdefault(path, []).append(Fault(status, times, retry_after, body, skip))

    def slow(self, path: str, seconds: float, times: int = 1) -> None:
        with self.lock:
            self.delays.setdefault(path, []).extend([seconds] * times)

    def forbid(self, path: str) -> None:
        self.forbidden.add(path)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def answer(self, request_id: str, label: str, at: datetime) -> None:
        with self.lock:
            request = self.campaign_requests[request_id]
            request.answer, request.answered_at = label, at

    def finish_execution(
        self, request_id: str, status: str, details: str = "", device: str | None = None
    ) -> None:
        with self.lock:
            for execution in self.executions:
                if execution.request_id == request_id and device in (None, execution.device):
                    execution.status, execution.details = status, details

    def count(self, route: str) -> int:
        return self.hits[route]

    # ---- built-in queries ----------------------------------------------------------------------

    def _answer_rows(self, params: dict[str, str]) -> Iterator[list[Any]]:
        with self.lock:
            requests = list(self.campaign_requests.values())
        for r in requests:
            if r.parameters.get("application_name") != params.get("application"):
                continue
            yield [r.sid, r.answer or None, r.answered_at, "answered" if r.answer else "targeted"]

    def _execution_rows(self, params: dict[str, str]) -> Iterator[list[Any]]:
        with self.lock:
            executions = list(self.executions)
        wanted = params.get("remote_action_id")
        for e in executions:
            if wanted and e.remote_action != wanted:
                continue
            yield [e.request_id, e.device, e.status, e.details or None, e.at.isoformat()]

    # ---- HTTP ----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API (connection reuse)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                try:
                    fake._dispatch(self, method)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self.close_connection = True  # the client gave up (timeout test)

        return Handler

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        route = _route(method, path)
        operation = self.contract.operation(method, path)
        h.contract_operation = operation  # read by _refuse
        h.refused = False
        h.check_answer = None  # one connection serves many requests
        with self.lock:
            self.hits[route] += 1
            delays = next((d for p, d in self.delays.items() if path.startswith(p) and d), None)
            delay = delays.pop(0) if delays else 0.0
            fault = self._take_fault(path)
        if delay:
            time.sleep(delay)
        if fault is not None:
            if operation is not None:
                self._check_answer(h, operation, gateway_statuses_allowed=True)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            _send_json(h, fault.status, fault.body, headers)
            return
        if method == "POST" and path == TOKEN_PATH:
            self._token(h, raw)
            return
        if method == "GET" and path.startswith("/s3/results/"):
            self._download(h, path)
            return
        if operation is not None:
            self._check_answer(h, operation)
        if not self._authorised(h):
            self._error(h, 401, "UNAUTHORIZED", "No valid authentication credentials")
            return
        if any(path.startswith(p) for p in self.forbidden):
            self._error(h, 403, "FORBIDDEN", "Not authorized to perform this action")
            return
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._refuse(h, "Malformed JSON")
                return
        if method == "POST":
            with self.lock:
                self.bodies.setdefault(route, []).append(body)
        if operation is not None:
            problems = self.contract.request_problems(
                operation, parse_qs(parts.query), h.headers.get("Content-Type", ""), body, bool(raw)
            )
            if problems:
                self._refuse(h, "; ".join(problems))
                return
        handlers = {
            "POST /api/v1/nql/execute": lambda: self._execute(h, body, version=1),
            "POST /api/v2/nql/execute": lambda: self._execute(h, body, version=2),
            "POST /api/v1/nql/export": lambda: self._export(h, body),
            "GET /api/v1/nql/status/{exportId}": lambda: self._status(h, path),
            "POST /api/v1/euf/campaign/trigger": lambda: self._trigger(h, body),
            "POST /api/v1/act/execute": lambda: self._act(h, body),
            "GET /api/v1/act/remote-action/details": lambda: self._details(h, parts.query),
        }
        handler = handlers.get(route)
        if handler is None:
            _send_json(h, 404, {"message": f"no route {method} {path}"})
            return
        handler()

    def _check_answer(
        self,
        h: BaseHTTPRequestHandler,
        operation: Operation,
        gateway_statuses_allowed: bool = False,
    ) -> None:
        """Have _send check the answer to this request against the operation's responses.

        A fault the test injects may be a gateway's answer (429, 5xx) that the files do not
        list for the operation; any other answer must be one they list, with its schema.
        """

        def problems(status: int, content_type: str, payload: bytes) -> list[str]:
            declared = str(status) in operation.definition["responses"]
            if gateway_statuses_allowed and not declared and (status == 429 or status >= 500):
                return []
            found = self.contract.response_problems(
                operation, status, content_type, payload, refused=h.refused
            )
            with self.lock:
                self.contract_violations.extend(f"{operation.name}: {p}" for p in found)
            return found

        h.check_answer = problems

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        """An error in the shape of the API's ErrorResponse: NQL's code is the HTTP status (an
        integer), the Campaigns and Remote Actions APIs' a string."""
        operation: Operation | None = h.contract_operation
        nql = operation is not None and operation.spec.startswith("nql")
        body = {"message": message, "code": status} if nql else {"code": code, "message": message}
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        _send_json(h, status, body, headers)

    def _refuse(self, h: BaseHTTPRequestHandler, message: str) -> None:
        """A request Nexthink would not accept: 400."""
        h.refused = True
        self._error(h, REFUSAL, "BAD_REQUEST", message)

    def _take_fault(self, path: str) -> Fault | None:
        for prefix, queue in self.faults.items():
            if path.startswith(prefix) and queue:
                fault = queue[0]
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
                return fault
        return None

    def _authorised(self, h: BaseHTTPRequestHandler) -> bool:
        header = h.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        with self.lock:
            expiry = self.tokens.get(header[len("Bearer ") :])
        return expiry is not None and time.monotonic() < expiry

    # ---- token ---------------------------------------------------------------------------------

    def _token(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        if h.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            _send_json(h, 400, {"error": "invalid_request", "error_description": "form expected"})
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        try:
            scheme, encoded = h.headers.get("Authorization", "").split(" ", 1)
            client_id, secret = base64.b64decode(encoded).decode().split(":", 1)
        except ValueError:
            scheme, client_id, secret = "", "", ""
        if scheme != "Basic" or (client_id, secret) != (self.client_id, self.client_secret):
            _send_json(
                h,
                401,
                {
                    "error": "invalid_client",
                    "error_description": "The client secret supplied for a confidential client "
                    "is invalid.",
                },
            )
            return
        if form.get("grant_type") != "client_credentials":
            _send_json(h, 400, {"error": "unsupported_grant_type", "error_description": "?"})
            return
        if form.get("scope") != "service:integration":
            _send_json(h, 400, {"error": "invalid_scope", "error_description": "bad scope"})
            return
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_lifetime
            self.tokens_issued += 1
        _send_json(
            h,
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "access_token": token,
                "scope": "service:integration",
            },
        )

    # ---- NQL -----------------------------------------------------------------------------------

    def _query(
        self, h: BaseHTTPRequestHandler, body: Any
    ) -> tuple[str, NqlQuery, dict[str, str]] | None:
        parameters = body.get("parameters") or {}  # the body's shape is the contract's
        query = self.queries.get(body["queryId"])
        if query is None:
            _send_json(h, 404, None)
            return None
        if set(parameters) != query.parameters:
            # Undocumented in Nexthink's files: the fake refuses, as the strictest reading.
            self._refuse(
                h,
                f"parameters {sorted(parameters)} are not those query {body['queryId']} "
                f"declares: {sorted(query.parameters)}",
            )
            return None
        return body["queryId"], query, parameters

    def _execute(self, h: BaseHTTPRequestHandler, body: Any, version: int) -> None:
        accept = h.headers.get("Accept", "").split(";")[0].strip()
        if accept not in ("", "*/*", "application/json", "text/csv"):
            _send_json(h, 406, None)
            return
        found = self._query(h, body)
        if found is None:
            return
        query_id, query, parameters = found
        # x-utc-times: true asks for UTC; without it Nexthink answers in the instance's zone.
        utc = h.headers.get("x-utc-times", "").lower() == "true"
        zone = UTC if utc else self.export_zone
        rows = [
            [_cell(v, zone) for v in r]
            for r in itertools.islice(query.rows(parameters), EXECUTE_ROW_CAP)
        ]
        if accept == "text/csv":
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(query.headers)
            writer.writerows(rows)
            _send(h, 200, text.getvalue().encode(), "text/csv")
            return
        now = datetime.now(UTC)
        answer: dict[str, Any] = {
            "queryId": query_id,
            "executedQuery": f"{query_id} with {json.dumps(parameters, sort_keys=True)}",
            "rows": len(rows),
        }
        if version == 1:
            answer["executionDateTime"] = {
                "year": now.year,
                "month": now.month,
                "day": now.day,
                "hour": now.hour,
                "minute": now.minute,
                "second": now.second,
            }
            answer["headers"] = query.headers
            answer["data"] = rows
        else:
            answer["executionDateTime"] = now.strftime("%Y-%m-%dT%H:%M:%S")
            answer["data"] = [dict(zip(query.headers, r, strict=True)) for r in rows]
        _send_json(h, 200, answer)

    def _export(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        found = self._query(h, body)
        if found is None:
            return
        compression = body.get("compression") or "NONE"
        export = Export(uuid.uuid4().hex, found[0], found[2], compression)
        with self.lock:
            self.exports[export.export_id] = export
        _send_json(h, 200, {"exportId": export.export_id})

    def _status(self, h: BaseHTTPRequestHandler, path: str) -> None:
        with self.lock:
            export = self.exports.get(path.rsplit("/", 1)[-1])
            if export is None:
                _send_json(h, 404, None)
                return
            export.polls += 1
            polls = export.polls
        if polls <= self.export_polls_needed:
            state = "SUBMITTED" if polls == 1 else "IN_PROGRESS"
            _send_json(h, 200, {"status": state, "resultsFileUrl": None, "errorDescription": None})
            return
        if self.export_error:
            _send_json(
                h,
                200,
                {"status": "ERROR", "resultsFileUrl": None, "errorDescription": self.export_error},
            )
            return
        if export.file is None:
            export.file = self._write_export(export)
        link = f"{self.url}/s3/results/{export.file.name}?X-Amz-Expires=900&X-Amz-Signature=fake"
        _send_json(
            h,
            206 if self.export_truncated else 200,
            {"status": "COMPLETED", "resultsFileUrl": link, "errorDescription": None},
        )

    def _write_export(self, export: Export) -> Path:
        query = self.queries[export.query_id]
        if query.export_file is not None:
            return query.export_file
        gzipped = export.compression == "GZIP" and not self.ignore_compression
        path = self.files / f"{export.export_id}.csv{'.gz' if gzipped else ''}"
        opener: Any = gzip.open if gzipped else open
        with opener(path, "wt", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(query.headers)
            writer.writerows(
                [_cell(v, self.export_zone) for v in r] for r in query.rows(export.parameters)
            )
        return path

    def _download(self, h: BaseHTTPRequestHandler, path: str) -> None:
        with self.lock:
            self.download_headers.append(dict(h.headers.items()))
        if h.headers.get("Authorization"):
            _send(
                h,
                400,
                _s3_error("InvalidArgument", "Only one auth mechanism allowed"),
                "application/xml",
            )
            return
        if self.results_link_expired:
            _send(h, 403, _s3_error("AccessDenied", "Request has expired"), "application/xml")
            return
        file = self.files / path.rsplit("/", 1)[-1]
        if not file.is_file():
            _send(
                h,
                404,
                _s3_error("NoSuchKey", "The specified key does not exist."),
                "application/xml",
            )
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(file.stat().st_size))
        h.end_headers()
        with file.open("rb") as data:
            shutil.copyfileobj(data, h.wfile, 1 << 16)

    # ---- campaigns and remote actions ----------------------------------------------------------

    def _trigger(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        campaign = body["campaignNqlId"]  # the body's shape is the contract's
        if campaign not in self.campaigns:
            return self._refuse(h, f"Campaign {campaign} not found or not published")
        parameters = body.get("parameters") or {}
        if set(parameters) != self.campaigns[campaign]:
            return self._refuse(
                h, "The provided parameters do not match the parameters of the campaign"
            )
        expires = body["expiresInMinutes"]
        results: list[dict[str, str]] = []
        for sid in dict.fromkeys(body["userSid"]):  # duplicates filtered out, order kept
            if sid in self.unknown_sids:
                results.append({"userSid": sid, "message": "User not found"})
                continue
            request = CampaignRequest(uuid.uuid4().hex, campaign, sid, dict(parameters), expires)
            with self.lock:
                self.campaign_requests[request.request_id] = request
            results.append({"requestId": request.request_id, "userSid": sid})
        _send_json(h, 200, {"requests": results})

    def _act(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        action_id = body["remoteActionId"]  # the body's shape is the contract's
        action = self.remote_actions.get(action_id)
        if action is None or not action.api_enabled:
            return self._refuse(h, f"Remote action {action_id} not found or not enabled for API")
        params = body.get("params") or {}
        if set(params) != set(action.inputs):
            return self._refuse(h, "params do not match the inputs of the remote action")
        expires = body.get("expiresInMinutes", 10_080)
        trigger_info = body.get("triggerInfo") or {}
        request_id = uuid.uuid4().hex
        with self.lock:
            for device in body["devices"]:
                self.executions.append(
                    Execution(request_id, action_id, device, dict(params), dict(trigger_info))
                )
        _send_json(h, 200, {"requestId": request_id, "expiresInMinutes": expires})

    def _details(self, h: BaseHTTPRequestHandler, query: str) -> None:
        """GET /api/v1/act/remote-action/details?nql-id=...: the RemoteAction configuration."""
        nql_id = parse_qs(query)["nql-id"][0]
        action = self.remote_actions.get(nql_id)
        if action is None:
            return self._error(h, 404, "NOT_FOUND", f"No remote action with NQL ID {nql_id}")
        _send_json(
            h,
            200,
            {
                "id": nql_id,
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, nql_id)),
                "name": nql_id.lstrip("#").replace("_", " ").capitalize(),
                "description": "Removes a user from an Active Directory group",
                "origin": "custom",
                "builtInContentVersion": "",
                "purpose": ["REMEDIATION"],
                "targeting": {
                    "apiEnabled": action.api_enabled,
                    "manualEnabled": True,
                    "workflowEnabled": True,
                    "manualAllowMultipleDevices": False,
                },
                "scriptInfo": {
                    "executionServiceDelegate": "",
                    "runAs": "LOCAL_SYSTEM",
                    "timeoutSeconds": 120,
                    "hasScriptWindows": True,
                    "hasScriptMacOs": False,
                    "inputs": [
                        {
                            "id": name,
                            "name": name,
                            "description": "",
                            "usedByWindows": True,
                            "usedByMacOs": False,
                            "options": [],
                            "allowCustomValue": True,
                        }
                        for name in action.inputs
                    ],
                    "outputs": [],
                },
            },
        )


def _route(method: str, path: str) -> str:
    if path.startswith("/api/v1/nql/status/"):
        return f"{method} /api/v1/nql/status/{{exportId}}"
    if path.startswith("/s3/results/"):
        return f"{method} /s3/results"
    return f"{method} {path}"


def _cell(value: Any, zone: tzinfo) -> Any:
    """A row's value as Nexthink writes it: a time without an offset, in `zone`."""
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")
    return value


@functools.cache
def _contract() -> NexthinkContract:
    return NexthinkContract()


def _s3_error(code: str, message: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


def _send(
    h: BaseHTTPRequestHandler,
    status: int,
    payload: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    check = getattr(h, "check_answer", None)
    if check is not None:
        h.check_answer = None
        problems = check(status, content_type, payload)
        if problems:  # recorded: leaving the fake's `with` fails the test
            status, content_type, headers = 500, "application/json", None
            payload = json.dumps(
                {"message": "fake broke the contract: " + "; ".join(problems)}
            ).encode()
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(payload)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(payload)


def _send_json(
    h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    payload = b"" if body is None else json.dumps(body).encode()
    _send(h, status, payload, "application/json", headers)


SECRET_NAME = "nexthink-client-secret"


def settings_for(fake: FakeNexthink, **variables: str) -> Settings:
    """Settings pointing at the fake, secrets read from the environment mapping below."""
    return Settings.from_env(
        {
            "RECLAIM_SECRETS_SOURCE": "env",
            "RECLAIM_CA_BUNDLE": str(fake.ca_file),
            "RECLAIM_NEXTHINK_BASE_URL": fake.url,
            "RECLAIM_NEXTHINK_TOKEN_URL": fake.token_url,
            "RECLAIM_NEXTHINK_CLIENT_ID": fake.client_id,
            "RECLAIM_NEXTHINK_CLIENT_SECRET_NAME": SECRET_NAME,
            **variables,
        }
    )


def secrets_for(fake: FakeNexthink, secret: str | None = None) -> EnvironmentSecrets:
    value = fake.client_secret if secret is None else secret
    return EnvironmentSecrets({variable_for(SECRET_NAME): value})
