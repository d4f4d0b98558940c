"""A fake Azure Key Vault (secrets, GET only) over real HTTPS, backed by a FakeIdentity.

Follows the real protocol the SDK expects: the first request carries no token and is answered 401
with a `WWW-Authenticate: Bearer authorization=..., scope=...` challenge naming the tenant's
authority; the retry carries a token for https://vault.azure.net. Missing secrets are 404
SecretNotFound, denied ones 403 Forbidden/ForbiddenByRbac, with Key Vault's error bodies.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.identity import FakeIdentity, FakeReply, FakeRequest, FakeService

VAULT_RESOURCE = "https://vault.azure.net"


@dataclass
class _Secret:
    value: str
    version: str
    content_type: str | None


class FakeKeyVault(FakeService):
    def __init__(self, identity: FakeIdentity) -> None:
        super().__init__()
        self.identity = identity
        self._secrets: dict[str, _Secret] = {}
        self._denied: set[str] = set()
        self._lock = threading.Lock()
        self.gets: Counter[str] = Counter()  # secret name -> authorised GETs answered
        self.challenges = 0  # 401 challenges sent

    @property
    def url(self) -> str:
        return self.base_url

    def set_secret(self, name: str, value: str, content_type: str | None = None) -> None:
        with self._lock:
            self._secrets[name] = _Secret(value, uuid.uuid4().hex, content_type)

    def deny(self, name: str) -> None:
        """The caller's identity has no right to read this secret (403)."""
        self._denied.add(name)

    def handle(self, request: FakeRequest) -> FakeReply:
        token, why = self.identity.check(request.headers.get("authorization", ""), VAULT_RESOURCE)
        if token is None:
            self.challenges += 1
            message = (
                "AKV10000: Request is missing a Bearer or PoP token."
                if why == "empty"
                else f"AKV10022: Invalid token: {why}."
            )
            return FakeReply(
                401,
                {"error": {"code": "Unauthorized", "message": message}},
                headers={
                    "WWW-Authenticate": f'Bearer authorization="{self.identity.authority}", '
                    f'scope="{VAULT_RESOURCE}/.default"'
                },
            )
        if not request.query.get("api-version"):
            return _error(400, "BadParameter", "The 'api-version' query parameter is missing.")
        parts = [p for p in request.path.split("/") if p]
        if request.method != "GET" or len(parts) not in (2, 3) or parts[0] != "secrets":
            return _error(
                400, "BadParameter", f"Unsupported request {request.method} {request.path}"
            )
        name = parts[1]
        if name in self._denied:
            return _error(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\n"
                f"Caller: appid={token.client_id}\r\n"
                "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
                f"Resource: '/secrets/{name}'",
                inner="ForbiddenByRbac",
            )
        with self._lock:
            secret = self._secrets.get(name)
        if secret is None or (len(parts) == 3 and parts[2] != secret.version):
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault. If you recently "
                "deleted this secret you may be able to recover it using the correct recovery "
                "command.",
            )
        with self._lock:
            self.gets[name] += 1
        now = int(time.time())
        body: dict[str, object] = {
            "value": secret.value,
            "id": f"{self.url}/secrets/{name}/{secret.version}",
            "attributes": {
                "enabled": True,
                "created": now,
                "updated": now,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": {},
        }
        if secret.content_type:
            body["contentType"] = secret.content_type
        return FakeReply(200, body)


def _error(status: int, code: str, message: str, inner: str | None = None) -> FakeReply:
    error: dict[str, object] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return FakeReply(status, {"error": error})


@pytest.fixture
def fake_vault() -> Iterator[FakeKeyVault]:
    """A Key Vault fake and its own identity fake (`fake_vault.identity`), both started."""
    with FakeIdentity() as identity, FakeKeyVault(identity) as vault:
        yield vault
