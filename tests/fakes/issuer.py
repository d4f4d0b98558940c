"""A fake Microsoft Entra ID token issuer over real HTTPS: OpenID configuration, JWKS, tokens.

It publishes what a tenant publishes (`/<tenant>/v2.0/.well-known/openid-configuration` naming
`/<tenant>/discovery/v2.0/keys`) with RSA signing keys of its own, and mints access tokens shaped
like Entra ID's v1 and v2 tokens (RS256, kid, iss, aud, tid, oid, roles, nbf, exp). Tests hand
the tokens to the real verifier (reclaim.adapters.entra_tokens, PyJWT's PyJWKClient), which
fetches the keys over TLS as it does from login.microsoftonline.com.

Knobs for hostile tokens: `mint(**claims)` overrides or removes (None) any claim, `key=` signs
with an unpublished key (a forgery or an unknown kid), `rotate()` publishes a new key.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fakes.identity import FakeIdentity, FakeReply, FakeRequest

API_CLIENT_ID = "6f1c3a52-0b8e-4d7a-9a53-2f1f0c0d9e11"  # the API's app registration
API_APP_ID_URI = f"api://{API_CLIENT_ID}"
ADMIN, READER = "Reclaim.Admin", "Reclaim.Reader"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "kty": "RSA"}


def new_key() -> SigningKey:
    """A new RSA key (never one handed out before, so a forgery cannot verify by chance)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(f"fake-kid-{uuid.uuid4().hex[:12]}", private)


class FakeIssuer(FakeIdentity):
    """One tenant that issues access tokens for the reclaim API."""

    def __init__(self, tenant_id: str = "") -> None:
        super().__init__(tenant_id)
        self.keys = [new_key()]
        self.jwks_requests = 0

    @property
    def key(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self) -> SigningKey:
        """Publish a new key (the old one stays published, as Entra ID overlaps keys)."""
        self.keys.append(new_key())
        return self.key

    @property
    def v2_issuer(self) -> str:
        return f"{self.authority}/v2.0"

    @property
    def v1_issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    def settings(self) -> dict[str, str]:
        """The app settings that point reclaim's manage routes at this tenant."""
        return {
            "RECLAIM_AUTHORITY_HOST": self.authority_host,
            "RECLAIM_TENANT_ID": self.tenant_id,
            "RECLAIM_ADMIN_AUDIENCE": f"{API_CLIENT_ID},{API_APP_ID_URI}",
            "RECLAIM_CA_BUNDLE": str(self.ca_file),
        }

    def claims(self, *, roles: Any = (ADMIN,), version: str = "2.0") -> dict[str, Any]:
        """Claims as Entra ID puts them in an access token; roles=None leaves the claim out,
        anything but a tuple or list goes in as it is (a malformed claim)."""
        now = int(time.time())
        common = {
            "tid": self.tenant_id,
            "oid": "0d6f1b7e-5c2a-4b8e-9f00-00000000a11a",
            "sub": "ada-subject",
            "name": "Ada Admin",
            "roles": list(roles) if isinstance(roles, tuple | list) else roles,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "uti": uuid.uuid4().hex,
            "ver": version,
        }
        if roles is None:
            del common["roles"]
        if version == "1.0":
            return {
                **common,
                "iss": self.v1_issuer,
                "aud": API_APP_ID_URI,
                "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                "upn": "ada@contoso.example",
                "unique_name": "ada@contoso.example",
            }
        return {
            **common,
            "iss": self.v2_issuer,
            "aud": API_CLIENT_ID,
            "azp": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            "preferred_username": "ada@contoso.example",
        }

    def mint(
        self,
        *,
        roles: Any = (ADMIN,),
        version: str = "2.0",
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """A signed access token; an override of None removes the claim."""
        claims = self.claims(roles=roles, version=version)
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        signer = key or self.key
        return jwt.encode(
            claims,
            signer.private,
            algorithm="RS256",
            headers={"kid": signer.kid, "typ": "JWT", **(headers or {})},
        )

    def bearer(self, **mint: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(**mint)}"}

    @staticmethod
    def unsigned(claims: dict[str, Any]) -> str:
        """A token with alg "none" (no signature), as an attacker would send it."""

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."

    # -- the protocol

    def handle(self, request: FakeRequest) -> FakeReply:
        if request.method == "GET" and request.path == f"/{self.tenant_id}/discovery/v2.0/keys":
            self.jwks_requests += 1
            return FakeReply(200, {"keys": [k.public_jwk() for k in self.keys]})
        return super().handle(request)


def platform_principal(claims: dict[str, str | list[str]], auth_type: str = "aad") -> str:
    """X-MS-CLIENT-PRINCIPAL as App Service Authentication forwards it (base64 JSON)."""
    listed = [
        {"typ": typ, "val": value}
        for typ, values in claims.items()
        for value in (values if isinstance(values, list) else [values])
    ]
    principal = {
        "auth_typ": auth_type,
        "claims": listed,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    return base64.b64encode(json.dumps(principal).encode()).decode()
