// Key Vault for reclaim's secrets (Graph client secret or certificate, LDAP bind password,
// Nexthink client secret, webhook signing secrets). Azure RBAC authorisation, soft delete and
// purge protection. No secret is created here: values never go into a template; an administrator
// sets them after deployment (az keyvault secret set).

param location string
param tags object
param name string
param workspaceId string

@allowed([
  'default'
  'recover'
])
@description('recover: bring back the soft-deleted vault of this name (after a teardown); default otherwise.')
param createMode string

@description('true: reached only through the private endpoint of modules/network.bicep; public network access is Disabled.')
param privateNetworking bool

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Open by default (privateNetworking false): Flex Consumption without VNet integration reads secrets over the internet, each read with an Entra ID token and the Key Vault Secrets User role. privateNetworking true sets defaultAction Deny.
  name: name
  location: location
  tags: tags
  properties: {
    // purge protection keeps a deleted vault's name for softDeleteRetentionInDays: a deployment
    // after a teardown must recover it (createMode 'recover') instead of creating it again
    createMode: createMode
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Open unless privateNetworking (Flex without VNet integration reads secrets over the
    // internet, always with an Entra ID token and an RBAC role); with it, only the private
    // endpoint reaches it. checkov cannot evaluate the condition (its CKV_AZURE_189 check errors out).
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
    }
  }
}

// Audit trail of every secret read and write.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
