"""A fake App Service / Functions managed identity endpoint, tokens minted by a FakeIdentity.

The platform gives the app IDENTITY_ENDPOINT (plain HTTP on the loopback interface) and
IDENTITY_HEADER; azure-identity's ManagedIdentityCredential asks
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&client_id=<id>]` with the
header `X-IDENTITY-HEADER: <IDENTITY_HEADER>` (Microsoft's documentation: "How to use managed
identities for App Service and Azure Functions", REST endpoint reference). Without client_id the
system-assigned identity answers; with one, only a user-assigned identity of the app with that
client id does.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.identity import FakeIdentity


class FakeManagedIdentity:
    def __init__(self, identity: FakeIdentity, *, system_assigned: str = "") -> None:
        self.identity = identity
        self.header = secrets.token_hex(16)
        self.system_assigned = system_assigned  # the system-assigned identity's client id, if on
        self.user_assigned: set[str] = set()
        self.requests: list[dict[str, str]] = []  # the query of each request, in order
        self._server: ThreadingHTTPServer | None = None

    def handle(self, query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        self.requests.append(dict(query))
        if headers.get("x-identity-header") != self.header:
            return 401, {"statusCode": 401, "message": "Unauthorized request"}
        if query.get("api-version") != "2019-08-01" or not query.get("resource"):
            return 400, {"statusCode": 400, "message": "api-version and resource are required"}
        client_id = query.get("client_id", "")
        if client_id and client_id not in self.user_assigned:
            return 400, {
                "statusCode": 400,
                "message": "No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId.",
            }
        client_id = client_id or self.system_assigned
        if not client_id:
            return 400, {"statusCode": 400, "message": "No managed identity found for the app."}
        resource = query["resource"].removesuffix("/.default")
        expires_on = int(time.time()) + self.identity.expires_in
        return 200, {
            "access_token": self.identity.issue(client_id, resource),
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"

    def environment(self) -> dict[str, str]:
        """The variables the platform sets for the app."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header}

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = fake.handle(query, headers)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
