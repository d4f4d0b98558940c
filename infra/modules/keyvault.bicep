// Key Vault for reclaim's secrets (Graph client secret or certificate, LDAP bind password,
// Nexthink client secret, webhook signing secrets). Azure RBAC authorisation, soft delete and
// purge protection. No secret is created here: values never go into a template; an administrator
// sets them after deployment (az keyvault secret set).

param location string
param tags object
param name string
param workspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Flex Consumption without VNet integration reads secrets over the internet; each read needs an Entra ID token and the Key Vault Secrets User role. Lock down with a private endpoint and defaultAction Deny.
  //checkov:skip=CKV_AZURE_189:Same reason: public network access is needed until the app is VNet-integrated and the vault has a private endpoint.
  name: name
  location: location
  tags: tags
  properties: {
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
    // Lock-down: 'Disabled' plus a private endpoint and VNet integration of the function app.
    // Open by default because Flex without VNet reads secrets over the internet; every request
    // still needs an Entra ID token and an RBAC role on this vault.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
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
output uri string = vault.properties.vaultUri
