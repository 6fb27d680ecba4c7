//! This node's configuration: what the compiler needs to know besides the cluster state (which
//! node it compiles for, the tunnel type, the OpenFlow port numbers).

use std::collections::{BTreeMap, HashMap};

use crate::tables::{
    DEFAULT_NODE_OFPORT, DEFAULT_TUNNEL_OFPORT, FIRST_PATCH_OFPORT, PROVIDER_UPLINK_OFPORT,
    TUNNEL_PORT_PREFIX,
};

/// Tunnel encapsulation of br-int's tunnel port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelType {
    #[default]
    Geneve,
    Vxlan,
    Stt,
}

impl TunnelType {
    pub fn name(self) -> &'static str {
        match self {
            TunnelType::Geneve => "geneve",
            TunnelType::Vxlan => "vxlan",
            TunnelType::Stt => "stt",
        }
    }
    pub fn parse(s: &str) -> Option<TunnelType> {
        match s {
            "geneve" => Some(TunnelType::Geneve),
            "vxlan" => Some(TunnelType::Vxlan),
            "stt" => Some(TunnelType::Stt),
            _ => None,
        }
    }
    /// Bytes the encapsulation adds over an IPv4 underlay, as Kube-OVN counts them: a pod's
    /// MTU on an overlay subnet is the underlay interface's MTU less this.
    pub fn overhead(self) -> u32 {
        match self {
            TunnelType::Geneve => 100,
            TunnelType::Vxlan => 50,
            TunnelType::Stt => 72,
        }
    }

    /// The port name the agent gives the tunnel port.
    pub fn port_name(self) -> String {
        format!("{TUNNEL_PORT_PREFIX}{}", self.name())
    }
}

/// OpenFlow port numbers on this node. Pods appear as their interfaces do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub tunnel: u32,
    pub node_port: u32,
    /// br-int's patch port to each provider network.
    pub patches: BTreeMap<String, u32>,
    /// On each br-<pn>: the uplink's ofport.
    pub uplinks: BTreeMap<String, u32>,
    /// iface-id (`<pod>.<namespace>`) -> ofport on br-int.
    pub pods: HashMap<String, u32>,
}

impl Default for PortMap {
    fn default() -> Self {
        PortMap {
            tunnel: DEFAULT_TUNNEL_OFPORT,
            node_port: DEFAULT_NODE_OFPORT,
            patches: BTreeMap::new(),
            uplinks: BTreeMap::new(),
            pods: HashMap::new(),
        }
    }
}

impl PortMap {
    pub fn patch(&self, pn: &str, index: usize) -> u32 {
        self.patches
            .get(pn)
            .copied()
            .unwrap_or(FIRST_PATCH_OFPORT + index as u32)
    }
    pub fn uplink(&self, pn: &str) -> u32 {
        self.uplinks
            .get(pn)
            .copied()
            .unwrap_or(PROVIDER_UPLINK_OFPORT)
    }
}

/// Everything about this node the compiler needs besides the cluster state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub node: String,
    pub tunnel: TunnelType,
    pub ports: PortMap,
}

impl NodeConfig {
    pub fn new(node: impl Into<String>, tunnel: TunnelType) -> NodeConfig {
        NodeConfig {
            node: node.into(),
            tunnel,
            ports: PortMap::default(),
        }
    }
}
