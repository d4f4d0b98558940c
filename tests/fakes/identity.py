"""A fake Microsoft identity platform (OIDC discovery + client credentials) over real HTTPS.

Also holds the small JSON-service base the other cloud fakes (Graph, Key Vault) are built on:
FakeService turns each HTTPS request into a FakeRequest and writes back a FakeReply, with HTTP/1.1
keep-alive so clients reuse connections as they do against the real services.

The real msal and azure-identity clients talk to it: msal with authority
`<authority_host>/<tenant_id>` and instance_discovery=False, azure-identity's ClientSecretCredential
with authority=<authority_host> and disable_instance_discovery=True.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.https import HttpsServer, test_pki

# ---- the shared JSON-service base ---------------------------------------------------------------


@dataclass(frozen=True)
class FakeRequest:
    method: str
    target: str  # the request target as sent: percent-encoded path and query
    path: str  # decoded path, without the query
    query: Mapping[str, str]  # decoded query parameters
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""

    @classmethod
    def parse(
        cls, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> FakeRequest:
        parts = urlsplit(target)
        return cls(
            method=method.upper(),
            target=target,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def host_url(self) -> str:
        """https://<the Host the client used>: links the fake hands out point back at itself."""
        return f"https://{self.headers.get('host', '127.0.0.1')}"


@dataclass
class FakeReply:
    status: int
    body: Any = None  # dict or list -> JSON; bytes -> sent as they are; None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (slow answers)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class FakeService:
    """An HTTPS server on 127.0.0.1 whose answers come from `handle` (override it)."""

    def __init__(self) -> None:
        self._server: HttpsServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: FakeRequest) -> FakeReply:
        raise NotImplementedError

    def start(self) -> Self:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: connections are reused as in Azure

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = FakeRequest.parse(self.command, self.path, dict(self.headers), body)
                try:
                    reply = service.handle(request)
                except Exception as error:  # a bug in a fake must show, not hang the client
                    reply = FakeReply(500, {"error": {"code": "FakeBug", "message": repr(error)}})
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    headers = dict(reply.headers)
                    if payload and not any(k.lower() == "content-type" for k in headers):
                        headers["Content-Type"] = "application/json; charset=utf-8"
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) before the slow answer came
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read the fakes' own request logs."""

        self._server = HttpsServer(Handler)
        # Our own serving thread with a short poll: shutdown() then takes milliseconds, not the
        # default half second, which adds up over a test suite that starts a fake per test.
        self._thread = threading.Thread(
            target=self._server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.server.shutdown()
            self._server.server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.url

    @property
    def ca_file(self) -> Path:
        return test_pki().ca_file


# ---- the identity platform ----------------------------------------------------------------------

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class IssuedToken:
    client_id: str
    resource: str  # the scope without /.default, e.g. https://graph.microsoft.com
    expires_at: float


@dataclass
class _App:
    secret: str | None = None
    certificate: x509.Certificate | None = None


@dataclass(frozen=True)
class TokenRequest:
    client_id: str
    scope: str
    method: str  # secret | assertion | none
    status: int


def _aad_error(status: int, error: str, code: int, text: str) -> FakeReply:
    trace = str(uuid.uuid4())
    return FakeReply(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace} "
            f"Correlation ID: {uuid.uuid4()} Timestamp: {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
            "error_codes": [code],
            "timestamp": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
        },
    )


class FakeIdentity(FakeService):
    """One tenant's token endpoint. Runs on its own (start()) or mounted inside another fake."""

    def __init__(self, tenant_id: str = "", *, expires_in: int = 3599) -> None:
        super().__init__()
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.expires_in = expires_in  # knob: a short lifetime makes clients renew soon
        self._apps: dict[str, _App] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()
        self.token_requests: list[TokenRequest] = []
        self.discovery_requests = 0

    # -- seeding and knobs

    def add_client(
        self, client_id: str, *, secret: str | None = None, certificate_pem: str | None = None
    ) -> None:
        certificate = (
            x509.load_pem_x509_certificate(certificate_pem.encode()) if certificate_pem else None
        )
        self._apps[client_id] = _App(secret=secret, certificate=certificate)

    def set_secret(self, client_id: str, secret: str) -> None:
        """Rotate a client secret: tokens already issued stay valid, as in Entra ID."""
        self._apps[client_id].secret = secret

    def expire_all_tokens(self) -> None:
        """Every token issued so far is expired from now on (clients still think it is good)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    @property
    def authority_host(self) -> str:
        return self.base_url

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    def tokens_issued(self, resource: str | None = None) -> int:
        return sum(
            1
            for r in self.token_requests
            if r.status == 200 and (resource is None or r.scope.startswith(resource))
        )

    def issue(self, client_id: str, resource: str) -> str:
        """A live token for `resource`, as a managed identity endpoint hands out (no credential)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = IssuedToken(
                client_id, resource.rstrip("/"), time.time() + self.expires_in
            )
        return token

    # -- what resource servers ask

    def check(self, authorization: str, resource: str) -> tuple[IssuedToken | None, str]:
        """(token, "") when `authorization` carries a live token for `resource`, else (None, why)."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None, "empty"
        with self._lock:
            token = self._tokens.get(value)
        if token is None:
            return None, "invalid"
        if token.resource.rstrip("/") != resource.rstrip("/"):
            return None, "audience"
        if token.expires_at <= time.time():
            return None, "expired"
        return token, ""

    # -- the protocol

    def handle(self, request: FakeRequest) -> FakeReply:
        parts = request.path.strip("/").split("/")
        if not parts or parts[0] != self.tenant_id:
            tenant = parts[0] if parts else ""
            return _aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        rest = "/".join(parts[1:])
        if request.method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            return self._discovery(request)
        if request.method == "POST" and rest == "oauth2/v2.0/token":
            return self._token(request)
        return FakeReply(404, {"error": "not_found", "error_description": f"no {request.path}"})

    def _discovery(self, request: FakeRequest) -> FakeReply:
        self.discovery_requests += 1
        base = f"{request.host_url}/{self.tenant_id}"
        return FakeReply(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
            },
        )

    def _token(self, request: FakeRequest) -> FakeReply:
        form = request.form()
        client_id = form.get("client_id", "")
        scope = form.get("scope", "")
        method = (
            "secret"
            if "client_secret" in form
            else "assertion"
            if "client_assertion" in form
            else "none"
        )
        reply = self._decide(request, form, client_id, scope)
        with self._lock:
            self.token_requests.append(TokenRequest(client_id, scope, method, reply.status))
        return reply

    def _decide(
        self, request: FakeRequest, form: dict[str, str], client_id: str, scope: str
    ) -> FakeReply:
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        app = self._apps.get(client_id)
        if app is None:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return _aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        if "client_secret" in form:
            if app.secret is None or not secrets.compare_digest(form["client_secret"], app.secret):
                return _aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    f"is the client secret value, not the client secret ID, for a secret added "
                    f"to app '{client_id}'.",
                )
        elif "client_assertion" in form:
            problem = self._assertion_problem(request, form, client_id, app)
            if problem:
                return _aad_error(401, "invalid_client", 700027, problem)
        else:
            return _aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = IssuedToken(
                client_id=client_id,
                resource=scopes[0].removesuffix("/.default"),
                expires_at=time.time() + self.expires_in,
            )
        return FakeReply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            },
        )

    def _assertion_problem(
        self, request: FakeRequest, form: dict[str, str], client_id: str, app: _App
    ) -> str:
        """Why the client assertion is not acceptable, or "" when it is (signature checked)."""
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            return "The client_assertion_type is not supported."
        if app.certificate is None:
            return (
                f"Client assertion contains an invalid signature: no certificate for '{client_id}'."
            )
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return "Client assertion is not a well-formed JWT."
        der = app.certificate.public_bytes(Encoding.DER)
        thumbprints = {  # msal keeps base64 padding, RFC 7515 drops it: accept both
            str(header.get(name, "")).rstrip("=") for name in ("x5t#S256", "x5t")
        }
        if not thumbprints & {
            _b64url(hashlib.sha256(der).digest()),
            _b64url(hashlib.sha1(der).digest()),  # legacy x5t, still accepted by Entra ID
        }:
            return "Client assertion failed signature validation: unknown certificate thumbprint."
        audience = f"{request.host_url}/{self.tenant_id}/oauth2/v2.0/token"
        try:
            claims = jwt.decode(
                assertion,
                app.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["PS256", "RS256"],
                audience=audience,
                issuer=client_id,
            )
        except jwt.PyJWTError as error:
            return f"Client assertion failed signature validation: {error}."
        if claims.get("sub") != client_id:
            return "Client assertion subject does not match the client id."
        return ""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def fake_identity() -> Iterator[FakeIdentity]:
    """A standalone token endpoint with no clients yet (add them with add_client)."""
    with FakeIdentity() as identity:
        yield identity
