"""Bicep, Terraform and local.settings.sample.json name the same settings, queues and tables as the
code (reclaim.settings), with the code's defaults wherever a deployment does not need another value.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from reclaim.settings import SETTINGS, Settings, SettingsError, table_names, variable_names
from tests.support.infra_templates import (
    MAIN_BICEP,
    Runtime,
    bicep_deployment,
    bicep_module,
    parse_bicep,
    sample_settings,
    terraform_deployment,
    terraform_locals,
    terraform_resources,
)

# Settings the Functions host (not reclaim) reads; the only names allowed beside reclaim's own.
HOST_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "FUNCTIONS_WORKER_RUNTIME",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "AZURE_CLIENT_ID",
    }
)

RUNTIME = object()  # expected: a value only known at deploy time

# Where a source deliberately differs from the code's default.
AZURE_VALUES: dict[str, Any] = {
    "RECLAIM_STATE_BACKEND": "tables",
    "RECLAIM_SECRETS_SOURCE": "keyvault",
    "RECLAIM_KEY_VAULT_URL": RUNTIME,
    "RECLAIM_KEY_VAULT_CLIENT_ID": RUNTIME,  # the app's user-assigned identity
}
LOCAL_VALUES: dict[str, Any] = {
    "RECLAIM_STATE_BACKEND": "tables",  # against Azurite, as the functions run in Azure
    "RECLAIM_SECRETS_SOURCE": "env",
}

# Stand-ins for deploy-time values when the resolved settings are fed to the real parser.
DEPLOY_TIME_EXAMPLES = {
    "RECLAIM_KEY_VAULT_URL": "https://kv-reclaim-example.vault.azure.net/",
    "RECLAIM_KEY_VAULT_CLIENT_ID": "00000000-0000-0000-0000-00000000c11d",
}


SOURCES = ["bicep", "terraform", "sample"]


@pytest.fixture(scope="module")
def sources() -> dict[str, dict[str, Any]]:
    """Setting name -> value (resolved with the defaults) in each source."""
    return {
        "bicep": bicep_deployment().app_settings,
        "terraform": terraform_deployment().app_settings,
        "sample": sample_settings()["Values"],
    }


def _code_default(variable: str) -> str:
    return next(default for name, _, default in SETTINGS.values() if name == variable)


@pytest.mark.parametrize("source", SOURCES)
def test_every_setting_the_code_reads_is_there(
    sources: dict[str, dict[str, Any]], source: str
) -> None:
    missing = [name for name in variable_names() if name not in sources[source]]
    assert not missing, f"{source} lacks settings reclaim reads: {missing}"


@pytest.mark.parametrize("source", SOURCES)
def test_nothing_the_code_does_not_read(sources: dict[str, dict[str, Any]], source: str) -> None:
    extra = sorted(set(sources[source]) - set(variable_names()) - HOST_SETTINGS)
    assert not extra, f"{source} names settings nothing reads: {extra}"


def test_both_templates_set_the_same_settings(sources: dict[str, dict[str, Any]]) -> None:
    assert list(sources["bicep"]) == list(sources["terraform"])


@pytest.mark.parametrize(
    ("source", "overrides"),
    [("bicep", AZURE_VALUES), ("terraform", AZURE_VALUES), ("sample", LOCAL_VALUES)],
)
def test_values_are_the_code_defaults_unless_the_source_needs_another(
    sources: dict[str, dict[str, Any]], source: str, overrides: dict[str, Any]
) -> None:
    wrong = {}
    for variable in variable_names():
        value = sources[source].get(variable, "<missing>")
        expected = overrides.get(variable, _code_default(variable))
        if expected is RUNTIME:
            if not isinstance(value, Runtime):
                wrong[variable] = (value, "a deploy-time reference")
        elif value != expected:
            wrong[variable] = (value, expected)
    assert not wrong, f"{source}: (value, expected) {wrong}"


@pytest.mark.parametrize("source", SOURCES)
def test_the_settings_parser_accepts_the_values(
    sources: dict[str, dict[str, Any]], source: str
) -> None:
    environment = {
        name: DEPLOY_TIME_EXAMPLES.get(name, value)
        for name, value in sources[source].items()
        if name in variable_names()
    }
    unresolved = {name: value for name, value in environment.items() if isinstance(value, Runtime)}
    assert not unresolved, f"{source}: no example value for {unresolved}"
    Settings.from_env(environment)


def test_the_parser_would_catch_a_bad_value(sources: dict[str, dict[str, Any]]) -> None:
    # the check above can fail: a schedule of five fields is refused
    environment = {**sources["sample"], "RECLAIM_SCHEDULER_SCHEDULE": "*/5 * * * *"}
    with pytest.raises(SettingsError, match="RECLAIM_SCHEDULER_SCHEDULE"):
        Settings.from_env(environment)


@pytest.mark.parametrize("deployment", [bicep_deployment, terraform_deployment])
def test_queues_and_tables_are_the_codes(deployment: Any) -> None:
    declared = deployment()
    queue = _code_default("RECLAIM_REMOVAL_QUEUE")
    assert declared.queue_names == [queue, f"{queue}-poison"]
    assert declared.table_names == table_names(_code_default("RECLAIM_TABLE_PREFIX"))


def test_bicep_creates_the_queues_and_tables_and_sets_the_settings() -> None:
    storage_call = parse_bicep(MAIN_BICEP)["modules"]["storage"]["config"]["params"]
    assert storage_call["queueNames"] == "queueNames"
    assert storage_call["tableNames"]["loop_type"]["detail"]["array_name"] == "tableSuffixes"
    assert storage_call["tableNames"]["config"] == "${tablePrefix}${suffix}"
    storage = bicep_module("storage")["resources"]
    assert storage["queues"]["config"]["loop_type"]["detail"]["array_name"] == "queueNames"
    assert storage["tables"]["config"]["loop_type"]["detail"]["array_name"] == "tableNames"

    app_call = parse_bicep(MAIN_BICEP)["modules"]["app"]["config"]["params"]
    assert app_call["appSettings"] == "appSettings"
    site = bicep_module("app")["resources"]["app"]["config"]
    loop = site["properties"]["siteConfig"]["appSettings"]
    assert loop["loop_type"]["detail"]["array_name"]["function"] == {
        "type": "items",
        "parameters": {"arg_1": "appSettings"},
    }
    item = loop["loop_type"]["detail"]["item_name"]
    for field, part in (("name", "key"), ("value", "value")):
        accessor = loop["config"][field]["operator"]
        assert accessor["operands"] == {"operand_1": item, "operand_2": part}


def test_terraform_creates_the_queues_and_tables_and_sets_the_settings() -> None:
    resources = terraform_resources()
    assert (
        resources[("azurerm_storage_queue", "reclaim")]["for_each"] == "${toset(local.queue_names)}"
    )
    assert (
        resources[("azurerm_storage_table", "reclaim")]["for_each"] == "${toset(local.table_names)}"
    )
    site = resources[("azapi_resource", "function_app")]["body"]["properties"]["siteConfig"]
    assert re.fullmatch(
        r"\$\{\[for (\w+), (\w+) in local\.app_settings : \{name = \1, value = \2\}\]\}",
        site["appSettings"],
    )
    assert "app_settings" in terraform_locals()


@pytest.mark.parametrize("source", ["bicep", "terraform"])
def test_azure_reaches_storage_by_identity(sources: dict[str, dict[str, Any]], source: str) -> None:
    settings = sources[source]
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    for name in (
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__clientId",
        "AZURE_CLIENT_ID",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ):
        assert isinstance(settings[name], Runtime), (
            f"{source}: {name} should come from the deployment"
        )
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith(";Authorization=AAD")
    # a plain AzureWebJobsStorage (a connection string) would win over the identity settings
    assert "AzureWebJobsStorage" not in settings
    # Flex Consumption takes the runtime from functionAppConfig and refuses this app setting
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings


def test_sample_runs_against_azurite() -> None:
    sample = sample_settings()
    assert sample["IsEncrypted"] is False
    assert set(sample) == {"IsEncrypted", "Values"}
    values = sample["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert all(isinstance(value, str) for value in values.values())


@pytest.mark.parametrize("source", SOURCES)
def test_secret_settings_hold_names_not_values(
    sources: dict[str, dict[str, Any]], source: str
) -> None:
    for name, value in sources[source].items():
        if name.endswith(("_SECRET_NAME", "_CERTIFICATE_NAME")):
            # Key Vault object names: letters, digits and dashes, at most 127
            assert re.fullmatch(r"[A-Za-z0-9-]{0,127}", value), f"{source}: {name}={value!r}"
        if isinstance(value, str) and not isinstance(value, Runtime):
            assert "AccountKey=" not in value and "SharedAccessSignature" not in value, name
            assert not re.search(r"[A-Za-z0-9+/]{40,}={0,2}", value), (
                f"{source}: {name} looks like a key"
            )
