# Parameters of the deployment: the same names (in snake_case) and defaults as infra/main.bicep.

variable "resource_group_name" {
  description = "Existing resource group to deploy into (as az deployment group create does)."
  type        = string
}

variable "environment_name" {
  description = "Short name of this environment; part of every resource name."
  type        = string

  validation {
    condition     = length(var.environment_name) >= 1 && length(var.environment_name) <= 20
    error_message = "environment_name must be 1 to 20 characters."
  }
}

variable "location" {
  description = "Azure region; Flex Consumption must be available there. Empty: the resource group's region."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "secrets_officer_principal_id" {
  description = "Object id of an administrator who may write secrets into the vault (Key Vault Secrets Officer). Empty: nobody is granted."
  type        = string
  default     = ""
}

variable "maximum_instance_count" {
  description = "Flex Consumption scale-out limit, set from the Graph write budget (README: Fleet-wide write budget): one instance spends it, one is spare, two serve HTTP and timers. More instances remove no faster."
  type        = number
  default     = 4
}

variable "instance_memory_mb" {
  type    = number
  default = 2048

  validation {
    condition     = contains([2048, 4096], var.instance_memory_mb)
    error_message = "instance_memory_mb must be 2048 or 4096."
  }
}

variable "public_network_access" {
  description = "Inbound internet access to the function app: Enabled or Disabled (needs a private endpoint). The campaign webhook must stay reachable by whoever posts answers."
  type        = string
  default     = "Enabled"

  validation {
    condition     = contains(["Enabled", "Disabled"], var.public_network_access)
    error_message = "public_network_access must be Enabled or Disabled."
  }
}

variable "allowed_caller_cidrs" {
  description = "When not empty, only these CIDR ranges reach the function app (e.g. the Nexthink egress range that posts campaign answers); everything else is denied."
  type        = list(string)
  default     = []
}

variable "log_retention_in_days" {
  type    = number
  default = 90
}

# ---- private networking (the LDAP path to a domain controller, storage and Key Vault closed) ----

variable "private_networking" {
  description = "true: a VNet with a subnet delegated to Flex Consumption, private endpoints and privatelink DNS zones for storage (blob, queue, table) and Key Vault, whose public network access is then disabled."
  type        = bool
  default     = false
}

variable "vnet_address_prefix" {
  description = "Address space of the VNet (private_networking); must not overlap the network of the domain controllers."
  type        = string
  default     = "10.60.0.0/16"
}

variable "app_subnet_prefix" {
  description = "Subnet the function app joins (delegated to Microsoft.App/environments); /26 or larger for scale-out."
  type        = string
  default     = "10.60.0.0/24"
}

variable "private_endpoint_subnet_prefix" {
  description = "Subnet of the private endpoints."
  type        = string
  default     = "10.60.1.0/24"
}

variable "peer_vnet_id" {
  description = "Resource id of a VNet to peer with (e.g. a hub with the VPN or ExpressRoute gateway to on-premises AD). Empty: no peering. The hub needs the peering back (README)."
  type        = string
  default     = ""
}

variable "peer_use_remote_gateways" {
  description = "Route to on-premises through the peered VNet's gateway (the hub's side must allow gateway transit)."
  type        = bool
  default     = false
}

# ---- App Service Authentication (Easy Auth) in front of the app ----

variable "platform_auth_client_id" {
  description = "Application (client) id of the Entra app registration that Easy Auth signs users in with (needed when platform_auth is true)."
  type        = string
  default     = ""

  validation {
    condition     = !var.platform_auth || var.platform_auth_client_id != ""
    error_message = "platform_auth needs platform_auth_client_id (the Entra app registration's client id)."
  }
}

# ---- reclaim settings (names and defaults as in reclaim/settings.py) ----

variable "policies_file" {
  description = "Policies file, relative to the app root; it is deployed with the app code."
  type        = string
  default     = "policies.yaml"
}

variable "kill_switch" {
  description = "Emergency stop: true means nothing is removed and removal messages wait."
  type        = bool
  default     = false
}

variable "secret_cache_ttl" {
  type    = string
  default = "5m"
}

variable "ca_bundle" {
  description = "Extra CA bundle path inside the app (empty: the system store)."
  type        = string
  default     = ""
}

variable "key_vault_authority_host" {
  description = "Authority host of the identity that reads Key Vault (empty: authority_host)."
  type        = string
  default     = ""
}

variable "tenant_id" {
  description = "Entra tenant of the reclaim app registration that calls Microsoft Graph."
  type        = string
  default     = ""
}

variable "client_id" {
  description = "Application (client) id of the reclaim app registration that calls Microsoft Graph."
  type        = string
  default     = ""
}

# Secret names only: the values are put into the vault after deployment (az keyvault secret set).

variable "graph_client_secret_name" {
  type    = string
  default = ""
}

variable "graph_certificate_name" {
  type    = string
  default = ""
}

variable "ldap_password_secret_name" {
  type    = string
  default = ""
}

variable "nexthink_client_secret_name" {
  type    = string
  default = ""
}

variable "webhook_secret_name" {
  type    = string
  default = "reclaim-webhook-secret"
}

variable "outbound_webhook_secret_name" {
  type    = string
  default = ""
}

variable "digest_webhook_secret_name" {
  type    = string
  default = ""
}

variable "graph_base_url" {
  type    = string
  default = "https://graph.microsoft.com/v1.0"
}

variable "authority_host" {
  type    = string
  default = "https://login.microsoftonline.com"
}

variable "graph_scope" {
  description = "Scope of the Graph token (empty: the origin of graph_base_url + /.default); behind a proxy or API Management: https://graph.microsoft.com/.default."
  type        = string
  default     = ""
}

variable "admin_audience" {
  description = "Manage routes: client id and/or App ID URI (comma list) of the API app registration whose app roles (Reclaim.Admin, Reclaim.Reader) admit callers. Empty: the manage routes refuse everyone."
  type        = string
  default     = ""
}

variable "platform_auth" {
  description = "true: App Service Authentication (Easy Auth) with Microsoft Entra ID is on, letting unauthenticated requests through (the webhook authenticates by HMAC, the manage routes check bearer tokens themselves), and the app trusts the X-MS-CLIENT-PRINCIPAL header it forwards."
  type        = bool
  default     = false
}

variable "ldap_url" {
  description = "ldaps://host[:port] of a domain controller; reaching on-premises AD needs VNet integration."
  type        = string
  default     = ""
}

variable "ldap_base_dn" {
  type    = string
  default = ""
}

variable "ldap_bind_dn" {
  type    = string
  default = ""
}

variable "ldap_ca_file" {
  type    = string
  default = ""
}

variable "ldap_server_name" {
  type    = string
  default = ""
}

variable "ldap_start_tls" {
  type    = bool
  default = false
}

variable "ldap_insecure" {
  type    = bool
  default = false
}

variable "nexthink_base_url" {
  type    = string
  default = ""
}

variable "nexthink_token_url" {
  type    = string
  default = ""
}

variable "nexthink_client_id" {
  type    = string
  default = ""
}

variable "nexthink_answers_query_id" {
  type    = string
  default = "#license_reclamation_answers"
}

variable "nexthink_executions_query_id" {
  type    = string
  default = "#license_reclamation_executions"
}

variable "nexthink_sam_input" {
  description = "Input id of the remote action that takes the SAM account name."
  type        = string
  default     = "SamAccountName"
}

variable "nexthink_group_input" {
  description = "Input id of the remote action that takes the group."
  type        = string
  default     = "GroupName"
}

variable "nexthink_timezone" {
  description = "IANA time zone of times without an offset in Nexthink exports (the instance's zone)."
  type        = string
  default     = "UTC"
}

variable "scheduler_schedule" {
  description = "NCRONTAB (six fields, seconds first): how often the scheduler looks for due policies."
  type        = string
  default     = "0 */5 * * * *"
}

variable "expiry_schedule" {
  description = "NCRONTAB (six fields, seconds first): how often open requests are checked for answers and deadlines."
  type        = string
  default     = "0 */15 * * * *"
}

variable "removal_queue_name" {
  description = "Removal queue; its poison queue is <name>-poison."
  type        = string
  default     = "reclaim-removals"
}

variable "table_prefix" {
  description = "Table name prefix (letters and digits)."
  type        = string
  default     = "reclaim"
}

variable "webhook_max_bytes" {
  type    = number
  default = 65536
}

variable "graph_write_rate" {
  description = "Graph writes per second the whole fleet may send (Graph: 3,000 per 150 s per app and tenant, 20/s)."
  type        = number
  default     = 20
}

variable "graph_write_burst" {
  description = "Graph write bucket capacity shared by the fleet (Graph: 3,000)."
  type        = number
  default     = 3000
}

variable "webhook_tolerance" {
  type    = string
  default = "5m"
}
