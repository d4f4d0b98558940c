# Key Vault for reclaim's secrets (Graph client secret or certificate, LDAP bind password, Nexthink
# client secret, webhook signing secrets). Azure RBAC authorisation, soft delete and purge
# protection. No secret is created here: values never go into a template (nor into Terraform
# state); an administrator sets them after deployment (az keyvault secret set).

resource "azurerm_key_vault" "main" {
  #checkov:skip=CKV_AZURE_109:Open by default (private_networking false): Flex Consumption without VNet integration reads secrets over the internet, each read with an Entra ID token and the Key Vault Secrets User role. private_networking true sets default_action Deny.
  #checkov:skip=CKV_AZURE_189:Same reason: public network access is enabled only while private_networking is false; true disables it and adds a private endpoint.
  #checkov:skip=CKV2_AZURE_32:The private endpoint (network.tf) exists only when private_networking is true, and it defaults to false.
  name                            = "kv-reclaim-${local.resource_token}"
  location                        = local.location
  resource_group_name             = data.azurerm_resource_group.main.name
  tenant_id                       = data.azurerm_client_config.current.tenant_id
  sku_name                        = "standard"
  rbac_authorization_enabled      = true
  soft_delete_retention_days      = 90
  purge_protection_enabled        = true
  enabled_for_deployment          = false
  enabled_for_disk_encryption     = false
  enabled_for_template_deployment = false
  # Open unless private_networking: Flex without VNet integration reads secrets over the internet
  # (every request still needs an Entra ID token and an RBAC role on this vault). With it, only the
  # private endpoint reaches the vault. A destroyed vault is recovered by the next apply (provider
  # feature recover_soft_deleted_key_vaults in versions.tf).
  public_network_access_enabled = !var.private_networking
  tags                          = local.tags

  network_acls {
    default_action = var.private_networking ? "Deny" : "Allow"
    bypass         = "AzureServices"
  }
}

# Audit trail of every secret read and write.
resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.main.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "audit"
  }
}
