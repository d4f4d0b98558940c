// The Flex Consumption plan and the function app: Linux, Python 3.11, one user-assigned identity,
// HTTPS only, TLS 1.2, FTP and basic-auth publishing off. The deployment package is read from blob
// storage with the identity.

param location string
param tags object
param planName string
param appName string
param identityId string
param deploymentContainerUrl string
param appSettings object
param maximumInstanceCount int
param instanceMemoryMB int
param publicNetworkAccess string
param allowedCallerCidrs array
param workspaceId string

@description('Subnet (delegated to Microsoft.App/environments) the app joins for outbound traffic; empty: none.')
param virtualNetworkSubnetId string

@description('App Service Authentication (Easy Auth) with Microsoft Entra ID: on or off.')
param platformAuth bool
param platformAuthClientId string
param platformAuthIssuer string
param platformAuthAudiences array

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:The plan is not zone-redundant because its storage account is GRS (geo-redundant, not zone-redundant), and a zone-redundant Flex plan also keeps at least two always-ready instances billed around the clock.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// Inbound allow-list: empty means open to every caller (functions still check keys/signatures).
var callerRules = [for (cidr, index) in allowedCallerCidrs: {
  name: 'caller-${index}'
  ipAddress: cidr
  action: 'Allow'
  priority: 100 + index
}]

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  // azd finds the app to deploy the "reclaim" service into by this tag
  tags: union(tags, {
    'azd-service-name': 'reclaim'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    //checkov:skip=CKV_AZURE_222:The campaign webhook must be reachable by whoever posts answers (e.g. Nexthink); restrict callers with allowedCallerCidrs or set publicNetworkAccess Disabled behind a private endpoint.
    //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero on demand; timers and the queue trigger need no always-ready instance for failover.
    //checkov:skip=CKV_AZURE_213:The app has no health route; Flex Consumption replaces unhealthy instances itself and scales to zero.
    //checkov:skip=CKV_AZURE_17:Callers are not asked for client certificates: answer posters such as Nexthink authenticate with an HMAC signature over the body and cannot present a client certificate.
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: publicNetworkAccess
    // outbound through the VNet (privateNetworking): private endpoints and the domain controllers
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      ipSecurityRestrictions: callerRules
      ipSecurityRestrictionsDefaultAction: empty(allowedCallerCidrs) ? 'Allow' : 'Deny'
      // deployments (azd, func publish) use Entra ID on the scm site, not the caller allow-list
      scmIpSecurityRestrictionsUseMain: false
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // Flex sets the worker runtime here; FUNCTIONS_WORKER_RUNTIME is not a valid app setting on it
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Publishing with user name and password (FTP, and basic auth on the scm site) is off; azd and
// `func azure functionapp publish` use Entra ID.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication (Easy Auth). Always written, so that switching platformAuth off on a
// redeploy switches it off (a missing resource would leave the last configuration in place). It
// lets unauthenticated requests through: the campaign webhook authenticates by HMAC signature and
// the admin routes check bearer tokens themselves; a browser can still sign in at
// /.auth/login/aad, and the app trusts the principal Easy Auth forwards only when
// RECLAIM_PLATFORM_AUTH is true (the platform strips that header from callers when it is on).
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:Easy Auth is optional (platformAuth, off by default) because the admin routes check Entra ID bearer tokens in code; checkov also reads the v1 authsettings enabled flag, not authsettingsV2 platform.enabled.
  //checkov:skip=CKV_AZURE_63:checkov applies the web config checks to every Microsoft.Web/sites/config; authsettingsV2 has no HTTP logging setting. Function logs go to Log Analytics (appDiagnostics).
  //checkov:skip=CKV_AZURE_65:checkov applies the web config checks to every Microsoft.Web/sites/config; authsettingsV2 has no detailed error messages setting.
  //checkov:skip=CKV_AZURE_66:checkov applies the web config checks to every Microsoft.Web/sites/config; authsettingsV2 has no failed request tracing setting.
  //checkov:skip=CKV_AZURE_80:checkov applies the web config checks to every Microsoft.Web/sites/config; authsettingsV2 has no .NET version, and the app is Python.
  //checkov:skip=CKV_AZURE_88:checkov applies the web config checks to every Microsoft.Web/sites/config; authsettingsV2 has no storage mounts, and Flex Consumption reads its package from blob storage.
  //checkov:skip=CKV_AZURE_222:checkov applies the web config checks to every Microsoft.Web/sites/config; authsettingsV2 has no publicNetworkAccess (the site's own is explained on the app above).
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: platformAuth
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: platformAuth
        registration: {
          clientId: platformAuthClientId
          openIdIssuer: platformAuthIssuer
        }
        validation: {
          allowedAudiences: platformAuthAudiences
        }
      }
    }
  }
}

resource appDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: app
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
