//! What a pod's CNI ADD configures, from the cluster state the compiler validated: its address,
//! MAC, gateway and MTU (Kube-OVN's daemon reads the same from the pod's annotations and its
//! subnet, behaviour doc §6.5 and §3.3). Pure: the server asks again after each state change
//! until the pod is [`Lookup::Ready`] or its bound runs out.

use std::net::Ipv4Addr;

use pipelines::model::{ClusterState, MacAddr, ObjectKey, PodName, SubnetMode};
use pipelines::TunnelType;

/// The network of one pod, as its container interface gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: MacAddr,
    /// The subnet's CIDR, as Kube-OVN's response carries it.
    pub cidr: ipnet::Ipv4Net,
    /// The default route's next hop: the subnet's gateway, or its u2o address.
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub subnet: String,
    /// For underlay subnets, the provider network the pod's traffic leaves on.
    pub provider_network: Option<String>,
}

/// Where a pod stands for its CNI ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Ready(PodNetwork),
    /// Not there yet (no object, or no address annotations): worth waiting for.
    Missing(String),
    /// There, but kovs cannot use it: the reason names the field. It may still be fixed while
    /// the ADD waits.
    Rejected(String),
}

/// What the MTU of a pod depends on besides its subnet.
#[derive(Clone, Copy)]
pub struct MtuInputs<'a> {
    pub tunnel: TunnelType,
    /// The MTU of the interface the tunnel leaves on.
    pub underlay_mtu: u32,
    /// A provider network's MTU on this node (its NIC's), when it is set up here.
    pub provider_mtu: &'a dyn Fn(&str) -> Option<u32>,
}

/// The pod `namespace/name` for an ADD on `node`.
pub fn lookup(
    state: &ClusterState,
    node: &str,
    namespace: &str,
    name: &str,
    mtu: MtuInputs<'_>,
) -> Lookup {
    let id = PodName::new(namespace, name);
    let Some(pod) = state.pods.get(&id) else {
        let key = ObjectKey::pod(namespace, name);
        let reasons: Vec<String> = state
            .errors_for(&key)
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        if !reasons.is_empty() {
            return Lookup::Rejected(format!(
                "pod {namespace}/{name} is rejected: {}",
                reasons.join("; ")
            ));
        }
        return Lookup::Missing(format!(
            "pod {namespace}/{name} has no address: it is not in the state, or has no \
             ovn.kubernetes.io/ip_address, mac_address and logical_switch annotations yet"
        ));
    };
    if *pod.node != *node {
        return Lookup::Rejected(format!(
            "pod {namespace}/{name} is on node {}, not on this node ({node})",
            &*pod.node
        ));
    }
    let Some(subnet) = state.subnets.get(&*pod.subnet) else {
        // A valid pod's subnet is valid; this would be a compiler bug.
        return Lookup::Rejected(format!(
            "pod {namespace}/{name}: subnet {} is unknown",
            &*pod.subnet
        ));
    };
    let provider_network = subnet.vlan.as_ref().map(|v| v.provider_network.clone());
    let gateway = match &subnet.mode {
        SubnetMode::U2o(u) => u.ip,
        _ => subnet.gateway,
    };
    let mtu = match (subnet.mtu, &subnet.mode, &provider_network) {
        (Some(m), _, _) => m,
        // Pure underlay: the provider network's own MTU; none of the tunnel's overhead.
        (None, SubnetMode::Underlay, Some(pn)) => match (mtu.provider_mtu)(pn) {
            Some(m) => m,
            None => {
                return Lookup::Missing(format!(
                    "pod {namespace}/{name}: provider network {pn} of subnet {} is not ready \
                     on this node (no MTU)",
                    subnet.name
                ))
            }
        },
        _ => mtu.underlay_mtu.saturating_sub(mtu.tunnel.overhead()),
    };
    Lookup::Ready(PodNetwork {
        ip: pod.ip,
        prefix_len: subnet.cidr.prefix_len(),
        mac: pod.mac,
        cidr: subnet.cidr,
        gateway,
        mtu,
        subnet: subnet.name.clone(),
        provider_network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::model::{load_yaml_str, validate};

    const STATE: &str = "examples/cluster.yaml";

    fn state() -> ClusterState {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster.yaml");
        let text = std::fs::read_to_string(path).expect(STATE);
        let loaded = load_yaml_str(&text, STATE);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        validate(&loaded.objects)
    }

    fn inputs(provider_mtu: &dyn Fn(&str) -> Option<u32>) -> MtuInputs<'_> {
        MtuInputs {
            tunnel: TunnelType::Geneve,
            underlay_mtu: 1500,
            provider_mtu,
        }
    }

    #[test]
    fn an_overlay_pod_gets_its_address_gateway_and_the_tunnel_mtu() {
        let s = state();
        let none = |_: &str| None;
        let Lookup::Ready(n) = lookup(&s, "node1", "default", "pod-a", inputs(&none)) else {
            panic!("pod-a should be ready");
        };
        assert_eq!(n.ip, "10.16.0.10".parse::<Ipv4Addr>().unwrap());
        assert_eq!(n.prefix_len, 16);
        assert_eq!(n.gateway, "10.16.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(n.mtu, 1400, "1500 less Geneve's 100");
        assert_eq!(n.subnet, "ovn-default");
        assert_eq!(n.provider_network, None);
        let vxlan = MtuInputs {
            tunnel: TunnelType::Vxlan,
            ..inputs(&none)
        };
        let Lookup::Ready(n) = lookup(&s, "node1", "default", "pod-a", vxlan) else {
            panic!()
        };
        assert_eq!(n.mtu, 1450);
    }

    #[test]
    fn an_underlay_pod_takes_the_provider_networks_mtu_and_waits_for_it() {
        let s = state();
        let none = |_: &str| None;
        assert!(matches!(
            lookup(&s, "node1", "default", "pod-u1", inputs(&none)),
            Lookup::Missing(m) if m.contains("provider network phys")
        ));
        let phys = |pn: &str| (pn == "phys").then_some(9000);
        let Lookup::Ready(n) = lookup(&s, "node1", "default", "pod-u1", inputs(&phys)) else {
            panic!("pod-u1 should be ready");
        };
        assert_eq!(n.mtu, 9000);
        assert_eq!(n.provider_network.as_deref(), Some("phys"));
    }

    #[test]
    fn a_u2o_pods_default_route_is_the_u2o_address() {
        let s = state();
        let none = |_: &str| None;
        let Lookup::Ready(n) = lookup(&s, "node1", "default", "pod-o1", inputs(&none)) else {
            panic!("pod-o1 should be ready");
        };
        assert_eq!(n.gateway, "192.168.50.254".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn a_missing_a_foreign_and_a_rejected_pod_each_say_why() {
        let s = state();
        let none = |_: &str| None;
        assert!(matches!(
            lookup(&s, "node1", "default", "nope", inputs(&none)),
            Lookup::Missing(m) if m.contains("default/nope") && m.contains("ip_address")
        ));
        assert!(matches!(
            lookup(&s, "node1", "default", "pod-b", inputs(&none)),
            Lookup::Rejected(m) if m.contains("on node node2")
        ));
        let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: 10.16.0.500\n    ovn.kubernetes.io/mac_address: 00:00:00:00:00:01\n    ovn.kubernetes.io/logical_switch: ovn-default\nspec:\n  nodeName: node1\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster.yaml");
        let mut text = std::fs::read_to_string(path).unwrap();
        text.push_str("\n---\n");
        text.push_str(bad);
        let s = validate(&load_yaml_str(&text, STATE).objects);
        assert!(matches!(
            lookup(&s, "node1", "default", "bad", inputs(&none)),
            Lookup::Rejected(m) if m.contains("default/bad") && m.contains("ip_address")
        ));
    }
}
