//! The controller's configuration: Kube-OVN's install variables (`POD_CIDR`, `POD_GATEWAY`,
//! `EXCLUDE_IPS`, `JOIN_CIDR`, `NETWORK_TYPE`, `VLAN_INTERFACE_NAME`, `VLAN_ID`,
//! `PROVIDER_NAME`), already checked.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Overlay (`geneve`, Kube-OVN's default) or underlay (`vlan`: the default subnet is on a VLAN
/// of the default provider network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkType {
    Geneve,
    Vlan {
        /// The default ProviderNetwork's `defaultInterface`.
        interface: String,
        /// The default Vlan's id (0 = untagged).
        id: u16,
        exchange_link_name: bool,
    },
}

/// What the controller creates at install time and allocates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The default subnet (`--default-ls`, `ovn-default`).
    pub default_subnet: String,
    pub pod_cidr: Ipv4Net,
    /// `None`: the CIDR's first address.
    pub pod_gateway: Option<Ipv4Addr>,
    /// `EXCLUDE_IPS` entries (`ip` or `ip1..ip2`).
    pub exclude_ips: Vec<String>,
    /// The join subnet (`--node-switch`, `join`) and its CIDR.
    pub join_subnet: String,
    pub join_cidr: Ipv4Net,
    /// The default VPC (`--cluster-router`, `ovn-cluster`).
    pub cluster_router: String,
    pub network_type: NetworkType,
    /// The default ProviderNetwork's and Vlan's names (`provider`, `ovn-vlan`).
    pub provider_name: String,
    pub vlan_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_subnet: "ovn-default".into(),
            pod_cidr: "10.16.0.0/16".parse().expect("constant"),
            pod_gateway: None,
            exclude_ips: Vec::new(),
            join_subnet: "join".into(),
            join_cidr: "100.64.0.0/16".parse().expect("constant"),
            cluster_router: "ovn-cluster".into(),
            network_type: NetworkType::Geneve,
            provider_name: "provider".into(),
            vlan_name: "ovn-vlan".into(),
        }
    }
}
