# Key Vault for reclaim's secrets (Graph client secret or certificate, LDAP bind password, Nexthink
# client secret, webhook signing secrets). Azure RBAC authorisation, soft delete and purge
# protection. No secret is created here: values never go into a template (nor into Terraform
# state); an administrator sets them after deployment (az keyvault secret set).

resource "azurerm_key_vault" "main" {
  #checkov:skip=CKV_AZURE_109:Flex Consumption without VNet integration reads secrets over the internet; each read needs an Entra ID token and the Key Vault Secrets User role. Lock down with a private endpoint and default_action Deny.
  #checkov:skip=CKV_AZURE_189:Same reason: public network access is needed until the app is VNet-integrated and the vault has a private endpoint.
  #checkov:skip=CKV2_AZURE_32:Private endpoints need a VNet this template does not own; they are the documented lock-down step (README Deploy).
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
  # Lock-down: false plus a private endpoint and VNet integration of the function app.
  public_network_access_enabled = true
  tags                          = local.tags

  network_acls {
    default_action = "Allow"
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
