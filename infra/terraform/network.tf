# Private networking (only when var.private_networking is true): a VNet whose "app" subnet the Flex
# Consumption app joins (outbound: the LDAP path to a domain controller, storage and Key Vault),
# private endpoints for storage (blob, queue, table) and Key Vault in the "private-endpoints"
# subnet, and the privatelink DNS zones that make the usual host names resolve to those endpoints
# inside the VNet. Optionally peered with a hub VNet that reaches on-premises AD (VPN or
# ExpressRoute). The same resources as infra/modules/network.bicep.

locals {
  # One private endpoint per (resource, sub-resource), each with its zone (Azure public cloud names).
  private_links = {
    blob = {
      zone   = "privatelink.blob.core.windows.net"
      target = azurerm_storage_account.host.id
    }
    queue = {
      zone   = "privatelink.queue.core.windows.net"
      target = azurerm_storage_account.host.id
    }
    table = {
      zone   = "privatelink.table.core.windows.net"
      target = azurerm_storage_account.host.id
    }
    vault = {
      zone   = "privatelink.vaultcore.azure.net"
      target = azurerm_key_vault.main.id
    }
  }
  private_network_links = var.private_networking ? local.private_links : {}
}

# No rules of its own: the default rules allow traffic inside the VNet (and peered VNets) and
# outbound to the internet (Microsoft Graph, Entra ID, Nexthink).
resource "azurerm_network_security_group" "main" {
  count               = var.private_networking ? 1 : 0
  name                = "nsg-reclaim-${local.resource_token}"
  location            = local.location
  resource_group_name = data.azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_virtual_network" "main" {
  count               = var.private_networking ? 1 : 0
  name                = "vnet-reclaim-${local.resource_token}"
  location            = local.location
  resource_group_name = data.azurerm_resource_group.main.name
  address_space       = [var.vnet_address_prefix]
  tags                = local.tags
}

resource "azurerm_subnet" "app" {
  count                = var.private_networking ? 1 : 0
  name                 = "app"
  resource_group_name  = data.azurerm_resource_group.main.name
  virtual_network_name = azurerm_virtual_network.main[0].name
  address_prefixes     = [var.app_subnet_prefix]

  # Flex Consumption joins a subnet delegated to Microsoft.App/environments (not
  # Microsoft.Web/serverFarms as the other plans do)
  delegation {
    name = "flex-consumption"
    service_delegation {
      name    = "Microsoft.App/environments"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_subnet" "private_endpoints" {
  count                             = var.private_networking ? 1 : 0
  name                              = "private-endpoints"
  resource_group_name               = data.azurerm_resource_group.main.name
  virtual_network_name              = azurerm_virtual_network.main[0].name
  address_prefixes                  = [var.private_endpoint_subnet_prefix]
  private_endpoint_network_policies = "Disabled"
}

resource "azurerm_subnet_network_security_group_association" "app" {
  count                     = var.private_networking ? 1 : 0
  subnet_id                 = azurerm_subnet.app[0].id
  network_security_group_id = azurerm_network_security_group.main[0].id
}

resource "azurerm_subnet_network_security_group_association" "private_endpoints" {
  count                     = var.private_networking ? 1 : 0
  subnet_id                 = azurerm_subnet.private_endpoints[0].id
  network_security_group_id = azurerm_network_security_group.main[0].id
}

resource "azurerm_virtual_network_peering" "peer" {
  count                        = var.private_networking && var.peer_vnet_id != "" ? 1 : 0
  name                         = "to-peer"
  resource_group_name          = data.azurerm_resource_group.main.name
  virtual_network_name         = azurerm_virtual_network.main[0].name
  remote_virtual_network_id    = var.peer_vnet_id
  allow_virtual_network_access = true
  allow_forwarded_traffic      = true
  use_remote_gateways          = var.peer_use_remote_gateways
}

resource "azurerm_private_dns_zone" "main" {
  for_each            = local.private_network_links
  name                = each.value.zone
  resource_group_name = data.azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "main" {
  for_each              = local.private_network_links
  name                  = "vnet-reclaim-${local.resource_token}"
  resource_group_name   = data.azurerm_resource_group.main.name
  private_dns_zone_name = azurerm_private_dns_zone.main[each.key].name
  virtual_network_id    = azurerm_virtual_network.main[0].id
  registration_enabled  = false
  tags                  = local.tags
}

resource "azurerm_private_endpoint" "main" {
  for_each            = local.private_network_links
  name                = "pe-reclaim-${each.key}-${local.resource_token}"
  location            = local.location
  resource_group_name = data.azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.private_endpoints[0].id
  tags                = local.tags

  private_service_connection {
    name                           = each.key
    private_connection_resource_id = each.value.target
    subresource_names              = [each.key]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [azurerm_private_dns_zone.main[each.key].id]
  }
}
