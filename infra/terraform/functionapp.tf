# The Flex Consumption plan and the function app: Linux, Python 3.11, one user-assigned identity,
# HTTPS only, TLS 1.2, FTP and basic-auth publishing off. The deployment package is read from blob
# storage with the identity.

resource "azurerm_service_plan" "main" {
  #checkov:skip=CKV_AZURE_225:The plan is not zone-redundant because its storage account is GRS (geo-redundant, not zone-redundant), and a zone-redundant Flex plan also keeps at least two always-ready instances billed around the clock.
  #checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero on demand; timers and the queue trigger need no always-ready instance for failover.
  name                = "plan-reclaim-${local.resource_token}"
  location            = local.location
  resource_group_name = data.azurerm_resource_group.main.name
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags
}

resource "azapi_resource" "function_app" {
  type      = "Microsoft.Web/sites@2024-04-01"
  name      = "func-reclaim-${local.resource_token}"
  parent_id = data.azurerm_resource_group.main.id
  location  = local.location
  # azd finds the app to deploy the "reclaim" service into by this tag
  tags = merge(local.tags, { "azd-service-name" = "reclaim" })

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.app.id]
  }

  body = {
    kind = "functionapp,linux"
    properties = {
      serverFarmId        = azurerm_service_plan.main.id
      httpsOnly           = true
      clientCertEnabled   = false
      publicNetworkAccess = var.public_network_access
      # outbound through the VNet (private_networking): private endpoints and the domain controllers
      virtualNetworkSubnetId = var.private_networking ? azurerm_subnet.app[0].id : null
      siteConfig = {
        minTlsVersion          = "1.2"
        scmMinTlsVersion       = "1.2"
        ftpsState              = "Disabled"
        http20Enabled          = true
        remoteDebuggingEnabled = false
        # Inbound allow-list: empty means open to every caller (functions still check keys and
        # signatures). Deployments use Entra ID on the scm site, not this list.
        ipSecurityRestrictions = [for index, cidr in var.allowed_caller_cidrs : {
          name      = "caller-${index}"
          ipAddress = cidr
          action    = "Allow"
          priority  = 100 + index
        }]
        ipSecurityRestrictionsDefaultAction = length(var.allowed_caller_cidrs) == 0 ? "Allow" : "Deny"
        scmIpSecurityRestrictionsUseMain    = false
        appSettings                         = [for name, value in local.app_settings : { name = name, value = value }]
      }
      functionAppConfig = {
        deployment = {
          storage = {
            type  = "blobContainer"
            value = "${azurerm_storage_account.host.primary_blob_endpoint}${azurerm_storage_container.deployment.name}"
            authentication = {
              type                           = "UserAssignedIdentity"
              userAssignedIdentityResourceId = azurerm_user_assigned_identity.app.id
            }
          }
        }
        scaleAndConcurrency = {
          maximumInstanceCount = var.maximum_instance_count
          instanceMemoryMB     = var.instance_memory_mb
        }
        # Flex sets the worker runtime here; FUNCTIONS_WORKER_RUNTIME is not a valid app setting on it
        runtime = {
          name    = "python"
          version = "3.11"
        }
      }
    }
  }

  response_export_values = ["properties.defaultHostName"]

  # the host must be able to reach storage and the vault when it first starts
  depends_on = [
    azurerm_role_assignment.app,
    azurerm_private_endpoint.main,
    azurerm_private_dns_zone_virtual_network_link.main,
  ]
}

# App Service Authentication (Easy Auth), the authsettingsV2 body of infra/modules/functionapp.bicep.
# Every site has this configuration, so it is updated rather than created, and always written: a
# redeploy with platform_auth false switches it off. It lets unauthenticated requests through: the
# campaign webhook authenticates by HMAC signature and the admin routes check bearer tokens
# themselves; a browser can still sign in at /.auth/login/aad, and the app trusts the principal
# Easy Auth forwards only when RECLAIM_PLATFORM_AUTH is true (the platform strips that header from
# callers when it is on).
resource "azapi_update_resource" "auth_settings" {
  type      = "Microsoft.Web/sites/config@2024-04-01"
  name      = "authsettingsV2"
  parent_id = azapi_resource.function_app.id

  body = {
    properties = {
      platform = {
        enabled = var.platform_auth
      }
      globalValidation = {
        requireAuthentication       = false
        unauthenticatedClientAction = "AllowAnonymous"
      }
      httpSettings = {
        requireHttps = true
      }
      login = {
        tokenStore = {
          enabled = false
        }
      }
      identityProviders = {
        azureActiveDirectory = {
          enabled = var.platform_auth
          registration = {
            clientId     = var.platform_auth_client_id
            openIdIssuer = "${var.authority_host}/${var.tenant_id != "" ? var.tenant_id : data.azurerm_client_config.current.tenant_id}/v2.0"
          }
          validation = {
            # RECLAIM_ADMIN_AUDIENCE is a comma list
            allowedAudiences = [for audience in split(",", var.admin_audience) : trimspace(audience) if trimspace(audience) != ""]
          }
        }
      }
    }
  }
}

# Publishing with user name and password (FTP, and basic auth on the scm site) is off; azd and
# `func azure functionapp publish` use Entra ID.
resource "azapi_resource" "basic_publishing_credentials" {
  for_each  = toset(["ftp", "scm"])
  type      = "Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01"
  name      = each.value
  parent_id = azapi_resource.function_app.id

  body = {
    properties = {
      allow = false
    }
  }
}

resource "azurerm_monitor_diagnostic_setting" "function_app" {
  name                       = "to-log-analytics"
  target_resource_id         = azapi_resource.function_app.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category = "FunctionAppLogs"
  }
}
