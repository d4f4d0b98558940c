"""The optional parts of the deployment are the same in Bicep and Terraform, behind one switch each.

- privateNetworking / private_networking: Flex VNet integration of the function app, private
  endpoints with privatelink DNS zones for storage (blob, queue, table) and Key Vault, whose public
  network access is then off.
- platformAuth / platform_auth: App Service Authentication that lets unauthenticated requests
  through, and RECLAIM_PLATFORM_AUTH telling the app whether to trust the principal it forwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.infra_templates import (
    MAIN_BICEP,
    bicep_deployment,
    bicep_module,
    parse_bicep,
    resolve_bicep,
    resolve_terraform,
    terraform_blocks,
    terraform_deployment,
    terraform_locals,
    terraform_resources,
    terraform_variables,
)

# sub-resource (private endpoint group id) -> privatelink DNS zone, Azure public cloud
PRIVATE_LINKS = {
    "blob": "privatelink.blob.core.windows.net",
    "queue": "privatelink.queue.core.windows.net",
    "table": "privatelink.table.core.windows.net",
    "vault": "privatelink.vaultcore.azure.net",
}
FLEX_DELEGATION = "Microsoft.App/environments"

# Bicep parameter -> Terraform variable, for every parameter of the two options
OPTION_PARAMETERS = {
    "privateNetworking": "private_networking",
    "vnetAddressPrefix": "vnet_address_prefix",
    "appSubnetPrefix": "app_subnet_prefix",
    "privateEndpointSubnetPrefix": "private_endpoint_subnet_prefix",
    "peerVnetId": "peer_vnet_id",
    "peerUseRemoteGateways": "peer_use_remote_gateways",
    "platformAuth": "platform_auth",
    "platformAuthClientId": "platform_auth_client_id",
    "adminAudience": "admin_audience",
}

# Every Terraform resource of the private network and the Bicep resource type it is; None: Bicep
# declares it inside the VNet (the subnets and their NSG).
TERRAFORM_NETWORK = {
    ("azurerm_network_security_group", "main"): "Microsoft.Network/networkSecurityGroups",
    ("azurerm_virtual_network", "main"): "Microsoft.Network/virtualNetworks",
    ("azurerm_subnet", "app"): None,
    ("azurerm_subnet", "private_endpoints"): None,
    ("azurerm_subnet_network_security_group_association", "app"): None,
    ("azurerm_subnet_network_security_group_association", "private_endpoints"): None,
    ("azurerm_virtual_network_peering", "peer"): (
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"
    ),
    ("azurerm_private_dns_zone", "main"): "Microsoft.Network/privateDnsZones",
    ("azurerm_private_dns_zone_virtual_network_link", "main"): (
        "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
    ),
    ("azurerm_private_endpoint", "main"): "Microsoft.Network/privateEndpoints",
}


def _with(parameters: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Parameters (or variables) whose defaults are replaced by these values."""
    return {
        **parameters,
        **{name: {**parameters[name], "default": v} for name, v in values.items()},
    }


def _bicep_parameters(module: str | None = None) -> dict[str, Any]:
    parsed = bicep_module(module) if module else parse_bicep(MAIN_BICEP)
    return parsed["parameters"]


def _accessor(expression: Any) -> str:
    """A pycep property accessor (a.b.c) as text."""
    if isinstance(expression, str):
        return expression
    operator = expression["operator"]
    assert operator["type"] == "property_accessor", expression
    operands = operator["operands"]
    return f"{_accessor(operands['operand_1'])}.{_accessor(operands['operand_2'])}"


# ---- one switch each, the same parameters and defaults in both ----


def test_the_options_have_the_same_parameters_and_defaults_in_both() -> None:
    bicep = _bicep_parameters()
    terraform = terraform_variables()
    for bicep_name, terraform_name in OPTION_PARAMETERS.items():
        assert bicep[bicep_name]["default"] == terraform[terraform_name]["default"], bicep_name
        types = (bicep[bicep_name]["type"], terraform[terraform_name]["type"])
        assert types in {("bool", "bool"), ("string", "string")}, (bicep_name, types)
    assert bicep["privateNetworking"]["default"] is False
    assert bicep["platformAuth"]["default"] is False


def test_every_private_network_resource_exists_only_with_private_networking() -> None:
    network_call = parse_bicep(MAIN_BICEP)["modules"]["network"]["config"]
    assert network_call["condition"] == "privateNetworking"

    resources = terraform_resources()
    network_resources = {key for key in resources if key[0] in {k[0] for k in TERRAFORM_NETWORK}}
    assert network_resources == set(TERRAFORM_NETWORK)
    links = terraform_locals()["private_network_links"]
    assert links == "${var.private_networking ? local.private_links : {}}"
    for key in TERRAFORM_NETWORK:
        body = resources[key]
        switch = body.get("count") or body.get("for_each")
        assert switch in (
            "${var.private_networking ? 1 : 0}",
            '${var.private_networking && var.peer_vnet_id != "" ? 1 : 0}',
            "${local.private_network_links}",
        ), (key, switch)


def test_both_declare_the_same_network_resources() -> None:
    bicep_types = {resource["type"] for resource in bicep_module("network")["resources"].values()}
    terraform_types = {kind for kind in TERRAFORM_NETWORK.values() if kind}
    # the zone group is a child resource in Bicep, a block of azurerm_private_endpoint in Terraform
    assert bicep_types == terraform_types | {
        "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
    }
    assert _with_zone_group(terraform_resources()) == {("azurerm_private_endpoint", "main")}


def _with_zone_group(resources: dict[tuple[str, str], Any]) -> set[tuple[str, str]]:
    return {key for key, body in resources.items() if "private_dns_zone_group" in body}


# ---- the VNet, its subnets and the function app in it ----


def test_the_app_subnet_is_delegated_to_flex_consumption_in_both() -> None:
    network = bicep_module("network")["resources"]
    subnets = {
        subnet["name"]: subnet["properties"]
        for subnet in network["vnet"]["config"]["properties"]["subnets"]
    }
    assert set(subnets) == {"app", "private-endpoints"}
    delegations = subnets["app"]["delegations"]
    assert [d["properties"]["serviceName"] for d in delegations] == [FLEX_DELEGATION]
    assert subnets["app"]["addressPrefix"] == "appSubnetPrefix"
    assert subnets["private-endpoints"]["addressPrefix"] == "privateEndpointSubnetPrefix"
    assert subnets["private-endpoints"]["privateEndpointNetworkPolicies"] == "Disabled"
    assert bicep_module("network")["outputs"]["appSubnetId"]["value"] == "${vnet.id}/subnets/app"
    vnet_output = parse_bicep(MAIN_BICEP)["outputs"]["AZURE_VNET_ID"]["value"]["operator"][
        "operands"
    ]
    assert vnet_output["condition"] == "privateNetworking"
    assert _accessor(vnet_output["true_value"]) == "network.outputs.vnetId"
    tf_outputs = {
        name: body for block in terraform_blocks("output") for name, body in block.items()
    }
    assert tf_outputs["vnet_id"]["value"] == (
        '${var.private_networking ? azurerm_virtual_network.main[0].id : ""}'
    )

    resources = terraform_resources()
    app = resources[("azurerm_subnet", "app")]
    assert app["name"] == "app"
    (delegation,) = app["delegation"]
    assert [d["name"] for d in delegation["service_delegation"]] == [FLEX_DELEGATION]
    assert app["address_prefixes"] == ["${var.app_subnet_prefix}"]
    endpoints = resources[("azurerm_subnet", "private_endpoints")]
    assert endpoints["name"] == "private-endpoints"
    assert endpoints["address_prefixes"] == ["${var.private_endpoint_subnet_prefix}"]
    assert endpoints["private_endpoint_network_policies"] == "Disabled"
    for name in ("app", "private_endpoints"):
        association = resources[("azurerm_subnet_network_security_group_association", name)]
        assert association["subnet_id"] == f"${{azurerm_subnet.{name}[0].id}}"


def test_the_function_app_joins_the_app_subnet_only_with_private_networking() -> None:
    call = parse_bicep(MAIN_BICEP)["modules"]["app"]["config"]["params"]
    operands = call["virtualNetworkSubnetId"]["operator"]["operands"]
    assert operands["condition"] == "privateNetworking"
    assert _accessor(operands["true_value"]) == "network.outputs.appSubnetId"
    assert operands["false_value"] == ""
    site = bicep_module("app")["resources"]["app"]["config"]["properties"]
    operands = site["virtualNetworkSubnetId"]["operator"]["operands"]
    assert (operands["true_value"], operands["false_value"]) == (None, "virtualNetworkSubnetId")

    tf_site = terraform_resources()[("azapi_resource", "function_app")]
    assert (
        tf_site["body"]["properties"]["virtualNetworkSubnetId"]
        == "${var.private_networking ? azurerm_subnet.app[0].id : null}"
    )
    # the host starts only once storage and the vault are reachable through their endpoints
    assert "${azurerm_private_endpoint.main}" in tf_site["depends_on"]


def test_peering_is_optional_and_the_same_in_both() -> None:
    peering = bicep_module("network")["resources"]["peering"]["config"]
    assert peering["condition"]["operator"]["type"] == "not"
    properties = peering["config"]["properties"]
    tf_peering = terraform_resources()[("azurerm_virtual_network_peering", "peer")]
    assert properties["remoteVirtualNetwork"] == {"id": "peerVnetId"}
    assert tf_peering["remote_virtual_network_id"] == "${var.peer_vnet_id}"
    assert properties["useRemoteGateways"] == "peerUseRemoteGateways"
    assert tf_peering["use_remote_gateways"] == "${var.peer_use_remote_gateways}"
    for bicep_name, terraform_name in (
        ("allowVirtualNetworkAccess", "allow_virtual_network_access"),
        ("allowForwardedTraffic", "allow_forwarded_traffic"),
    ):
        assert properties[bicep_name] is tf_peering[terraform_name] is True


# ---- private endpoints and their DNS ----


def test_storage_and_key_vault_get_the_same_private_endpoints_and_zones_in_both() -> None:
    network = bicep_module("network")
    links = network["variables"]["privateLinks"]["value"]
    assert {link["group"]: link["zone"] for link in links} == PRIVATE_LINKS
    targets = {link["group"]: link["target"] for link in links}
    assert targets == {
        "blob": "storageAccountId",
        "queue": "storageAccountId",
        "table": "storageAccountId",
        "vault": "keyVaultId",
    }
    call = parse_bicep(MAIN_BICEP)["modules"]["network"]["config"]["config"]["params"]
    assert _accessor(call["storageAccountId"]) == "storage.outputs.id"
    assert _accessor(call["keyVaultId"]) == "vault.outputs.id"

    tf_links = terraform_locals()["private_links"]
    assert {group: link["zone"] for group, link in tf_links.items()} == PRIVATE_LINKS
    assert {group: link["target"] for group, link in tf_links.items()} == {
        "blob": "${azurerm_storage_account.host.id}",
        "queue": "${azurerm_storage_account.host.id}",
        "table": "${azurerm_storage_account.host.id}",
        "vault": "${azurerm_key_vault.main.id}",
    }


def test_each_endpoint_is_in_the_endpoint_subnet_with_its_zone_linked_to_the_vnet() -> None:
    resources = bicep_module("network")["resources"]
    for symbol in ("zones", "zoneLinks", "endpoints", "endpointZones"):
        loop = resources[symbol]["config"]["loop_type"]["detail"]
        assert loop["array_name"] == "privateLinks", symbol
    assert _accessor(resources["zones"]["config"]["config"]["name"]) == "link.zone"
    zone_link = resources["zoneLinks"]["config"]["config"]["properties"]
    assert zone_link["registrationEnabled"] is False
    assert _accessor(zone_link["virtualNetwork"]["id"]) == "vnet.id"
    endpoint = resources["endpoints"]["config"]["config"]["properties"]
    assert endpoint["subnet"] == {"id": "${vnet.id}/subnets/private-endpoints"}
    (connection,) = endpoint["privateLinkServiceConnections"]
    assert _accessor(connection["properties"]["privateLinkServiceId"]) == "link.target"
    assert [_accessor(g) for g in connection["properties"]["groupIds"]] == ["link.group"]
    (zone_config,) = resources["endpointZones"]["config"]["config"]["properties"][
        "privateDnsZoneConfigs"
    ]
    zone_id = zone_config["properties"]["privateDnsZoneId"]["operator"]["operands"]
    assert zone_id["operand_1"]["operator"]["operands"] == {
        "operand_1": "zones",
        "operand_2": "index",
    }
    assert zone_id["operand_2"] == "id"

    tf = terraform_resources()
    assert tf[("azurerm_private_dns_zone", "main")]["name"] == "${each.value.zone}"
    tf_link = tf[("azurerm_private_dns_zone_virtual_network_link", "main")]
    assert tf_link["registration_enabled"] is False
    assert tf_link["virtual_network_id"] == "${azurerm_virtual_network.main[0].id}"
    assert tf_link["private_dns_zone_name"] == "${azurerm_private_dns_zone.main[each.key].name}"
    tf_endpoint = tf[("azurerm_private_endpoint", "main")]
    assert tf_endpoint["subnet_id"] == "${azurerm_subnet.private_endpoints[0].id}"
    (tf_connection,) = tf_endpoint["private_service_connection"]
    assert tf_connection["private_connection_resource_id"] == "${each.value.target}"
    assert tf_connection["subresource_names"] == ["${each.key}"]
    assert tf_connection["is_manual_connection"] is False
    (tf_zone_group,) = tf_endpoint["private_dns_zone_group"]
    assert tf_zone_group["private_dns_zone_ids"] == [
        "${azurerm_private_dns_zone.main[each.key].id}"
    ]


@pytest.mark.parametrize("private", [False, True])
def test_storage_and_key_vault_are_public_only_without_private_networking(private: bool) -> None:
    expected = ("Disabled", "Deny") if private else ("Enabled", "Allow")
    for module, symbol in (("storage", "account"), ("vault", "vault")):
        parameters = _with(_bicep_parameters(module), privateNetworking=private)
        properties = bicep_module(module)["resources"][symbol]["config"]["properties"]
        resolved = (
            resolve_bicep(properties["publicNetworkAccess"], parameters),
            resolve_bicep(properties["networkAcls"]["defaultAction"], parameters),
        )
        assert resolved == expected, module
    calls = parse_bicep(MAIN_BICEP)["modules"]
    assert calls["storage"]["config"]["params"]["privateNetworking"] == "privateNetworking"
    assert calls["vault"]["config"]["params"]["privateNetworking"] == "privateNetworking"

    variables = _with(terraform_variables(), private_networking=private)
    resources = terraform_resources()
    for key, rules in (
        (("azurerm_storage_account", "host"), "network_rules"),
        (("azurerm_key_vault", "main"), "network_acls"),
    ):
        body = resources[key]
        # hcl2 keeps `!var.x` as text; it is the negation of the switch
        assert body["public_network_access_enabled"] == "${!var.private_networking}", key
        (acl,) = body[rules]
        assert resolve_terraform(acl["default_action"], variables) == expected[1], key


# ---- App Service Authentication ----


def test_easy_auth_lets_unauthenticated_requests_through_in_both() -> None:
    site_config = bicep_module("app")["resources"]["authSettings"]
    assert site_config["type"] == "Microsoft.Web/sites/config"
    # written on every deployment (no condition): switching platformAuth off switches it off
    assert "condition" not in site_config["config"]
    bicep = site_config["config"]
    assert bicep["name"] == "authsettingsV2"
    tf_config = terraform_resources()[("azapi_update_resource", "auth_settings")]
    assert tf_config["type"].startswith("Microsoft.Web/sites/config@")
    assert "count" not in tf_config
    assert tf_config["name"] == "authsettingsV2"
    assert tf_config["parent_id"] == "${azapi_resource.function_app.id}"

    for source, properties, switch, client_id in (
        ("bicep", bicep["properties"], "platformAuth", "platformAuthClientId"),
        (
            "terraform",
            tf_config["body"]["properties"],
            "${var.platform_auth}",
            "${var.platform_auth_client_id}",
        ),
    ):
        assert properties["globalValidation"] == {
            "requireAuthentication": False,
            "unauthenticatedClientAction": "AllowAnonymous",
        }, source
        assert properties["platform"] == {"enabled": switch}, source
        entra = properties["identityProviders"]["azureActiveDirectory"]
        assert entra["enabled"] == switch, source
        assert entra["registration"]["clientId"] == client_id, source
        assert properties["httpSettings"] == {"requireHttps": True}, source
        assert properties["login"] == {"tokenStore": {"enabled": False}}, source
    call = parse_bicep(MAIN_BICEP)["modules"]["app"]["config"]["params"]
    assert (call["platformAuth"], call["platformAuthClientId"]) == (
        "platformAuth",
        "platformAuthClientId",
    )


def test_terraform_refuses_easy_auth_without_a_client_id() -> None:
    (validation,) = terraform_variables()["platform_auth_client_id"]["validation"]
    assert validation["condition"] == '${!var.platform_auth || var.platform_auth_client_id != ""}'


@pytest.mark.parametrize("on", [False, True])
def test_the_app_is_told_whether_easy_auth_is_on(on: bool) -> None:
    main = parse_bicep(MAIN_BICEP)
    parameters = _with(main["parameters"], platformAuth=on)
    bicep_settings = main["variables"]["appSettings"]["value"]
    variables = _with(terraform_variables(), platform_auth=on)
    terraform_settings = terraform_locals()["app_settings"]
    expected = "true" if on else "false"
    assert resolve_bicep(bicep_settings["RECLAIM_PLATFORM_AUTH"], parameters) == expected
    assert resolve_terraform(terraform_settings["RECLAIM_PLATFORM_AUTH"], variables) == expected


def test_the_admin_audience_is_a_setting_and_easy_auth_accepts_it() -> None:
    for deployment in (bicep_deployment(), terraform_deployment()):
        assert deployment.app_settings["RECLAIM_ADMIN_AUDIENCE"] == ""
        assert deployment.app_settings["RECLAIM_PLATFORM_AUTH"] == "false"
    call = parse_bicep(MAIN_BICEP)["modules"]["app"]["config"]["params"]
    # RECLAIM_ADMIN_AUDIENCE is a comma list: Easy Auth gets its items
    audiences = call["platformAuthAudiences"]["operator"]["operands"]
    assert (audiences["true_value"], audiences["false_value"]) == ([], "adminAudiences")
    loop = parse_bicep(MAIN_BICEP)["variables"]["adminAudiences"]["value"]
    assert loop["loop_type"]["detail"]["array_name"]["function"] == {
        "type": "split",
        "parameters": {"input_string": "adminAudience", "delimiter": ","},
    }
    assert loop["config"]["function"]["type"] == "trim"
    tf_config = terraform_resources()[("azapi_update_resource", "auth_settings")]
    validation = tf_config["body"]["properties"]["identityProviders"]["azureActiveDirectory"][
        "validation"
    ]
    assert validation["allowedAudiences"] == (
        '${[for audience in split(",", var.admin_audience) : trimspace(audience)'
        ' if trimspace(audience) != ""]}'
    )
