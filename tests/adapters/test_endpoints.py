"""Settings for every endpoint and authority (README, "Endpoints and authorities"): the same code
runs against Microsoft's clouds, a proxy in front of Graph and the test fakes, with nothing patched.

Every test here blocks traffic that would leave the machine: HTTPS_PROXY points at a closed
loopback port and only 127.0.0.1 bypasses it, so a client that still asks login.microsoft.com
for instance discovery fails at once instead of reaching out.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import msal
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from reclaim.adapters.environment import EnvironmentSecrets
from reclaim.adapters.graph.client import GraphClient
from reclaim.adapters.graph.directory import GraphDirectory
from reclaim.adapters.keyvault import KeyVaultSecrets, secrets_from_settings, vault_credential
from reclaim.errors import ConfigurationError
from reclaim.settings import Settings, SettingsError
from tests.fakes.graph import FakeGraph, fake_graph
from tests.fakes.keyvault import FakeKeyVault, fake_vault
from tests.fakes.managed_identity import FakeManagedIdentity

__all__ = ["fake_graph", "fake_vault"]  # fixtures, imported for pytest

REPO = Path(__file__).resolve().parents[2]
GRAPH = "https://graph.microsoft.com"
# What azure-identity reads from the environment: cleared so only what a test sets is there.
IDENTITY_VARIABLES = (
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # discard port: nothing listens
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


# ---- the Graph token's audience -----------------------------------------------------------------


def _directory(env: dict[str, str]) -> GraphDirectory:
    return GraphDirectory(
        GraphClient.from_settings(Settings.from_env(env), EnvironmentSecrets(env))
    )


def test_a_proxy_in_front_of_graph_gets_tokens_for_graph(fake_graph: FakeGraph) -> None:
    """API Management or a proxy has its own host name but passes Graph's token on: the token's
    audience is Graph's, not the base URL's host (before RECLAIM_GRAPH_SCOPE: 401 on every call)."""
    fake_graph.audience = GRAPH
    group = fake_graph.add_group("Salesforce users")
    env = fake_graph.settings_env() | {"RECLAIM_GRAPH_SCOPE": f"{GRAPH}/.default"}
    assert _directory(env).check_group(group).display_name == "Salesforce users"
    assert [r.scope for r in fake_graph.identity.token_requests] == [f"{GRAPH}/.default"]


def test_without_the_scope_setting_the_audience_is_the_base_urls_host(
    fake_graph: FakeGraph,
) -> None:
    group = fake_graph.add_group("g")
    _directory(fake_graph.settings_env()).check_group(group)
    assert [r.scope for r in fake_graph.identity.token_requests] == [
        f"{fake_graph.base_url}/.default"
    ]
    fake_graph.audience = GRAPH  # now a proxy: the derived audience is refused, and said so
    fake_graph.expire_tokens()
    with pytest.raises(ConfigurationError, match="401"):
        _directory(fake_graph.settings_env()).check_group(group)


@pytest.mark.parametrize("value", ["https://graph.microsoft.com", "a/.default b/.default"])
def test_a_scope_that_is_not_one_default_scope_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="RECLAIM_GRAPH_SCOPE"):
        Settings.from_env({"RECLAIM_GRAPH_SCOPE": value})


# ---- the Key Vault credential -------------------------------------------------------------------

VAULT_APP = "reclaim-vault-reader"
VAULT_APP_SECRET = "vault-reader-credential-for-tests"


def _vault_settings(vault: FakeKeyVault, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "RECLAIM_KEY_VAULT_URL": vault.url,
            "RECLAIM_CA_BUNDLE": str(vault.ca_file),  # one test CA signs every fake
            **extra,
        }
    )


def test_key_vault_from_settings_through_a_private_authority(
    fake_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The credential the app builds itself (no credential passed in): authority from
    RECLAIM_KEY_VAULT_AUTHORITY_HOST, no instance discovery for a host that is not Microsoft's,
    and the token call trusts RECLAIM_CA_BUNDLE (the machine's REQUESTS_CA_BUNDLE does not)."""
    identity = fake_vault.identity
    identity.add_client(VAULT_APP, secret=VAULT_APP_SECRET)
    fake_vault.set_secret("graph-client-secret", "from-the-vault")
    monkeypatch.setenv("AZURE_TENANT_ID", identity.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", VAULT_APP)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", VAULT_APP_SECRET)
    settings = _vault_settings(fake_vault, RECLAIM_KEY_VAULT_AUTHORITY_HOST=identity.authority_host)
    secrets = secrets_from_settings(settings)
    assert secrets.get("graph-client-secret") == "from-the-vault"
    (token,) = identity.token_requests
    assert (token.client_id, token.scope, token.status) == (
        VAULT_APP,
        "https://vault.azure.net/.default",
        200,
    )


def test_key_vault_authority_defaults_to_the_graph_authority(
    fake_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One setting moves both to another cloud: RECLAIM_AUTHORITY_HOST serves Key Vault too."""
    identity = fake_vault.identity
    identity.add_client(VAULT_APP, secret=VAULT_APP_SECRET)
    fake_vault.set_secret("s", "v")
    monkeypatch.setenv("AZURE_TENANT_ID", identity.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", VAULT_APP)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", VAULT_APP_SECRET)
    settings = _vault_settings(fake_vault, RECLAIM_AUTHORITY_HOST=identity.authority_host)
    assert KeyVaultSecrets.from_settings(settings).get("s") == "v"


def test_key_vault_client_id_picks_the_user_assigned_identity(
    fake_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Azure the app reads Key Vault as a managed identity: RECLAIM_KEY_VAULT_CLIENT_ID names
    which of its user-assigned identities, whatever AZURE_CLIENT_ID says."""
    fake_vault.set_secret("webhook", "v1")
    with FakeManagedIdentity(fake_vault.identity, system_assigned="system-id") as platform:
        platform.user_assigned |= {"vault-reader-id", "storage-id"}
        for name, value in platform.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AZURE_CLIENT_ID", "storage-id")
        settings = _vault_settings(fake_vault, RECLAIM_KEY_VAULT_CLIENT_ID="vault-reader-id")
        assert secrets_from_settings(settings).get("webhook") == "v1"
        assert [r.get("client_id") for r in platform.requests] == ["vault-reader-id"]


def test_an_identity_the_platform_does_not_have_is_a_configuration_error(
    fake_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_vault.set_secret("webhook", "v1")
    with FakeManagedIdentity(fake_vault.identity) as platform:
        for name, value in platform.environment().items():
            monkeypatch.setenv(name, value)
        settings = _vault_settings(fake_vault, RECLAIM_KEY_VAULT_CLIENT_ID="not-this-apps")
        with pytest.raises(ConfigurationError, match="could not authenticate"):
            secrets_from_settings(settings).get("webhook")
    assert fake_vault.gets["webhook"] == 0


def test_instance_discovery_is_off_only_for_hosts_that_are_not_microsofts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read from the credential built (SDK internals): no test may reach Microsoft's hosts."""
    monkeypatch.setenv("AZURE_TENANT_ID", "contoso.onmicrosoft.com")
    monkeypatch.setenv("AZURE_CLIENT_ID", VAULT_APP)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", VAULT_APP_SECRET)

    def discovery(env: dict[str, str]) -> object:
        chain = vault_credential(Settings.from_env(env))
        secret_credential = chain.credentials[0]._credential  # type: ignore[attr-defined]
        return secret_credential._instance_discovery

    assert discovery({}) is True
    assert discovery({"RECLAIM_AUTHORITY_HOST": "https://login.microsoftonline.us"}) is True
    assert discovery({"RECLAIM_KEY_VAULT_AUTHORITY_HOST": "https://127.0.0.1:8443"}) is False


# ---- the msal floor -----------------------------------------------------------------------------

# msal derives a certificate's thumbprint itself from 1.35.0 on; reclaim's certificate credential
# (reclaim.adapters.graph.auth.certificate_credential) carries only the key and the certificate,
# which older versions refuse ("client_credential needs to follow this format").
FIRST_MSAL_FOR_EVERY_CREDENTIAL_FORM = Version("1.35.0")


def _runtime_requirement(name: str) -> Requirement:
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    return next(Requirement(r) for r in groups["runtime"] if Requirement(r).name == name)


def test_the_msal_floor_admits_no_version_that_refuses_a_credential_form() -> None:
    requirement = _runtime_requirement("msal")
    refused = [v for v in ("1.31.0", "1.33.0", "1.34.0") if requirement.specifier.contains(v)]
    assert not refused, f"pyproject.toml allows msal {refused}: raise the floor to 1.35"
    assert requirement.specifier.contains(str(FIRST_MSAL_FOR_EVERY_CREDENTIAL_FORM))


def test_the_locked_msal_is_the_one_tested() -> None:
    """tests/adapters/test_graph.py::test_certificate_credential_from_the_secret_store runs the
    certificate form against the fake token endpoint with this msal: it must be the lock's."""
    lock = (REPO / "requirements.txt").read_text()
    pinned = next(
        line.split("==")[1].split()[0] for line in lock.splitlines() if line.startswith("msal==")
    )
    assert Version(msal.__version__) == Version(pinned)
    assert Version(pinned) >= FIRST_MSAL_FOR_EVERY_CREDENTIAL_FORM
