"""App-only credentials for Graph: client secret or certificate through msal."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msal
import requests
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

from reclaim.adapters.authorities import is_microsoft_authority
from reclaim.errors import (
    ConfigurationError,
    ReclaimError,
    TransientError,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


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


class AppToken:
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
        try:
            app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=credential,
                authority=self._authority,
                instance_discovery=is_microsoft_authority(self._authority),
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
