# Names, the app's identity, monitoring, and the settings the app reads.
#
# Why Flex Consumption (FC1) rather than Consumption (Y1): the host and the deployment package reach
# storage with the managed identity only, so shared-key access on the storage account can be
# switched off (Y1 needs a key-based Azure Files share); it supports VNet integration for the LDAP
# path to on-premises AD and for private endpoints; and Linux Consumption is being retired.
#
# Public network access: by default the function app, the storage account and the vault accept
# traffic from the internet (every call still needs Entra ID auth, a function key or the webhook
# signature). To lock down: set allowed_caller_cidrs (only those addresses reach the app, e.g. the
# Nexthink egress range that posts campaign answers: the webhook must stay reachable by whoever
# posts answers), and set private_networking: the app joins a VNet (Flex VNet integration),
# storage and Key Vault get private endpoints and their public network access is disabled. See
# README "Private networking, redeploys and Easy Auth".

data "azurerm_client_config" "current" {}

data "azurerm_resource_group" "main" {
  name = var.resource_group_name
}

locals {
  location       = var.location != "" ? var.location : data.azurerm_resource_group.main.location
  resource_token = substr(sha256("${data.azurerm_client_config.current.subscription_id}/${data.azurerm_resource_group.main.id}/${var.environment_name}"), 0, 13)
  tags = merge(var.tags, {
    "azd-env-name" = var.environment_name
    application    = "reclaim"
  })

  # The queue trigger moves a message that failed maxDequeueCount times to <queue>-poison.
  queue_names = [
    var.removal_queue_name,
    "${var.removal_queue_name}-poison",
  ]

  # reclaim.settings.TABLE_SUFFIXES: the tables are <table_prefix><suffix>.
  table_suffixes = [
    "Runs",
    "Decisions",
    "Requests",
    "Answers",
    "Ledger",
    "Members",
    "Cursors",
    "Switches",
    "Quarantine",
  ]
  table_names = [for suffix in local.table_suffixes : "${var.table_prefix}${suffix}"]

  # Every setting reclaim reads (reclaim.settings.variable_names()) plus the host's own. No secret
  # values: *_SECRET_NAME and *_CERTIFICATE_NAME are names of Key Vault secrets.
  app_settings = {
    # host: storage reached with the user-assigned identity (no connection string, no key)
    AzureWebJobsStorage__blobServiceUri  = azurerm_storage_account.host.primary_blob_endpoint
    AzureWebJobsStorage__queueServiceUri = azurerm_storage_account.host.primary_queue_endpoint
    AzureWebJobsStorage__tableServiceUri = azurerm_storage_account.host.primary_table_endpoint
    AzureWebJobsStorage__credential      = "managedidentity"
    AzureWebJobsStorage__clientId        = azurerm_user_assigned_identity.app.client_id
    # host: telemetry with Entra ID auth (local auth is off on the component)
    APPLICATIONINSIGHTS_CONNECTION_STRING     = azurerm_application_insights.main.connection_string
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.app.client_id};Authorization=AAD"
    # DefaultAzureCredential in reclaim picks the user-assigned identity by this client id
    AZURE_CLIENT_ID = azurerm_user_assigned_identity.app.client_id
    # reclaim: core
    RECLAIM_POLICIES_FILE    = var.policies_file
    RECLAIM_STATE_BACKEND    = "tables"
    RECLAIM_STATE_DB         = ""
    RECLAIM_KILL_SWITCH      = var.kill_switch ? "true" : "false"
    RECLAIM_SECRETS_SOURCE   = "keyvault"
    RECLAIM_KEY_VAULT_URL    = azurerm_key_vault.main.vault_uri
    RECLAIM_SECRET_CACHE_TTL = var.secret_cache_ttl
    RECLAIM_CA_BUNDLE        = var.ca_bundle
    # the identity that reads Key Vault: the app's user-assigned identity, named outright
    RECLAIM_KEY_VAULT_AUTHORITY_HOST = var.key_vault_authority_host
    RECLAIM_KEY_VAULT_CLIENT_ID      = azurerm_user_assigned_identity.app.client_id
    # reclaim: Microsoft Graph
    RECLAIM_TENANT_ID                = var.tenant_id
    RECLAIM_CLIENT_ID                = var.client_id
    RECLAIM_GRAPH_CLIENT_SECRET_NAME = var.graph_client_secret_name
    RECLAIM_GRAPH_CERTIFICATE_NAME   = var.graph_certificate_name
    RECLAIM_GRAPH_BASE_URL           = var.graph_base_url
    RECLAIM_AUTHORITY_HOST           = var.authority_host
    RECLAIM_GRAPH_SCOPE              = var.graph_scope
    # reclaim: the manage routes (Entra ID app roles)
    RECLAIM_ADMIN_AUDIENCE = var.admin_audience
    RECLAIM_PLATFORM_AUTH  = var.platform_auth ? "true" : "false"
    # reclaim: Active Directory
    RECLAIM_LDAP_URL                  = var.ldap_url
    RECLAIM_LDAP_BASE_DN              = var.ldap_base_dn
    RECLAIM_LDAP_BIND_DN              = var.ldap_bind_dn
    RECLAIM_LDAP_PASSWORD_SECRET_NAME = var.ldap_password_secret_name
    RECLAIM_LDAP_CA_FILE              = var.ldap_ca_file
    RECLAIM_LDAP_SERVER_NAME          = var.ldap_server_name
    RECLAIM_LDAP_START_TLS            = var.ldap_start_tls ? "true" : "false"
    RECLAIM_LDAP_INSECURE             = var.ldap_insecure ? "true" : "false"
    # reclaim: Nexthink
    RECLAIM_NEXTHINK_BASE_URL            = var.nexthink_base_url
    RECLAIM_NEXTHINK_TOKEN_URL           = var.nexthink_token_url
    RECLAIM_NEXTHINK_CLIENT_ID           = var.nexthink_client_id
    RECLAIM_NEXTHINK_CLIENT_SECRET_NAME  = var.nexthink_client_secret_name
    RECLAIM_NEXTHINK_ANSWERS_QUERY_ID    = var.nexthink_answers_query_id
    RECLAIM_NEXTHINK_EXECUTIONS_QUERY_ID = var.nexthink_executions_query_id
    RECLAIM_NEXTHINK_SAM_INPUT           = var.nexthink_sam_input
    RECLAIM_NEXTHINK_GROUP_INPUT         = var.nexthink_group_input
    RECLAIM_NEXTHINK_TIMEZONE            = var.nexthink_timezone
    # reclaim: the function set
    RECLAIM_SCHEDULER_SCHEDULE           = var.scheduler_schedule
    RECLAIM_EXPIRY_SCHEDULE              = var.expiry_schedule
    RECLAIM_REMOVAL_QUEUE                = var.removal_queue_name
    RECLAIM_TABLE_PREFIX                 = var.table_prefix
    RECLAIM_WEBHOOK_SECRET_NAME          = var.webhook_secret_name
    RECLAIM_WEBHOOK_MAX_BYTES            = tostring(var.webhook_max_bytes)
    RECLAIM_WEBHOOK_TOLERANCE            = var.webhook_tolerance
    RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME = var.outbound_webhook_secret_name
    RECLAIM_DIGEST_WEBHOOK_SECRET_NAME   = var.digest_webhook_secret_name
    # campaign channels email and teams (README "Campaign channel email", "... teams")
    RECLAIM_MAIL_SENDER               = ""
    RECLAIM_TEAMS_WEBHOOK_SECRET_NAME = ""
    # signed one-click links: set both to send email or Teams asks (README "Answer page")
    RECLAIM_LINK_SECRET_NAME = ""
    RECLAIM_PUBLIC_URL       = ""
    # reclaim: every removal ends (attempts, claims, circuit breakers, directory timeouts)
    RECLAIM_MAX_ATTEMPTS     = "5"
    RECLAIM_CLAIM_LEASE      = "5m"
    RECLAIM_RETENTION        = "400d"
    RECLAIM_BREAKER_BACKOFF  = "5m"
    RECLAIM_BREAKER_MAX_WAIT = "3d"
    RECLAIM_OUTAGE_THRESHOLD = "3"
    RECLAIM_LDAP_TIMEOUT     = "10"
    RECLAIM_GRAPH_TIMEOUT    = "30"
    # the fleet-wide Graph write budget every instance draws from (README: Fleet-wide write budget)
    RECLAIM_GRAPH_WRITE_RATE  = tostring(var.graph_write_rate)
    RECLAIM_GRAPH_WRITE_BURST = tostring(var.graph_write_burst)
  }
}

resource "azurerm_user_assigned_identity" "app" {
  name                = "id-reclaim-${local.resource_token}"
  location            = local.location
  resource_group_name = data.azurerm_resource_group.main.name
  tags                = local.tags
}

# Log Analytics workspace and the workspace-based Application Insights component. Local
# (instrumentation-key) authentication is off: the app sends telemetry with its managed identity
# (APPLICATIONINSIGHTS_AUTHENTICATION_STRING, role Monitoring Metrics Publisher).
resource "azurerm_log_analytics_workspace" "main" {
  name                         = "log-reclaim-${local.resource_token}"
  location                     = local.location
  resource_group_name          = data.azurerm_resource_group.main.name
  sku                          = "PerGB2018"
  retention_in_days            = var.log_retention_in_days
  local_authentication_enabled = false
  tags                         = local.tags
}

resource "azurerm_application_insights" "main" {
  name                          = "appi-reclaim-${local.resource_token}"
  location                      = local.location
  resource_group_name           = data.azurerm_resource_group.main.name
  application_type              = "web"
  workspace_id                  = azurerm_log_analytics_workspace.main.id
  local_authentication_disabled = true
  tags                          = local.tags
}
