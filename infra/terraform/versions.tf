# reclaim: the same deployment as infra/main.bicep, for Terraform.
#
#   export ARM_SUBSCRIPTION_ID=<subscription>
#   terraform init && terraform apply -var resource_group_name=<rg> -var environment_name=<name>
#
# The function app itself is an azapi_resource (Microsoft.Web/sites, the body Bicep uses):
# azurerm_function_app_flex_consumption writes an AzureWebJobsStorage connection string with an
# empty key when the storage authentication is a managed identity, which overrides the
# identity-based AzureWebJobsStorage__* settings and stops the host
# (hashicorp/terraform-provider-azurerm#29693, open).

terraform {
  required_version = ">= 1.9"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.50, < 5.0"
    }
    azapi = {
      source  = "Azure/azapi"
      version = ">= 2.5, < 3.0"
    }
  }
}

provider "azurerm" {
  # Shared-key access is off on the storage account: Terraform manages it through Azure Resource
  # Manager only (containers, queues and tables by storage_account_id) and never asks for a key.
  storage_use_azuread = true

  features {
    key_vault {
      # Purge protection is on: a destroyed vault stays recoverable for its retention period.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    storage {
      data_plane_available = false
    }
  }
}

provider "azapi" {}
