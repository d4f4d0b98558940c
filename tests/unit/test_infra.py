"""The deployment templates parse, are formatted, and describe the same secure deployment.

Bicep parses with pycep-parser (the Bicep CLI cannot be installed here), Terraform with python-hcl2
and `terraform fmt`; checkov (in its own venv, tests/support/checkov.sh) scans both, and scans a
copy without the inline skips to show that every skip still hides a failing check. The security
properties checkov cannot see (the Terraform function app is an azapi_resource) are asserted here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.checkov_scan import (
    SKIP,
    checkov_binary,
    copy_without_skips,
    declared_skips,
    findings,
    run_checkov,
)
from tests.support.components import missing
from tests.support.infra_templates import (
    INFRA,
    MAIN_BICEP,
    REPO,
    TERRAFORM,
    bicep_files,
    bicep_module,
    parse_bicep,
    parse_terraform_file,
    terraform_blocks,
    terraform_files,
    terraform_locals,
    terraform_resources,
    terraform_variables,
)

# Built-in role definition id -> name. The app's identity holds exactly these.
APP_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# Only for the optional administrator who writes the secrets, never for the app.
ADMIN_ROLES = {"b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer"}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _template_texts() -> dict[Path, str]:
    return {path: path.read_text() for path in [*bicep_files(), *terraform_files()]}


# ---- parsing and formatting ----


@pytest.mark.parametrize("path", bicep_files(), ids=lambda path: path.name)
def test_bicep_parses(path: Path) -> None:
    parsed = parse_bicep(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_the_bicep_parser_rejects_broken_bicep(tmp_path: Path) -> None:
    from pycep import BicepParser

    broken = tmp_path / "broken.bicep"
    broken.write_text("param name string = \nresource x 'Microsoft.Web/sites@2024-04-01' = {\n")
    with pytest.raises(Exception):  # noqa: B017 - pycep raises ValueError or a lark error
        BicepParser().parse(file_path=broken)


@pytest.mark.parametrize("path", terraform_files(), ids=lambda path: path.name)
def test_terraform_parses(path: Path) -> None:
    assert parse_terraform_file(path)


def test_terraform_is_formatted() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        missing("terraform is not installed (this kind of machine has it at /usr/local/bin)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null"},
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt -check:\n{result.stdout}{result.stderr}"


# ---- checkov over both ----


@pytest.fixture(scope="module")
def checkov() -> str:
    return checkov_binary()


@pytest.fixture(scope="module")
def checkov_report(checkov: str) -> dict[str, dict[str, Any]]:
    """checkov's JSON report per framework ("bicep", "terraform")."""
    return run_checkov(checkov, INFRA)


@pytest.fixture(scope="module")
def checkov_report_without_skips(
    checkov: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The same scan of a copy of infra/ with every checkov:skip line removed."""
    return run_checkov(checkov, copy_without_skips(tmp_path_factory.mktemp("infra") / "infra"))


def test_checkov_scanned_both_templates(checkov_report: dict[str, dict[str, Any]]) -> None:
    assert set(checkov_report) == {"bicep", "terraform"}
    for framework, entry in checkov_report.items():
        summary = entry["summary"]
        # checkov exits 0 for a Bicep file it cannot parse: the summary tells
        assert summary["parsing_errors"] == 0, f"{framework}: {summary}"
        assert summary["resource_count"] > 0, f"{framework}: {summary}"


def test_checkov_finds_no_failed_check(checkov_report: dict[str, dict[str, Any]]) -> None:
    failed = [
        f"{framework} {check['check_id']} {check['check_name']} at {check['file_path']} {check['resource']}"
        for framework, entry in checkov_report.items()
        for check in entry["results"].get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)


def test_every_skipped_check_has_a_written_reason(
    checkov_report: dict[str, dict[str, Any]],
) -> None:
    skipped = [
        check
        for entry in checkov_report.values()
        for check in entry["results"].get("skipped_checks", [])
    ]
    assert skipped, "expected the documented inline suppressions"
    vague = [
        f"{check['check_id']} {check['resource']}: {check['check_result'].get('suppress_comment')!r}"
        for check in skipped
        if len((check["check_result"].get("suppress_comment") or "").split()) < 6
    ]
    assert not vague, "skips need a reason:\n" + "\n".join(vague)


def test_checkov_sees_every_skip_where_it_is_written(
    checkov_report: dict[str, dict[str, Any]],
) -> None:
    assert findings(checkov_report, "skipped_checks") == declared_skips()


def test_every_skip_is_still_needed(
    checkov_report_without_skips: dict[str, dict[str, Any]],
) -> None:
    # A skip whose check passes (or does not apply) without it hides nothing: remove it.
    for framework, entry in checkov_report_without_skips.items():
        assert entry["summary"]["parsing_errors"] == 0, f"{framework}: {entry['summary']}"
    unneeded = sorted(declared_skips() - findings(checkov_report_without_skips, "failed_checks"))
    assert not unneeded, "checkov passes these without their skip:\n" + "\n".join(
        " ".join(skip) for skip in unneeded
    )


def test_the_zone_redundancy_skip_says_why_the_storage_is_not_zone_redundant() -> None:
    assert _bicep_resource("storage", "account")["config"]["sku"] == {"name": "Standard_GRS"}
    assert (
        terraform_resources()[("azurerm_storage_account", "host")]["account_replication_type"]
        == "GRS"
    )
    for path in (INFRA / "modules" / "functionapp.bicep", TERRAFORM / "functionapp.tf"):
        reasons = [match[2] for match in map(SKIP.search, path.read_text().splitlines()) if match]
        assert any("GRS" in reason and "not zone-redundant" in reason for reason in reasons), path


# ---- the same secure deployment in both ----


def _bicep_resource(module: str, symbol: str) -> dict[str, Any]:
    return bicep_module(module)["resources"][symbol]


def test_function_app_is_flex_consumption_python_311_with_one_identity() -> None:
    plan = _bicep_resource("app", "plan")["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True  # Linux
    site = _bicep_resource("app", "app")["config"]
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    flex = site["properties"]["functionAppConfig"]
    assert flex["runtime"] == {"name": "python", "version": "3.11"}
    assert flex["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"

    resources = terraform_resources()
    tf_plan = resources[("azurerm_service_plan", "main")]
    assert (tf_plan["sku_name"], tf_plan["os_type"]) == ("FC1", "Linux")
    tf_site = resources[("azapi_resource", "function_app")]
    assert tf_site["type"].startswith("Microsoft.Web/sites@")
    assert tf_site["body"]["kind"] == "functionapp,linux"
    assert tf_site["identity"][0]["type"] == "UserAssigned"
    tf_flex = tf_site["body"]["properties"]["functionAppConfig"]
    assert tf_flex["runtime"] == {"name": "python", "version": "3.11"}
    assert tf_flex["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"


def test_function_app_is_https_only_tls12_without_ftp_or_basic_auth() -> None:
    bicep_properties = _bicep_resource("app", "app")["config"]["properties"]
    terraform_properties = terraform_resources()[("azapi_resource", "function_app")]["body"][
        "properties"
    ]
    for source, properties in (("bicep", bicep_properties), ("terraform", terraform_properties)):
        assert properties["httpsOnly"] is True, source
        site_config = properties["siteConfig"]
        assert site_config["minTlsVersion"] == "1.2", source
        assert site_config["scmMinTlsVersion"] == "1.2", source
        assert site_config["ftpsState"] == "Disabled", source
        assert site_config["remoteDebuggingEnabled"] is False, source

    policies = {
        resource["config"]["name"]: resource["config"]["properties"]["allow"]
        for resource in bicep_module("app")["resources"].values()
        if resource["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {"ftp": False, "scm": False}
    tf_policies = terraform_resources()[("azapi_resource", "basic_publishing_credentials")]
    assert tf_policies["for_each"] == '${toset(["ftp", "scm"])}'
    assert tf_policies["body"] == {"properties": {"allow": False}}


def test_storage_is_reached_by_identity_only() -> None:
    account = _bicep_resource("storage", "account")["config"]["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True

    tf_account = terraform_resources()[("azurerm_storage_account", "host")]
    assert tf_account["shared_access_key_enabled"] is False
    assert tf_account["allow_nested_items_to_be_public"] is False
    assert tf_account["min_tls_version"] == "TLS1_2"
    assert tf_account["https_traffic_only_enabled"] is True


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    vault = _bicep_resource("vault", "vault")["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert "accessPolicies" not in vault

    tf_vault = terraform_resources()[("azurerm_key_vault", "main")]
    assert tf_vault["rbac_authorization_enabled"] is True
    assert tf_vault["purge_protection_enabled"] is True
    assert tf_vault["soft_delete_retention_days"] >= 7
    assert "access_policy" not in tf_vault


def test_bicep_recovers_a_soft_deleted_vault_when_asked() -> None:
    # purge protection keeps a deleted vault's name: after a teardown, creating it again fails
    parameter = parse_bicep(MAIN_BICEP)["parameters"]["keyVaultCreateMode"]
    assert (parameter["type"], parameter["default"]) == ("string", "default")
    allowed = next(d["argument"] for d in parameter["decorators"] if d["type"] == "allowed")
    assert allowed == ["default", "recover"]
    vault_call = parse_bicep(MAIN_BICEP)["modules"]["vault"]["config"]["params"]
    assert vault_call["createMode"] == "keyVaultCreateMode"
    assert _bicep_resource("vault", "vault")["config"]["properties"]["createMode"] == "createMode"
    # azd users switch it with an environment value, not by editing the parameters file
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert mapped["keyVaultCreateMode"] == {"value": "${AZURE_KEY_VAULT_CREATE_MODE=default}"}


def test_terraform_recovers_a_soft_deleted_vault_and_never_purges_it() -> None:
    (azurerm,) = [block["azurerm"] for block in terraform_blocks("provider") if "azurerm" in block]
    (key_vault,) = azurerm["features"][0]["key_vault"]
    assert key_vault["recover_soft_deleted_key_vaults"] is True
    assert key_vault["purge_soft_delete_on_destroy"] is False


def test_no_secret_value_is_in_a_template() -> None:
    for path in bicep_files():
        parsed = parse_bicep(path)
        types = {resource["type"] for resource in parsed.get("resources", {}).values()}
        assert not {t for t in types if t.startswith("Microsoft.KeyVault/vaults/")}, path
        for name, parameter in parsed.get("parameters", {}).items():
            secure = any(d.get("type") == "secure" for d in parameter.get("decorators", []))
            assert not (secure and parameter.get("default")), f"{path}: {name} has a secret default"
    resource_types = {resource_type for resource_type, _ in terraform_resources()}
    assert not resource_types & {"azurerm_key_vault_secret", "azurerm_key_vault_certificate"}
    for name, variable in terraform_variables().items():
        assert not (variable.get("sensitive") and variable.get("default")), name


def test_application_insights_is_workspace_based_with_entra_auth() -> None:
    component = _bicep_resource("monitoring", "appInsights")["config"]["properties"]
    assert component["DisableLocalAuth"] is True
    assert component["WorkspaceResourceId"]
    tf_component = terraform_resources()[("azurerm_application_insights", "main")]
    assert tf_component["local_authentication_disabled"] is True
    assert tf_component["workspace_id"] == "${azurerm_log_analytics_workspace.main.id}"


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    """A Bicep resource's properties, also when it is deployed under a condition."""
    config = resource["config"]
    return config["config"] if "condition" in config else config


def test_the_app_identity_holds_exactly_the_least_privilege_roles() -> None:
    roles = bicep_module("roles")
    role_ids = {name: variable["value"] for name, variable in roles["variables"].items()}
    granted: dict[str, set[str]] = {}
    for resource in roles["resources"].values():
        if resource["type"] == "Microsoft.Authorization/roleAssignments":
            properties = _body(resource)["properties"]
            role = properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
            granted.setdefault(properties["principalId"], set()).add(role_ids[role])
    assert granted == {
        "principalId": set(APP_ROLES),
        "secretsOfficerPrincipalId": set(ADMIN_ROLES),
    }

    local = terraform_locals()
    role_ids_tf = local["role_definition_ids"]
    assert {role_ids_tf[name] for name in local["app_role_assignments"]} == set(APP_ROLES)
    resources = terraform_resources()
    app_assignment = resources[("azurerm_role_assignment", "app")]
    assert app_assignment["for_each"] == "${local.app_role_assignments}"
    assert app_assignment["principal_id"] == "${azurerm_user_assigned_identity.app.principal_id}"
    officer = resources[("azurerm_role_assignment", "secrets_officer")]
    assert officer["principal_id"] == "${var.secrets_officer_principal_id}"
    assert 'role_definition_ids["key_vault_secrets_officer"]' in officer["role_definition_id"]


def test_every_role_id_is_a_known_role_named_in_a_comment() -> None:
    known = {**APP_ROLES, **ADMIN_ROLES}
    for path, text in _template_texts().items():
        lines = text.splitlines()
        for number, line in enumerate(lines):
            for role_id in GUID.findall(line):
                assert role_id in known, f"{path.name}:{number + 1}: unknown role id {role_id}"
                comment = "\n".join(lines[max(0, number - 3) : number + 1])
                assert f"{known[role_id]}:" in comment, (
                    f"{path.name}:{number + 1}: {role_id} needs a comment naming {known[role_id]}"
                )


def test_kill_switch_is_a_parameter_that_defaults_to_off() -> None:
    kill_switch = parse_bicep(MAIN_BICEP)["parameters"]["killSwitch"]
    assert (kill_switch["type"], kill_switch["default"]) == ("bool", False)
    tf_kill_switch = terraform_variables()["kill_switch"]
    assert (tf_kill_switch["type"], tf_kill_switch["default"]) == ("bool", False)


# ---- azd ----


def test_azd_deploys_the_project_as_a_python_function_with_bicep() -> None:
    project = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert project["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert project["services"] == {
        "reclaim": {"project": ".", "language": "python", "host": "function"}
    }
    # azd finds the app by this tag
    site = _bicep_resource("app", "app")["config"]
    assert site["tags"]["function"]["parameters"]["arg_2"] == {"'azd-service-name'": "reclaim"}
    tf_site = terraform_resources()[("azapi_resource", "function_app")]
    assert '"azd-service-name" = "reclaim"' in tf_site["tags"]


def test_azd_parameters_exist_and_cover_the_required_ones() -> None:
    parameters = parse_bicep(MAIN_BICEP)["parameters"]
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(mapped) <= set(parameters), set(mapped) - set(parameters)
    required = {name for name, parameter in parameters.items() if "default" not in parameter}
    assert required <= set(mapped), required - set(mapped)
