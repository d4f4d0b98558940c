"""Secrets from Azure Key Vault (azure-keyvault-secrets + azure-identity), cached with a time limit.

The credential is DefaultAzureCredential (the Function app's managed identity in Azure) unless one is
given, built from settings so the same code reads a sovereign cloud's vault, one behind a private
authority and the test fakes: RECLAIM_KEY_VAULT_AUTHORITY_HOST (default: RECLAIM_AUTHORITY_HOST),
instance discovery only for Microsoft's own authorities, RECLAIM_CA_BUNDLE for the token calls as for
the vault, and RECLAIM_KEY_VAULT_CLIENT_ID for a user-assigned managed (or workload) identity.

Values are cached for settings.secret_cache_ttl so a removal costs no Key Vault call, and a rotated
secret is picked up after at most that long. Errors name the secret and the vault, never a
value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from reclaim.adapters.authorities import is_microsoft_authority
from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.errors import ConfigurationError, TransientError

if TYPE_CHECKING:
    from reclaim.ports import Secrets
    from reclaim.settings import Settings

# Public and sovereign Key Vault DNS suffixes. For these the SDK keeps checking that the 401
# challenge's resource belongs to the vault's domain; any other host (a test fake, a private
# endpoint alias) cannot pass that check, so it is switched off only there.
AZURE_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
)


def vault_credential(settings: Settings) -> TokenCredential:
    """DefaultAzureCredential pointed at the configured authority, trusting RECLAIM_CA_BUNDLE."""
    authority = settings.key_vault_authority_host or settings.authority_host
    options: dict[str, object] = {
        "authority": authority,
        "disable_instance_discovery": not is_microsoft_authority(authority),
    }
    if settings.ca_bundle:
        options["connection_verify"] = settings.ca_bundle
    if settings.key_vault_client_id:
        # the workload identity follows it (azure-identity's default for workload_identity_client_id)
        options["managed_identity_client_id"] = settings.key_vault_client_id
    return DefaultAzureCredential(**options)


def is_azure_vault(vault_url: str) -> bool:
    host = (urlsplit(vault_url).hostname or "").lower()
    return host.endswith(AZURE_VAULT_SUFFIXES)


class KeyVaultSecrets:
    """reclaim.ports.Secrets over one Key Vault; thread-safe, values cached for `ttl`."""

    def __init__(
        self,
        vault_url: str,
        *,
        credential: TokenCredential | None = None,
        ca_bundle: str = "",
        ttl: timedelta = timedelta(minutes=5),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not vault_url:
            raise ConfigurationError(
                "RECLAIM_KEY_VAULT_URL is required to read secrets from Key Vault"
            )
        self.vault_url = vault_url.rstrip("/")
        options: dict[str, object] = {}
        if ca_bundle:
            options["connection_verify"] = ca_bundle
        self._client = SecretClient(
            vault_url=self.vault_url,
            credential=credential or DefaultAzureCredential(),
            verify_challenge_resource=is_azure_vault(self.vault_url),
            **options,
        )
        self._ttl = ttl.total_seconds()
        self._clock = clock
        # One lock for reads and fetches: there are a handful of secrets, and holding it while
        # fetching means threads that miss the cache together cause one Key Vault call, not many.
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, credential: TokenCredential | None = None
    ) -> KeyVaultSecrets:
        return cls(
            settings.key_vault_url,
            credential=credential or vault_credential(settings),
            ca_bundle=settings.ca_bundle,
            ttl=settings.secret_cache_ttl,
        )

    def get(self, name: str) -> str:
        if not name:
            raise ConfigurationError("a secret was asked for without a name: set its *_SECRET_NAME")
        with self._lock:
            cached = self._cache.get(name)
            now = self._clock()
            if cached is not None and now - cached[1] < self._ttl:
                return cached[0]
            value = self._fetch(name)
            self._cache[name] = (value, now)
            return value

    def _fetch(self, name: str) -> str:
        where = f"secret {name!r} in Key Vault {self.vault_url}"
        try:
            secret = self._client.get_secret(name)
        except ResourceNotFoundError as error:
            raise ConfigurationError(
                f"{where} was not found: create it, or correct the setting that names it"
            ) from error
        except ClientAuthenticationError as error:
            raise ConfigurationError(
                f"could not authenticate to read {where}: check the app's identity "
                f"(managed identity or AZURE_* variables) and its tenant ({_first_line(error)})"
            ) from error
        except ServiceRequestError as error:
            raise TransientError(f"Key Vault could not be reached to read {where}") from error
        except HttpResponseError as error:
            status = error.status_code or 0
            code = error.error.code if error.error else ""
            if status == 403:
                raise ConfigurationError(
                    f"access to {where} was denied (403 {code}): grant the app's identity the "
                    "'Key Vault Secrets User' role on the vault, or a 'get' secret access policy"
                ) from error
            if status == 429 or status >= 500:
                raise TransientError(f"Key Vault answered {status} reading {where}") from error
            raise ConfigurationError(
                f"Key Vault refused to read {where} ({status} {code})"
            ) from error
        if secret.value is None:
            raise ConfigurationError(f"{where} has no value")
        return secret.value


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def secrets_from_settings(settings: Settings) -> Secrets:
    """The Secrets source settings.secrets_source names; never a silent fallback to another."""
    if settings.secrets_source == "keyvault":
        return KeyVaultSecrets.from_settings(settings)
    if settings.secrets_source == "env":
        return EnvironmentSecrets()
    raise ConfigurationError(
        f"RECLAIM_SECRETS_SOURCE: expected keyvault or env, got {settings.secrets_source!r}"
    )
