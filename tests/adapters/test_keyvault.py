"""KeyVaultSecrets with the real SecretClient and ClientSecretCredential against the Key Vault and
token-endpoint fakes over HTTPS; EnvironmentSecrets; choosing a source from settings."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from azure.identity import ClientSecretCredential

from reclaim.adapters.environment import EnvironmentSecrets, variable_for
from reclaim.adapters.keyvault import KeyVaultSecrets, is_azure_vault, secrets_from_settings
from reclaim.errors import ConfigurationError
from reclaim.settings import Settings
from tests.adapters.test_graph import FakeClock
from tests.fakes.keyvault import FakeKeyVault, fake_vault

__all__ = ["fake_vault"]  # the fixture, imported for pytest

CLIENT_ID = "reclaim-function-app"
CLIENT_SECRET = "identity-credential-for-tests"


def make_secrets(vault: FakeKeyVault, clock: FakeClock | None = None) -> KeyVaultSecrets:
    vault.identity.add_client(CLIENT_ID, secret=CLIENT_SECRET)
    credential = ClientSecretCredential(
        vault.identity.tenant_id,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=vault.identity.authority_host,
        disable_instance_discovery=True,
        connection_verify=str(vault.identity.ca_file),
    )
    return KeyVaultSecrets(
        vault.url,
        credential=credential,
        ca_bundle=str(vault.ca_file),
        ttl=timedelta(minutes=5),
        clock=clock or FakeClock(),
    )


def test_reads_a_secret_through_the_challenge(fake_vault: FakeKeyVault) -> None:
    fake_vault.set_secret("graph-client-secret", "s3cr3t-value")
    secrets = make_secrets(fake_vault)
    assert secrets.get("graph-client-secret") == "s3cr3t-value"
    assert fake_vault.challenges == 1  # the SDK's first request carries no token
    (token,) = fake_vault.identity.token_requests
    assert (token.scope, token.status) == ("https://vault.azure.net/.default", 200)


def test_values_are_cached_until_the_time_limit(fake_vault: FakeKeyVault) -> None:
    fake_vault.set_secret("webhook", "v1")
    clock = FakeClock()
    secrets = make_secrets(fake_vault, clock)
    assert [secrets.get("webhook") for _ in range(5)] == ["v1"] * 5
    assert fake_vault.gets["webhook"] == 1
    fake_vault.set_secret("webhook", "v2")  # rotated in the vault
    clock.now += 299
    assert secrets.get("webhook") == "v1"
    clock.now += 2
    assert secrets.get("webhook") == "v2"
    assert fake_vault.gets["webhook"] == 2


def test_threads_missing_the_cache_together_cause_one_read(fake_vault: FakeKeyVault) -> None:
    fake_vault.set_secret("webhook", "v1")
    secrets = make_secrets(fake_vault)
    values: list[str] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        values.append(secrets.get("webhook"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert values == ["v1"] * 8
    assert fake_vault.gets["webhook"] == 1


def test_a_missing_secret_names_the_secret_and_the_vault(fake_vault: FakeKeyVault) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_secrets(fake_vault).get("graph-client-secret")
    message = str(caught.value)
    assert "'graph-client-secret'" in message and fake_vault.url in message
    assert "not found" in message


def test_denied_access_names_the_secret_and_the_vault_never_the_value(
    fake_vault: FakeKeyVault,
) -> None:
    fake_vault.set_secret("graph-client-secret", "do-not-print-me")
    fake_vault.deny("graph-client-secret")
    with pytest.raises(ConfigurationError) as caught:
        make_secrets(fake_vault).get("graph-client-secret")
    message = str(caught.value)
    assert "'graph-client-secret'" in message and fake_vault.url in message
    assert "403" in message and "Key Vault Secrets User" in message
    assert "do-not-print-me" not in message


def test_a_credential_the_tenant_refuses_is_a_configuration_error(
    fake_vault: FakeKeyVault,
) -> None:
    fake_vault.set_secret("s", "v")
    credential = ClientSecretCredential(
        fake_vault.identity.tenant_id,
        "unknown-app",
        "whatever",
        authority=fake_vault.identity.authority_host,
        disable_instance_discovery=True,
        connection_verify=str(fake_vault.identity.ca_file),
    )
    secrets = KeyVaultSecrets(
        fake_vault.url, credential=credential, ca_bundle=str(fake_vault.ca_file)
    )
    with pytest.raises(ConfigurationError, match="could not authenticate") as caught:
        secrets.get("s")
    assert "whatever" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "azure"),
    [
        ("https://contoso-kv.vault.azure.net", True),
        ("https://contoso-kv.vault.azure.net/", True),
        ("https://contoso-kv.vault.usgovcloudapi.net", True),
        ("https://contoso-kv.vault.azure.cn", True),
        ("https://127.0.0.1:8443", False),
        ("https://vault.azure.net.example.test", False),
    ],
)
def test_challenge_resource_is_verified_only_for_azure_vault_hosts(url: str, azure: bool) -> None:
    assert is_azure_vault(url) is azure


def test_challenge_verification_stays_on_for_azure_hosts() -> None:
    # SDK internals, read only to prove the switch is set per host (the fake proves "off" works).
    on = KeyVaultSecrets("https://contoso-kv.vault.azure.net")
    off = KeyVaultSecrets("https://127.0.0.1:8443")
    assert on._client._client._config.authentication_policy._verify_challenge_resource is True
    assert off._client._client._config.authentication_policy._verify_challenge_resource is False


# ---- the environment source ---------------------------------------------------------------------


def test_environment_secrets_read_the_named_variable() -> None:
    env = {"RECLAIM_SECRET_GRAPH_CLIENT_SECRET": "abc", "RECLAIM_SECRET_NEXTHINK_API_KEY_2": "x"}
    secrets = EnvironmentSecrets(env)
    assert secrets.get("graph-client-secret") == "abc"
    assert secrets.get("nexthink.api-key/2") == "x"
    assert variable_for("reclaim webhook secret") == "RECLAIM_SECRET_RECLAIM_WEBHOOK_SECRET"


def test_a_missing_environment_secret_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="RECLAIM_SECRET_GRAPH_CLIENT_SECRET"):
        EnvironmentSecrets({}).get("graph-client-secret")


# ---- choosing ------------------------------------------------------------------------------------


def test_settings_choose_the_environment_explicitly() -> None:
    settings = Settings.from_env({"RECLAIM_SECRETS_SOURCE": "env"})
    assert isinstance(secrets_from_settings(settings), EnvironmentSecrets)


def test_settings_choose_key_vault() -> None:
    settings = Settings.from_env(
        {"RECLAIM_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net", "RECLAIM_CA_BUNDLE": ""}
    )
    chosen = secrets_from_settings(settings)
    assert isinstance(chosen, KeyVaultSecrets)
    assert chosen.vault_url == "https://contoso-kv.vault.azure.net"


def test_key_vault_without_a_url_is_an_error_not_a_fallback() -> None:
    settings = Settings.from_env({"RECLAIM_SECRETS_SOURCE": "keyvault"})
    with pytest.raises(ConfigurationError, match="RECLAIM_KEY_VAULT_URL"):
        secrets_from_settings(settings)


def test_key_vault_secrets_from_settings_against_the_fake(fake_vault: FakeKeyVault) -> None:
    fake_vault.identity.add_client(CLIENT_ID, secret=CLIENT_SECRET)
    fake_vault.set_secret("webhook", "v1")
    settings = Settings.from_env(
        {
            "RECLAIM_KEY_VAULT_URL": fake_vault.url,
            "RECLAIM_CA_BUNDLE": str(fake_vault.ca_file),
            "RECLAIM_SECRET_CACHE_TTL": "1m",
        }
    )
    credential = ClientSecretCredential(
        fake_vault.identity.tenant_id,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=fake_vault.identity.authority_host,
        disable_instance_discovery=True,
        connection_verify=str(fake_vault.identity.ca_file),
    )
    secrets = KeyVaultSecrets.from_settings(settings, credential)
    assert secrets.get("webhook") == "v1"
