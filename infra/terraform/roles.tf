# Every role the app's user-assigned identity holds, each on the one resource it needs (the storage
# account, the vault and the Application Insights component all belong to reclaim alone).
# Built-in role definition ids are the same in every tenant.

locals {
  role_definition_ids = {
    # Storage Blob Data Owner: the host's own containers (leases, timers' schedule status) and the
    # Flex deployment package.
    storage_blob_data_owner = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
    # Storage Queue Data Contributor: the removal queue trigger, the producers, the poison queue.
    storage_queue_data_contributor = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    # Storage Table Data Contributor: runs, decisions, requests, answers, ledger, members, cursors.
    storage_table_data_contributor = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    # Key Vault Secrets User: read secret values, nothing else.
    key_vault_secrets_user = "4633458b-17de-408a-b874-0445c86b69e6"
    # Monitoring Metrics Publisher: send telemetry to Application Insights with Entra ID auth.
    monitoring_metrics_publisher = "3913510d-42f4-4e42-8a64-420c390055eb"
    # Key Vault Secrets Officer: for the administrator who puts the secrets in (not for the app).
    key_vault_secrets_officer = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
  }

  role_definition_prefix = "/subscriptions/${data.azurerm_client_config.current.subscription_id}/providers/Microsoft.Authorization/roleDefinitions"

  app_role_assignments = {
    storage_blob_data_owner        = azurerm_storage_account.host.id
    storage_queue_data_contributor = azurerm_storage_account.host.id
    storage_table_data_contributor = azurerm_storage_account.host.id
    key_vault_secrets_user         = azurerm_key_vault.main.id
    monitoring_metrics_publisher   = azurerm_application_insights.main.id
  }
}

resource "azurerm_role_assignment" "app" {
  for_each           = local.app_role_assignments
  scope              = each.value
  role_definition_id = "${local.role_definition_prefix}/${local.role_definition_ids[each.key]}"
  principal_id       = azurerm_user_assigned_identity.app.principal_id
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "secrets_officer" {
  count              = var.secrets_officer_principal_id == "" ? 0 : 1
  scope              = azurerm_key_vault.main.id
  role_definition_id = "${local.role_definition_prefix}/${local.role_definition_ids["key_vault_secrets_officer"]}"
  principal_id       = var.secrets_officer_principal_id
}
