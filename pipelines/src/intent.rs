//! What the compiler wants of the node besides flows: the bridges whose flows it owns, the patch
//! ports joining br-int to each provider bridge, and the host side of the node port. The agent
//! makes the node match it (OVSDB, netlink) instead of reading the [`Plan`]'s internals, as
//! ovn-controller follows the southbound database rather than northd's reasoning.

use std::net::Ipv4Addr;

use crate::compile::Bridges;
use crate::config::NodeConfig;
use crate::flowset::{BridgeId, BR_INT};
use crate::model::{ClusterState, MacAddr, DEFAULT_VPC};
use crate::plan::Plan;
use crate::tables::{
    patch_int_to_pn, patch_pn_to_int, INTEGRATION_BRIDGE, JOIN_SUBNET, NODE_PORT_NAME,
    PROVIDER_PATCH_OFPORT,
};

/// Everything the compiled flows need of this node besides the flows themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeIntent {
    /// br-int first, then one bridge per provider network on this node, by network name.
    pub bridges: Vec<BridgeIntent>,
    /// Both ends of each br-int <-> provider bridge patch, br-int's end first, by network name.
    pub patch_ports: Vec<PatchPort>,
    /// The node port's host configuration; `None` when the node has no join address (or is not
    /// in the state).
    pub node_port: Option<NodePortIntent>,
}

/// A bridge whose flows the compiler owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeIntent {
    /// The name the compiler knows it by (`br-int`, `br-<pn>`). With `exchangeLinkName` the agent
    /// names the OVS bridge after the NIC instead; the flows are the same.
    pub name: String,
    /// The id its flows carry ([`CompactFlow::bridge`](crate::CompactFlow::bridge)).
    pub id: BridgeId,
    pub role: BridgeRole,
}

/// What a bridge is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeRole {
    /// br-int: pods, the tunnel, the node port, the patch ports to provider networks.
    Integration,
    /// A provider network's bridge, holding its uplink NIC on this node.
    Provider {
        network: String,
        /// The NIC (after `customInterfaces`) this node bridges.
        interface: String,
    },
}

/// One end of a patch port pair between br-int and a provider bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPort {
    pub provider_network: String,
    /// The bridge this end is on, by its compiled name ([`BridgeIntent::name`]).
    pub bridge: String,
    pub name: String,
    /// The other end's name (`options:peer`).
    pub peer: String,
    /// The ofport to request: the flows use it.
    pub ofport: u32,
}

/// The host side of the node port (`kovs0`, Kube-OVN's `ovn0`) in the join subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePortIntent {
    pub name: String,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Of the join subnet.
    pub prefix_len: u8,
    /// The join subnet's gateway: the next hop of `routes`.
    pub gateway: Ipv4Addr,
    /// The routed subnets of the default VPC (join excepted), sorted: the host reaches their
    /// pods through the node port.
    pub routes: Vec<(Ipv4Addr, u8)>,
}

impl NodeIntent {
    /// The intent of a compiled state. `bridges` is the compiler's bridge table: a provider
    /// bridge gets the id its flows were compiled with (or the next free one).
    pub fn new(
        state: &ClusterState,
        plan: &Plan,
        cfg: &NodeConfig,
        bridges: &mut Bridges,
    ) -> NodeIntent {
        let mut intent = NodeIntent {
            bridges: vec![BridgeIntent {
                name: INTEGRATION_BRIDGE.to_string(),
                id: BR_INT,
                role: BridgeRole::Integration,
            }],
            patch_ports: Vec::with_capacity(plan.providers.len() * 2),
            node_port: node_port(state, plan, &cfg.node),
        };
        for (pn, lp) in &plan.providers {
            intent.bridges.push(BridgeIntent {
                name: lp.bridge.clone(),
                id: bridges.id(&lp.bridge),
                role: BridgeRole::Provider {
                    network: pn.clone(),
                    interface: lp.interface.clone(),
                },
            });
            let (int_end, pn_end) = (patch_int_to_pn(pn), patch_pn_to_int(pn));
            intent.patch_ports.push(PatchPort {
                provider_network: pn.clone(),
                bridge: INTEGRATION_BRIDGE.to_string(),
                name: int_end.clone(),
                peer: pn_end.clone(),
                ofport: lp.patch,
            });
            intent.patch_ports.push(PatchPort {
                provider_network: pn.clone(),
                bridge: lp.bridge.clone(),
                name: pn_end,
                peer: int_end,
                ofport: PROVIDER_PATCH_OFPORT,
            });
        }
        intent
    }

    /// The provider bridges, with their network.
    pub fn provider_bridges(&self) -> impl Iterator<Item = (&str, &BridgeIntent)> {
        self.bridges.iter().filter_map(|b| match &b.role {
            BridgeRole::Provider { network, .. } => Some((network.as_str(), b)),
            BridgeRole::Integration => None,
        })
    }
}

/// The node port's host configuration: the node's join address (its Kube-OVN annotations) in
/// the join subnet, and routes to the default VPC's routed subnets through the join gateway.
fn node_port(state: &ClusterState, plan: &Plan, node: &str) -> Option<NodePortIntent> {
    let n = state.nodes.get(node)?;
    let (ip, mac) = (n.join_ip?, n.join_mac?);
    let mut routes: Vec<(Ipv4Addr, u8)> = state
        .subnets
        .values()
        .filter(|s| s.vpc == DEFAULT_VPC && s.name != JOIN_SUBNET && s.is_routed() && s.ovn_managed)
        .map(|s| (s.cidr.network(), s.cidr.prefix_len()))
        .collect();
    routes.sort();
    routes.dedup();
    Some(NodePortIntent {
        name: NODE_PORT_NAME.to_string(),
        mac,
        ip,
        prefix_len: plan.join.cidr.prefix_len(),
        gateway: plan.join.gateway,
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TunnelType;
    use crate::model::{load_yaml_str, validate};
    use crate::tables::FIRST_PATCH_OFPORT;

    const STATE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: node1
  labels: {kubernetes.io/hostname: node1}
  annotations:
    ovn.kubernetes.io/ip_address: 100.64.0.2
    ovn.kubernetes.io/mac_address: "0e:00:00:00:00:01"
status:
  addresses: [{type: InternalIP, address: 172.18.0.1}]
---
apiVersion: v1
kind: Node
metadata:
  name: node2
status:
  addresses: [{type: InternalIP, address: 172.18.0.2}]
---
apiVersion: kubeovn.io/v1
kind: ProviderNetwork
metadata: {name: phys}
spec:
  defaultInterface: eth1
  customInterfaces: [{interface: eth9, nodes: [node2]}]
---
apiVersion: kubeovn.io/v1
kind: ProviderNetwork
metadata: {name: away}
spec:
  defaultInterface: eth2
  excludeNodes: [node1]
---
apiVersion: kubeovn.io/v1
kind: Vlan
metadata: {name: vlan100}
spec: {id: 100, provider: phys}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: ovn-default}
spec: {cidrBlock: 10.16.0.0/16}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: blue}
spec: {cidrBlock: 10.20.0.0/16}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: join}
spec: {cidrBlock: 100.64.0.0/16}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: underlay}
spec: {cidrBlock: 192.168.100.0/24, vlan: vlan100}
---
apiVersion: kubeovn.io/v1
kind: Vpc
metadata: {name: red}
spec: {namespaces: [red]}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: red}
spec: {cidrBlock: 10.30.0.0/16, vpc: red, namespaces: [red]}
"#;

    fn intent_of(node: &str) -> NodeIntent {
        let loaded = load_yaml_str(STATE, "test");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let state = validate(&loaded.objects);
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        let cfg = NodeConfig::new(node, TunnelType::Geneve);
        let plan = Plan::new(&state, &cfg);
        let mut bridges = Bridges::new(INTEGRATION_BRIDGE);
        NodeIntent::new(&state, &plan, &cfg, &mut bridges)
    }

    #[test]
    fn bridges_and_patch_ports_of_the_provider_networks_here() {
        let intent = intent_of("node1");
        // `away` excludes node1.
        assert_eq!(
            intent.bridges,
            vec![
                BridgeIntent {
                    name: "br-int".into(),
                    id: 0,
                    role: BridgeRole::Integration,
                },
                BridgeIntent {
                    name: "br-phys".into(),
                    id: 1,
                    role: BridgeRole::Provider {
                        network: "phys".into(),
                        interface: "eth1".into(),
                    },
                },
            ]
        );
        // `phys` is the second network by name: its default patch ofport says so.
        assert_eq!(
            intent.patch_ports,
            vec![
                PatchPort {
                    provider_network: "phys".into(),
                    bridge: "br-int".into(),
                    name: "patch-int-phys".into(),
                    peer: "patch-phys-int".into(),
                    ofport: FIRST_PATCH_OFPORT + 1,
                },
                PatchPort {
                    provider_network: "phys".into(),
                    bridge: "br-phys".into(),
                    name: "patch-phys-int".into(),
                    peer: "patch-int-phys".into(),
                    ofport: PROVIDER_PATCH_OFPORT,
                },
            ]
        );
        let providers: Vec<_> = intent
            .provider_bridges()
            .map(|(pn, b)| (pn, b.id))
            .collect();
        assert_eq!(providers, vec![("phys", 1)]);
        // node2 takes its custom interface, and has both networks.
        let intent = intent_of("node2");
        let interfaces: Vec<_> = intent
            .bridges
            .iter()
            .filter_map(|b| match &b.role {
                BridgeRole::Provider { interface, .. } => Some(interface.as_str()),
                BridgeRole::Integration => None,
            })
            .collect();
        assert_eq!(interfaces, vec!["eth2", "eth9"]);
        assert_eq!(intent.patch_ports.len(), 4);
    }

    #[test]
    fn node_port_routes_to_the_default_vpc() {
        let intent = intent_of("node1");
        assert_eq!(
            intent.node_port,
            Some(NodePortIntent {
                name: "kovs0".into(),
                mac: [0x0e, 0, 0, 0, 0, 1],
                ip: Ipv4Addr::new(100, 64, 0, 2),
                prefix_len: 16,
                gateway: Ipv4Addr::new(100, 64, 0, 1),
                // Not join, not red (another VPC), not the plain underlay subnet (unrouted).
                routes: vec![
                    (Ipv4Addr::new(10, 16, 0, 0), 16),
                    (Ipv4Addr::new(10, 20, 0, 0), 16),
                ],
            })
        );
        // No join address: no node port configuration.
        assert_eq!(intent_of("node2").node_port, None);
        // A node the state does not know: br-int alone.
        let unknown = intent_of("node9");
        assert_eq!(unknown.bridges.len(), 1);
        assert!(unknown.patch_ports.is_empty() && unknown.node_port.is_none());
    }

    #[test]
    fn provider_bridge_ids_are_the_ones_the_flows_carry() {
        let loaded = load_yaml_str(STATE, "test");
        let compiler =
            crate::Compiler::new(NodeConfig::new("node1", TunnelType::Geneve), loaded.objects);
        let intent = compiler.intent();
        for b in &intent.bridges {
            assert!(
                compiler.flows().iter().any(|f| f.bridge() == b.id),
                "{} has no flow with id {}",
                b.name,
                b.id
            );
        }
    }
}
