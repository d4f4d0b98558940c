// reclaim: one Azure Functions app (Python 3.11, Flex Consumption) and what it needs.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<name> ...
//   azd up                      (azure.yaml at the project root points here)
//
// infra/terraform describes the same deployment; tests/unit/test_settings_parity.py keeps the app
// settings, queues and tables of both templates in step with reclaim/settings.py and
// local.settings.sample.json.
//
// Why Flex Consumption (FC1) rather than Consumption (Y1): the host and the deployment package reach
// storage with the managed identity only, so shared-key access on the storage account can be
// switched off (Y1 needs a key-based Azure Files share); it supports VNet integration for the
// LDAP path to on-premises AD and for private endpoints; and Linux Consumption is being retired.
//
// Public network access: by default the function app, the storage account and the vault accept
// traffic from the internet (every call still needs Entra ID auth, a function key or the webhook
// signature). To lock down: set allowedCallerCidrs (only those addresses reach the app, e.g. the
// Nexthink egress range that posts campaign answers: the webhook must stay reachable by whoever
// posts answers), and set privateNetworking: the app joins a VNet (Flex VNet integration), storage
// and Key Vault get private endpoints and their public network access is Disabled. See README
// "Private networking, redeploys and Easy Auth".
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(20)
@description('Short name of this environment (azd sets it); part of every resource name.')
param environmentName string

@description('Azure region; Flex Consumption must be available there.')
param location string = resourceGroup().location

@description('Tags for every resource.')
param tags object = {}

@description('Object id of an administrator who may write secrets into the vault (Key Vault Secrets Officer). Empty: nobody is granted; azd passes the signed-in user.')
param secretsOfficerPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of principal secretsOfficerPrincipalId is.')
param secretsOfficerPrincipalType string = 'User'

@minValue(1)
@maxValue(1000)
@description('Flex Consumption scale-out limit, set from the Graph write budget (README: Fleet-wide write budget): one instance spends it, one is spare, two serve HTTP and timers. More instances remove no faster.')
param maximumInstanceCount int = 4

@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@allowed([
  'Enabled'
  'Disabled'
])
@description('Inbound internet access to the function app. Disabled needs a private endpoint; the campaign webhook must stay reachable by whoever posts answers.')
param publicNetworkAccess string = 'Enabled'

@description('When not empty, only these CIDR ranges reach the function app (e.g. the Nexthink egress range that posts campaign answers); everything else is denied.')
param allowedCallerCidrs array = []

@minValue(30)
@maxValue(730)
param logRetentionInDays int = 90

@allowed([
  'default'
  'recover'
])
@description('default: create or update the vault. recover: bring back the soft-deleted vault of the same name (set it once after a teardown: purge protection keeps the name taken for 90 days), then set it back to default.')
param keyVaultCreateMode string = 'default'

// ---- private networking (the LDAP path to a domain controller, storage and Key Vault closed) ----

@description('true: a VNet with a subnet delegated to Flex Consumption, private endpoints and privatelink DNS zones for storage (blob, queue, table) and Key Vault, whose public network access is then Disabled.')
param privateNetworking bool = false

@description('Address space of the VNet (privateNetworking); must not overlap the network of the domain controllers.')
param vnetAddressPrefix string = '10.60.0.0/16'

@description('Subnet the function app joins (delegated to Microsoft.App/environments); /26 or larger for scale-out.')
param appSubnetPrefix string = '10.60.0.0/24'

@description('Subnet of the private endpoints.')
param privateEndpointSubnetPrefix string = '10.60.1.0/24'

@description('Resource id of a VNet to peer with (e.g. a hub with the VPN or ExpressRoute gateway to on-premises AD). Empty: no peering. The hub needs the peering back (README).')
param peerVnetId string = ''

@description('Route to on-premises through the peered VNet\'s gateway (the hub\'s side must allow gateway transit).')
param peerUseRemoteGateways bool = false

// ---- App Service Authentication (Easy Auth) in front of the app ----

@description('Application (client) id of the Entra app registration that Easy Auth signs users in with (needed when platformAuth is true).')
param platformAuthClientId string = ''

// ---- reclaim settings (names and defaults as in reclaim/settings.py) ----

@description('Policies file, relative to the app root; it is deployed with the app code.')
param policiesFile string = 'policies.yaml'

@description('Emergency stop: true means nothing is removed and removal messages wait.')
param killSwitch bool = false

param secretCacheTtl string = '5m'

@description('Authority host of the identity that reads Key Vault (empty: authorityHost).')
param keyVaultAuthorityHost string = ''

@description('Extra CA bundle path inside the app (empty: the system store).')
param caBundle string = ''

@description('Entra tenant of the reclaim app registration that calls Microsoft Graph.')
param tenantId string = ''

@description('Application (client) id of the reclaim app registration that calls Microsoft Graph.')
param clientId string = ''

// Secret names only: the values are put into the vault after deployment (az keyvault secret set).
param graphClientSecretName string = ''
param graphCertificateName string = ''
param ldapPasswordSecretName string = ''
param nexthinkClientSecretName string = ''
param webhookSecretName string = 'reclaim-webhook-secret'
param outboundWebhookSecretName string = ''
param digestWebhookSecretName string = ''

param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'
param authorityHost string = 'https://login.microsoftonline.com'

@description('Scope of the Graph token (empty: the origin of graphBaseUrl + /.default); behind a proxy or API Management: https://graph.microsoft.com/.default.')
param graphScope string = ''

@description('Manage routes: client id and/or App ID URI (comma list) of the API app registration whose app roles (Reclaim.Admin, Reclaim.Reader) admit callers. Empty: the manage routes refuse everyone.')
param adminAudience string = ''

@description('true: App Service Authentication (Easy Auth) with Microsoft Entra ID is on, letting unauthenticated requests through (the webhook authenticates by HMAC, the manage routes check bearer tokens themselves), and the app trusts the X-MS-CLIENT-PRINCIPAL header it forwards.')
param platformAuth bool = false

@description('ldaps://host[:port] of a domain controller; reaching on-premises AD needs VNet integration.')
param ldapUrl string = ''
param ldapBaseDn string = ''
param ldapBindDn string = ''
param ldapCaFile string = ''
param ldapServerName string = ''
param ldapStartTls bool = false
param ldapInsecure bool = false

param nexthinkBaseUrl string = ''
param nexthinkTokenUrl string = ''
param nexthinkClientId string = ''
param nexthinkAnswersQueryId string = '#license_reclamation_answers'
param nexthinkExecutionsQueryId string = '#license_reclamation_executions'
@description('Input ids of the remote action: the SAM account name and the group.')
param nexthinkSamInput string = 'SamAccountName'
param nexthinkGroupInput string = 'GroupName'
@description('IANA time zone of times without an offset in Nexthink exports (the instance\'s zone).')
param nexthinkTimezone string = 'UTC'

@description('NCRONTAB (six fields, seconds first): how often the scheduler looks for due policies.')
param schedulerSchedule string = '0 */5 * * * *'

@description('NCRONTAB (six fields, seconds first): how often open requests are checked for answers and deadlines.')
param expirySchedule string = '0 */15 * * * *'

@description('Removal queue; its poison queue is <name>-poison.')
param removalQueueName string = 'reclaim-removals'

@description('Table name prefix (letters and digits).')
param tablePrefix string = 'reclaim'

param webhookMaxBytes int = 65536

@minValue(1)
@description('Graph writes per second the whole fleet may send (Graph: 3,000 per 150 s per app and tenant, 20/s).')
param graphWriteRate int = 20

@minValue(1)
@description('Graph write bucket capacity shared by the fleet (Graph: 3,000).')
param graphWriteBurst int = 3000
param webhookTolerance string = '5m'

// ---- names ----

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'reclaim'
})

// The queue trigger moves a message that failed maxDequeueCount times to <queue>-poison.
var queueNames = [
  removalQueueName
  '${removalQueueName}-poison'
]

// reclaim.settings.TABLE_SUFFIXES: the tables are <tablePrefix><suffix>.
var tableSuffixes = [
  'Runs'
  'Decisions'
  'Requests'
  'Answers'
  'Ledger'
  'Members'
  'Cursors'
  'Switches'
  'Quarantine'
]

// ---- resources ----

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-reclaim-${resourceToken}'
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'reclaim-monitoring'
  params: {
    location: location
    tags: allTags
    workspaceName: 'log-reclaim-${resourceToken}'
    appInsightsName: 'appi-reclaim-${resourceToken}'
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'reclaim-storage'
  params: {
    location: location
    tags: allTags
    name: 'streclaim${resourceToken}'
    queueNames: queueNames
    tableNames: [for suffix in tableSuffixes: '${tablePrefix}${suffix}']
    workspaceId: monitoring.outputs.workspaceId
    privateNetworking: privateNetworking
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'reclaim-keyvault'
  params: {
    location: location
    tags: allTags
    name: 'kv-reclaim-${resourceToken}'
    workspaceId: monitoring.outputs.workspaceId
    createMode: keyVaultCreateMode
    privateNetworking: privateNetworking
  }
}

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'reclaim-network'
  params: {
    location: location
    tags: allTags
    resourceToken: resourceToken
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    storageAccountId: storage.outputs.id
    keyVaultId: vault.outputs.id
    peerVnetId: peerVnetId
    peerUseRemoteGateways: peerUseRemoteGateways
  }
}

module roles 'modules/roles.bicep' = {
  name: 'reclaim-roles'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    secretsOfficerPrincipalId: secretsOfficerPrincipalId
    secretsOfficerPrincipalType: secretsOfficerPrincipalType
  }
}

// Every setting reclaim reads (reclaim.settings.variable_names()) plus the host's own. No secret
// values: *_SECRET_NAME and *_CERTIFICATE_NAME are names of Key Vault secrets.
var appSettings = {
  // host: storage reached with the user-assigned identity (no connection string, no key)
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  // host: telemetry with Entra ID auth (local auth is off on the component)
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  // DefaultAzureCredential in reclaim picks the user-assigned identity by this client id
  AZURE_CLIENT_ID: identity.properties.clientId
  // reclaim: core
  RECLAIM_POLICIES_FILE: policiesFile
  RECLAIM_STATE_BACKEND: 'tables'
  RECLAIM_STATE_DB: ''
  RECLAIM_KILL_SWITCH: killSwitch ? 'true' : 'false'
  RECLAIM_SECRETS_SOURCE: 'keyvault'
  RECLAIM_KEY_VAULT_URL: vault.outputs.uri
  RECLAIM_SECRET_CACHE_TTL: secretCacheTtl
  RECLAIM_CA_BUNDLE: caBundle
  // the identity that reads Key Vault: the app's user-assigned identity, named outright
  RECLAIM_KEY_VAULT_AUTHORITY_HOST: keyVaultAuthorityHost
  RECLAIM_KEY_VAULT_CLIENT_ID: identity.properties.clientId
  // reclaim: Microsoft Graph
  RECLAIM_TENANT_ID: tenantId
  RECLAIM_CLIENT_ID: clientId
  RECLAIM_GRAPH_CLIENT_SECRET_NAME: graphClientSecretName
  RECLAIM_GRAPH_CERTIFICATE_NAME: graphCertificateName
  RECLAIM_GRAPH_BASE_URL: graphBaseUrl
  RECLAIM_AUTHORITY_HOST: authorityHost
  RECLAIM_GRAPH_SCOPE: graphScope
  // reclaim: the manage routes (Entra ID app roles)
  RECLAIM_ADMIN_AUDIENCE: adminAudience
  RECLAIM_PLATFORM_AUTH: platformAuth ? 'true' : 'false'
  // reclaim: Active Directory
  RECLAIM_LDAP_URL: ldapUrl
  RECLAIM_LDAP_BASE_DN: ldapBaseDn
  RECLAIM_LDAP_BIND_DN: ldapBindDn
  RECLAIM_LDAP_PASSWORD_SECRET_NAME: ldapPasswordSecretName
  RECLAIM_LDAP_CA_FILE: ldapCaFile
  RECLAIM_LDAP_SERVER_NAME: ldapServerName
  RECLAIM_LDAP_START_TLS: ldapStartTls ? 'true' : 'false'
  RECLAIM_LDAP_INSECURE: ldapInsecure ? 'true' : 'false'
  // reclaim: Nexthink
  RECLAIM_NEXTHINK_BASE_URL: nexthinkBaseUrl
  RECLAIM_NEXTHINK_TOKEN_URL: nexthinkTokenUrl
  RECLAIM_NEXTHINK_CLIENT_ID: nexthinkClientId
  RECLAIM_NEXTHINK_CLIENT_SECRET_NAME: nexthinkClientSecretName
  RECLAIM_NEXTHINK_ANSWERS_QUERY_ID: nexthinkAnswersQueryId
  RECLAIM_NEXTHINK_EXECUTIONS_QUERY_ID: nexthinkExecutionsQueryId
  RECLAIM_NEXTHINK_SAM_INPUT: nexthinkSamInput
  RECLAIM_NEXTHINK_GROUP_INPUT: nexthinkGroupInput
  RECLAIM_NEXTHINK_TIMEZONE: nexthinkTimezone
  // reclaim: the function set
  RECLAIM_SCHEDULER_SCHEDULE: schedulerSchedule
  RECLAIM_EXPIRY_SCHEDULE: expirySchedule
  RECLAIM_REMOVAL_QUEUE: removalQueueName
  RECLAIM_TABLE_PREFIX: tablePrefix
  RECLAIM_WEBHOOK_SECRET_NAME: webhookSecretName
  RECLAIM_WEBHOOK_MAX_BYTES: string(webhookMaxBytes)
  RECLAIM_WEBHOOK_TOLERANCE: webhookTolerance
  RECLAIM_OUTBOUND_WEBHOOK_SECRET_NAME: outboundWebhookSecretName
  RECLAIM_DIGEST_WEBHOOK_SECRET_NAME: digestWebhookSecretName
  // campaign channels email and teams (README "Campaign channel email", "... teams")
  RECLAIM_MAIL_SENDER: ''
  RECLAIM_TEAMS_WEBHOOK_SECRET_NAME: ''
  // signed one-click links: set both to send email or Teams asks (README "Answer page")
  RECLAIM_LINK_SECRET_NAME: ''
  RECLAIM_PUBLIC_URL: ''
  // reclaim: every removal ends (attempts, claims, circuit breakers, directory timeouts)
  RECLAIM_MAX_ATTEMPTS: '5'
  RECLAIM_CLAIM_LEASE: '5m'
  RECLAIM_RETENTION: '400d'
  RECLAIM_BREAKER_BACKOFF: '5m'
  RECLAIM_BREAKER_MAX_WAIT: '3d'
  RECLAIM_OUTAGE_THRESHOLD: '3'
  RECLAIM_LDAP_TIMEOUT: '10'
  RECLAIM_GRAPH_TIMEOUT: '30'
  // the fleet-wide Graph write budget every instance draws from (README: Fleet-wide write budget)
  RECLAIM_GRAPH_WRITE_RATE: string(graphWriteRate)
  RECLAIM_GRAPH_WRITE_BURST: string(graphWriteBurst)
}

// RECLAIM_ADMIN_AUDIENCE is a comma list; Easy Auth takes the same audiences as a list
var adminAudiences = [for audience in split(adminAudience, ','): trim(audience)]

module app 'modules/functionapp.bicep' = {
  name: 'reclaim-functionapp'
  params: {
    location: location
    tags: allTags
    planName: 'plan-reclaim-${resourceToken}'
    appName: 'func-reclaim-${resourceToken}'
    identityId: identity.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${storage.outputs.deploymentContainerName}'
    appSettings: appSettings
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    publicNetworkAccess: publicNetworkAccess
    allowedCallerCidrs: allowedCallerCidrs
    workspaceId: monitoring.outputs.workspaceId
    virtualNetworkSubnetId: privateNetworking ? network.outputs.appSubnetId : ''
    platformAuth: platformAuth
    platformAuthClientId: platformAuthClientId
    platformAuthIssuer: '${authorityHost}/${empty(tenantId) ? subscription().tenantId : tenantId}/v2.0'
    platformAuthAudiences: empty(adminAudience) ? [] : adminAudiences
  }
  // the host must be able to reach storage and the vault when it first starts
  dependsOn: [
    roles
  ]
}

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${app.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_KEY_VAULT_URL string = vault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output RECLAIM_MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId
// the hub's side of a peering (privateNetworking) needs it
output AZURE_VNET_ID string = privateNetworking ? network.outputs.vnetId : ''
