//! The plan: identifiers (subnet keys, VPC ids) and per-node facts (the join subnet, the provider
//! networks present here) derived once from a validated state, which every stage reads.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::NodeConfig;
use crate::ids::allocate;
use crate::model::{ClusterState, ValidSubnet, DEFAULT_VPC};
use crate::tables::{DEFAULT_JOIN_CIDR, JOIN_SUBNET};

/// The join subnet: where node ports (`kovs0`) live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSubnet {
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub vpc: String,
}

/// A provider network present on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalProvider {
    pub bridge: String,
    pub interface: String,
    /// br-int's patch port towards it.
    pub patch: u32,
    /// The uplink's port on br-<pn>.
    pub uplink: u32,
}

/// What a pod's flows need from its subnet, computed once per state (pods look it up by a
/// fast hash instead of walking the ordered maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetCtx {
    pub key: u32,
    pub vpc: u32,
    /// Underlay (has a VLAN).
    pub underlay: bool,
    /// Has a router port (overlay, logicalGateway, u2o).
    pub routed: bool,
    /// Underlay whose provider network is on this node.
    pub provider_here: bool,
}

/// Identifiers and per-node facts derived from one cluster state.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Programmed subnets only.
    pub subnets: hashbrown::HashMap<String, SubnetCtx>,
    pub subnet_keys: HashMap<String, u32>,
    pub vpc_ids: HashMap<String, u32>,
    pub join: JoinSubnet,
    pub providers: BTreeMap<String, LocalProvider>,
    /// Whether this node is in the state at all.
    pub node_known: bool,
}

impl Plan {
    pub fn new(state: &ClusterState, cfg: &NodeConfig) -> Plan {
        let mut names: Vec<(String, String)> = state
            .subnets
            .keys()
            .map(|n| (n.clone(), String::new()))
            .collect();
        if !state.subnets.contains_key(JOIN_SUBNET) {
            names.push((JOIN_SUBNET.to_string(), String::new()));
        }
        let subnet_keys = allocate(&names, 24);
        let vpcs: Vec<(String, String)> = state
            .vpcs
            .keys()
            .map(|n| (n.clone(), String::new()))
            .collect();
        let vpc_ids = allocate(&vpcs, 16);
        let join = match state.subnets.get(JOIN_SUBNET) {
            Some(s) => JoinSubnet {
                cidr: s.cidr,
                gateway: s.gateway,
                vpc: s.vpc.clone(),
            },
            None => {
                let cidr: Ipv4Net = DEFAULT_JOIN_CIDR.parse().expect("constant CIDR");
                JoinSubnet {
                    gateway: Ipv4Addr::from(u32::from(cidr.network()) + 1),
                    cidr,
                    vpc: DEFAULT_VPC.to_string(),
                }
            }
        };
        let mut providers = BTreeMap::new();
        let node = state.nodes.get(&cfg.node);
        if let Some(node) = node {
            for (i, (name, pn)) in state.provider_networks.iter().enumerate() {
                if !pn.includes_node(&node.name, &node.labels) {
                    continue;
                }
                if let Some(iface) = pn.interface_for(&node.name, &node.labels) {
                    providers.insert(
                        name.clone(),
                        LocalProvider {
                            bridge: pn.bridge.clone(),
                            interface: iface.to_string(),
                            patch: cfg.ports.patch(name, i),
                            uplink: cfg.ports.uplink(name),
                        },
                    );
                }
            }
        }
        let subnets = state
            .subnets
            .values()
            .filter(|s| programmed(s))
            .map(|s| {
                let ctx = SubnetCtx {
                    key: subnet_keys.get(&s.name).copied().unwrap_or(0),
                    vpc: vpc_ids.get(&s.vpc).copied().unwrap_or(0),
                    underlay: s.vlan.is_some(),
                    routed: s.is_routed(),
                    provider_here: s
                        .vlan
                        .as_ref()
                        .is_some_and(|vb| providers.contains_key(&vb.provider_network)),
                };
                (s.name.clone(), ctx)
            })
            .collect();
        Plan {
            subnets,
            subnet_keys,
            vpc_ids,
            join,
            providers,
            node_known: node.is_some(),
        }
    }

    pub fn key(&self, subnet: &str) -> u32 {
        self.subnet_keys.get(subnet).copied().unwrap_or(0)
    }
    pub fn vpc(&self, vpc: &str) -> u32 {
        self.vpc_ids.get(vpc).copied().unwrap_or(0)
    }
}

/// Does this subnet get a dataplane at all?
pub(crate) fn programmed(s: &ValidSubnet) -> bool {
    s.ovn_managed
}
