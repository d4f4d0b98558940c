"""reclaim.ports.AdminIdentities over Microsoft Entra ID: bearer tokens checked in code.

A manage route's caller sends `Authorization: Bearer <access token for the API>`. The token is
accepted only when all of these hold (PyJWT with PyJWKClient):
- signed RS256 by a key the tenant publishes: the JWKS named by the OpenID configuration at
  `<RECLAIM_AUTHORITY_HOST>/<tenant>/v2.0/.well-known/openid-configuration`, both fetched over
  HTTPS with TLS validation (RECLAIM_CA_BUNDLE replaces the system's CAs; the environment's
  REQUESTS_CA_BUNDLE is ignored on purpose);
- issued by the tenant: `https://sts.windows.net/<tenant>/` (v1 tokens) or
  `<authority host>/<tenant>/v2.0` (v2), and `tid` is RECLAIM_TENANT_ID;
- for this API: `aud` is one of RECLAIM_ADMIN_AUDIENCE (client id and/or App ID URI);
- in date: `exp` and `nbf` (a minute of clock skew).
The roles are the token's `roles` claim; reclaim.domain.access decides what they allow.

With App Service Authentication in front (RECLAIM_PLATFORM_AUTH=true) the platform has already
validated the token and forwards the principal in X-MS-CLIENT-PRINCIPAL (base64 JSON of claims);
only then is that header believed, and its tenant and audience are still checked. Otherwise the
header is ignored: anyone can send it.

Keys are cached (5 minutes); an unknown key id refetches them at most every 30 seconds
(PyJWKClient's cooldown), so a flood of made-up key ids cannot hammer the tenant.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import threading
from collections.abc import Sequence
from typing import Any

import jwt
import requests

from reclaim.domain.access import Caller
from reclaim.errors import ConfigurationError, TransientError, Unauthenticated
from reclaim.settings import Settings

ALGORITHM = "RS256"  # what Entra ID signs access tokens with; anything else is refused
MAX_TOKEN = 16_384  # Entra tokens are a few KB; a larger header is not a token
CLOCK_SKEW = 60  # seconds
TIMEOUT = 10.0  # seconds per request to the identity platform
KEY_CACHE = 300  # seconds the tenant's key set is kept

# X-MS-CLIENT-PRINCIPAL claim types: the short names and the long WS-Fed forms App Service uses.
_ROLE_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
_TENANT_TYPES = ("tid", "http://schemas.microsoft.com/identity/claims/tenantid")
_OID_TYPES = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")
_UPN_TYPES = (
    "preferred_username",
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class EntraTokenVerifier:
    """Checks admin tokens against one tenant's published keys; thread-safe."""

    def __init__(
        self,
        *,
        authority_host: str,
        tenant_id: str,
        audiences: Sequence[str],
        ca_bundle: str = "",
        trust_platform_principal: bool = False,
    ) -> None:
        problems = []
        if not tenant_id:
            problems.append("RECLAIM_TENANT_ID (the tenant whose tokens are accepted)")
        if not audiences:
            problems.append(
                "RECLAIM_ADMIN_AUDIENCE (the client id or App ID URI of the API whose app roles "
                "admit administrators)"
            )
        if problems:
            raise ConfigurationError(
                "the manage routes refuse every caller until these are set: " + "; ".join(problems)
            )
        self.tenant_id = tenant_id
        self.audiences = tuple(audiences)
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.issuers = (f"https://sts.windows.net/{tenant_id}/", f"{self.authority}/v2.0")
        self.trust_platform_principal = trust_platform_principal
        self._ca_bundle = ca_bundle
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> EntraTokenVerifier:
        return cls(
            authority_host=settings.authority_host,
            tenant_id=settings.tenant_id,
            audiences=settings.admin_audience,
            ca_bundle=settings.ca_bundle,
            trust_platform_principal=settings.platform_auth,
        )

    # ---- the port ------------------------------------------------------------------------------

    def identify(self, authorization: str, platform_principal: str = "") -> Caller:
        if authorization.strip():
            return self._from_bearer(authorization.strip())
        if platform_principal and self.trust_platform_principal:
            return self._from_platform(platform_principal)
        raise Unauthenticated(
            "send an Entra ID access token for this API: Authorization: Bearer <token>",
            missing=True,
        )

    # ---- bearer tokens -------------------------------------------------------------------------

    def _from_bearer(self, authorization: str) -> Caller:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("the Authorization header must be: Bearer <token>")
        if len(token) > MAX_TOKEN:
            raise Unauthenticated("the bearer token is too long to be an access token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a well-formed JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"only {ALGORITHM}-signed tokens are accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the token names no signing key (kid)")
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=list(self.audiences),
                issuer=list(self.issuers),
                leeway=CLOCK_SKEW,
                options={"require": ["exp", "nbf", "iss", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                "the token is for another audience: ask for a token for this API "
                f"({', '.join(self.audiences)})"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"the token was not issued by tenant {self.tenant_id}") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"the token lacks the {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token is not acceptable: {error}") from None
        if claims.get("tid") != self.tenant_id:
            raise Unauthenticated(f"the token is from another tenant than {self.tenant_id}")
        roles = claims.get("roles") or []
        return Caller(
            object_id=_text(claims.get("oid")),
            tenant_id=self.tenant_id,
            roles=frozenset(r for r in roles if isinstance(r, str))
            if isinstance(roles, list)
            else frozenset(),
            name=_text(claims.get("name")),
            upn=_text(claims.get("preferred_username"))
            or _text(claims.get("upn"))
            or _text(claims.get("unique_name")),
            app_id=_text(claims.get("azp")) or _text(claims.get("appid")),
        )

    def _signing_key(self, kid: str) -> Any:
        keys = self._key_client()
        try:
            return keys.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as error:
            raise TransientError(f"the tenant's signing keys cannot be fetched: {error}") from None
        except jwt.PyJWKClientError:
            raise Unauthenticated(
                "the token's signing key is not one the tenant publishes"
            ) from None
        except jwt.PyJWKSetError as error:
            raise TransientError(f"the tenant's key set is not usable: {error}") from None

    def _key_client(self) -> jwt.PyJWKClient:
        """The tenant's JWKS client, made once from its OpenID configuration."""
        with self._lock:
            if self._keys is None:
                context = ssl.create_default_context(cafile=self._ca_bundle or None)
                self._keys = jwt.PyJWKClient(
                    self._jwks_uri(),
                    lifespan=KEY_CACHE,
                    timeout=TIMEOUT,
                    ssl_context=context,
                )
            return self._keys

    def _jwks_uri(self) -> str:
        url = f"{self.authority}/v2.0/.well-known/openid-configuration"
        with requests.Session() as session:
            session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies must not replace our CA
            session.verify = self._ca_bundle or True
            try:
                response = session.get(url, timeout=TIMEOUT)
            except requests.RequestException as error:
                raise TransientError(
                    f"the identity platform ({url}) cannot be reached: {type(error).__name__}"
                ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"the identity platform answered {response.status_code} for {url}")
        if response.status_code != 200:
            raise ConfigurationError(
                f"no OpenID configuration for tenant {self.tenant_id} at {url} "
                f"({response.status_code}): check RECLAIM_TENANT_ID and RECLAIM_AUTHORITY_HOST"
            )
        try:
            document = response.json()
        except ValueError:
            raise TransientError(f"the OpenID configuration at {url} is not JSON") from None
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise ConfigurationError(f"the OpenID configuration at {url} names no https jwks_uri")
        return jwks_uri

    # ---- the platform's forwarded principal ----------------------------------------------------

    def _from_platform(self, encoded: str) -> Caller:
        try:
            principal = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
            claims = [
                (str(c["typ"]), str(c["val"])) for c in principal["claims"] if isinstance(c, dict)
            ]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise Unauthenticated(
                "the forwarded principal (X-MS-CLIENT-PRINCIPAL) is malformed"
            ) from None

        def values(types: Sequence[str]) -> list[str]:
            return [value for typ, value in claims if typ in types]

        role_type = principal.get("role_typ")
        roles = values((*_ROLE_TYPES, role_type) if isinstance(role_type, str) else _ROLE_TYPES)
        if self.tenant_id not in values(_TENANT_TYPES):
            raise Unauthenticated(f"the forwarded principal is not from tenant {self.tenant_id}")
        if not set(values(("aud",))) & set(self.audiences):
            raise Unauthenticated("the forwarded principal's token is for another audience")
        return Caller(
            object_id=next(iter(values(_OID_TYPES)), ""),
            tenant_id=self.tenant_id,
            roles=frozenset(roles),
            name=next(iter(values(("name",))), ""),
            upn=next(iter(values(_UPN_TYPES)), ""),
            app_id=next(iter(values(("azp", "appid"))), ""),
        )
