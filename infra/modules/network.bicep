// Private networking (main.bicep deploys this only when privateNetworking is true): a VNet whose
// "app" subnet the Flex Consumption app joins (outbound: the LDAP path to a domain controller,
// storage and Key Vault), private endpoints for storage (blob, queue, table) and Key Vault in the
// "private-endpoints" subnet, and the privatelink DNS zones that make the usual host names
// resolve to those endpoints inside the VNet. Optionally peered with a hub VNet that reaches
// on-premises AD (VPN or ExpressRoute).

param location string
param tags object
param resourceToken string
param addressPrefix string
param appSubnetPrefix string
param privateEndpointSubnetPrefix string
param storageAccountId string
param keyVaultId string
param peerVnetId string
param peerUseRemoteGateways bool

// One private endpoint per (resource, sub-resource), each with its zone (Azure public cloud names).
var privateLinks = [
  {
    group: 'blob'
    zone: 'privatelink.blob.core.windows.net'
    target: storageAccountId
  }
  {
    group: 'queue'
    zone: 'privatelink.queue.core.windows.net'
    target: storageAccountId
  }
  {
    group: 'table'
    zone: 'privatelink.table.core.windows.net'
    target: storageAccountId
  }
  {
    group: 'vault'
    zone: 'privatelink.vaultcore.azure.net'
    target: keyVaultId
  }
]

// No rules of its own: the default rules allow traffic inside the VNet (and peered VNets) and
// outbound to the internet (Microsoft Graph, Entra ID, Nexthink).
resource nsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-reclaim-${resourceToken}'
  location: location
  tags: tags
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: 'vnet-reclaim-${resourceToken}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
          // Flex Consumption joins a subnet delegated to Microsoft.App/environments (not
          // Microsoft.Web/serverFarms as the other plans do)
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource peering 'Microsoft.Network/virtualNetworks/virtualNetworkPeerings@2024-05-01' = if (!empty(peerVnetId)) {
  parent: vnet
  name: 'to-peer'
  properties: {
    remoteVirtualNetwork: {
      id: peerVnetId
    }
    allowVirtualNetworkAccess: true
    allowForwardedTraffic: true
    useRemoteGateways: peerUseRemoteGateways
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for link in privateLinks: {
  name: link.zone
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (link, index) in privateLinks: {
  parent: zones[index]
  name: 'vnet-reclaim-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

resource endpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for link in privateLinks: {
  name: 'pe-reclaim-${link.group}-${resourceToken}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: '${vnet.id}/subnets/private-endpoints'
    }
    privateLinkServiceConnections: [
      {
        name: link.group
        properties: {
          privateLinkServiceId: link.target
          groupIds: [
            link.group
          ]
        }
      }
    ]
  }
}]

resource endpointZones 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (link, index) in privateLinks: {
  parent: endpoints[index]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: link.group
        properties: {
          privateDnsZoneId: zones[index].id
        }
      }
    ]
  }
}]

output appSubnetId string = '${vnet.id}/subnets/app'
output vnetId string = vnet.id
