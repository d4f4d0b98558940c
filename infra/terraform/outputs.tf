output "function_app_name" {
  value = azapi_resource.function_app.name
}

output "function_app_url" {
  value = "https://${azapi_resource.function_app.output.properties.defaultHostName}"
}

output "key_vault_name" {
  value = azurerm_key_vault.main.name
}

output "key_vault_url" {
  value = azurerm_key_vault.main.vault_uri
}

output "storage_account_name" {
  value = azurerm_storage_account.host.name
}

output "managed_identity_client_id" {
  value = azurerm_user_assigned_identity.app.client_id
}

# the hub's side of a peering (private_networking) needs it
output "vnet_id" {
  value = var.private_networking ? azurerm_virtual_network.main[0].id : ""
}
