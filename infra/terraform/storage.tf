# The storage account of the function app: host state and the deployment package (blob), the
# removal queue and its poison queue, and reclaim's tables. Reached only with Entra ID: shared-key
# access is off (Flex Consumption needs no key), so no connection string exists to leak.

resource "azurerm_storage_account" "host" {
  #checkov:skip=CKV_AZURE_35:Open by default (private_networking false): Flex Consumption without VNet integration reaches its storage over the internet, each request with an Entra ID token (shared keys are off). private_networking true sets default_action Deny.
  #checkov:skip=CKV_AZURE_59:Same reason: public network access is enabled only while private_networking is false; true disables it and adds private endpoints. Anonymous blob access and shared keys are off.
  #checkov:skip=CKV2_AZURE_33:The private endpoints (network.tf) exist only when private_networking is true, and it defaults to false.
  #checkov:skip=CKV2_AZURE_1:Data is encrypted with Microsoft-managed keys plus infrastructure encryption; customer-managed keys add a key lifecycle this small state store does not need.
  #checkov:skip=CKV_AZURE_33:Classic Storage Analytics queue logging needs shared-key access, which is off; queue reads and writes are logged by the diagnostic setting to Log Analytics.
  name                = "streclaim${local.resource_token}"
  location            = local.location
  resource_group_name = data.azurerm_resource_group.main.name
  account_kind        = "StorageV2"
  account_tier        = "Standard"
  access_tier         = "Hot"
  # geo-redundant: the ledger (the audit trail of every removal) survives the loss of a region.
  # GZRS also survives a zone outage, in regions that have availability zones.
  account_replication_type          = "GRS"
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  sftp_enabled                      = false
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  infrastructure_encryption_enabled = true
  # Open unless private_networking: Flex without VNet integration reaches storage over the
  # internet (every request still needs an Entra ID token). With it, only the private endpoints
  # (blob, queue, table) reach the account.
  public_network_access_enabled = !var.private_networking
  tags                          = local.tags

  network_rules {
    default_action = var.private_networking ? "Deny" : "Allow"
    bypass         = ["AzureServices"]
  }

  sas_policy {
    expiration_period = "0.01:00:00"
    expiration_action = "Log"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }
}

# Blob container that Flex Consumption deploys the app package into.
resource "azurerm_storage_container" "deployment" {
  #checkov:skip=CKV2_AZURE_21:Blob reads and writes are logged by the diagnostic setting on the blob service to Log Analytics; Storage Insights would need an account key, and shared keys are off.
  name                  = "app-package"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"
}

resource "azurerm_storage_queue" "reclaim" {
  for_each           = toset(local.queue_names)
  name               = each.value
  storage_account_id = azurerm_storage_account.host.id
}

resource "azurerm_storage_table" "reclaim" {
  #checkov:skip=CKV2_AZURE_20:Table reads and writes are logged by the diagnostic setting on the table service to Log Analytics; Storage Insights would need an account key, and shared keys are off.
  for_each           = toset(local.table_names)
  name               = each.value
  storage_account_id = azurerm_storage_account.host.id
}

# Storage logs (who read or wrote what) go to Log Analytics; classic Storage Analytics logging
# would need shared-key access.
resource "azurerm_monitor_diagnostic_setting" "storage_services" {
  for_each                   = toset(["queueServices", "tableServices", "blobServices"])
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.host.id}/${each.value}/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }
}
