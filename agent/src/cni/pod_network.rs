//! What a pod's CNI ADD configures, from the cluster state the compiler validated: its address,
//! MAC, gateway and MTU (Kube-OVN's daemon reads the same from the pod's annotations and its
//! subnet, behaviour doc §6.5 and §3.3). Pure: the server asks again after each state change
//! until the pod is [`Lookup::Ready`] or its bound runs out.

use std::net::{IpAddr, Ipv4Addr};

use pipelines::model::{
    ClusterState, MacAddr, ObjectKey, PodName, SubnetMode, ANNOTATION_POD_NIC_TYPE,
    ANNOTATION_ROUTES,
};
use pipelines::TunnelType;

use crate::sys::container::{Cidr, PodRoute};

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
    /// The routes of its interface: the default route via `gateway`, unless the `routes`
    /// annotation gives one (Kube-OVN: an empty `dst`), then the annotation's.
    pub routes: Vec<PodRoute>,
    pub nic_type: NicType,
}

/// How a pod's NIC is made: `ovn.kubernetes.io/pod_nic_type`, else the agent's
/// `--pod-nic-type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NicType {
    /// A veth pair, the host end on br-int (Kube-OVN's default).
    #[default]
    VethPair,
    /// An OVS internal port on br-int, moved into the pod.
    InternalPort,
}

impl NicType {
    pub const VETH_PAIR: &'static str = "veth-pair";
    pub const INTERNAL_PORT: &'static str = "internal-port";

    /// Kube-OVN's names; its `offload-port` and `dpdk-port` need hardware kovs does not drive.
    pub fn parse(s: &str) -> Result<NicType, String> {
        match s.trim() {
            Self::VETH_PAIR => Ok(NicType::VethPair),
            Self::INTERNAL_PORT => Ok(NicType::InternalPort),
            other => Err(format!(
                "{other:?} is not a NIC type kovs makes ({} or {})",
                Self::VETH_PAIR,
                Self::INTERNAL_PORT
            )),
        }
    }
}

/// One entry of the `routes` annotation.
#[derive(serde::Deserialize)]
struct RouteAnnotation {
    #[serde(default)]
    dst: String,
    #[serde(default)]
    gw: String,
}

/// The `routes` annotation (`[{"dst":"CIDR","gw":"IP"}]`; an empty `dst` is the default
/// route) as routes of an IPv4 pod.
pub fn parse_routes(text: &str) -> Result<Vec<PodRoute>, String> {
    let entries: Vec<RouteAnnotation> = serde_json::from_str(text)
        .map_err(|e| format!("is not a JSON list of {{dst, gw}}: {e}"))?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let gateway = match e.gw.trim() {
                "" => None,
                g => Some(
                    g.parse::<Ipv4Addr>()
                        .map_err(|_| format!("entry {i}: gw {g:?} is not an IPv4 address"))?,
                ),
            };
            let dst = match e.dst.trim() {
                "" => {
                    let g = gateway.ok_or_else(|| {
                        format!("entry {i}: a default route (empty dst) needs a gw")
                    })?;
                    return Ok(PodRoute::default_via(IpAddr::V4(g)));
                }
                d => d
                    .parse::<ipnet::Ipv4Net>()
                    .map_err(|_| format!("entry {i}: dst {d:?} is not an IPv4 CIDR"))?,
            };
            Ok(PodRoute {
                dst: Cidr::new(IpAddr::V4(dst.network()), dst.prefix_len()),
                gateway: gateway.map(IpAddr::V4),
            })
        })
        .collect()
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

/// The pod `namespace/name` for an ADD on `node`; `default_nic` when the pod does not say.
pub fn lookup(
    state: &ClusterState,
    node: &str,
    namespace: &str,
    name: &str,
    mtu: MtuInputs<'_>,
    default_nic: NicType,
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
    let cni = pod.cni.as_deref();
    let nic_type = match cni.and_then(|c| c.nic_type.as_deref()) {
        None => default_nic,
        Some(t) => match NicType::parse(t) {
            Ok(t) => t,
            Err(why) => {
                return Lookup::Rejected(format!(
                    "pod {namespace}/{name}: annotation {ANNOTATION_POD_NIC_TYPE}: {why}"
                ))
            }
        },
    };
    let mut routes = match cni.and_then(|c| c.routes.as_deref()) {
        None => Vec::new(),
        Some(text) => match parse_routes(text) {
            Ok(r) => r,
            Err(why) => {
                return Lookup::Rejected(format!(
                    "pod {namespace}/{name}: annotation {ANNOTATION_ROUTES}: {why}"
                ))
            }
        },
    };
    if !routes.iter().any(PodRoute::is_default) {
        routes.insert(0, PodRoute::default_via(IpAddr::V4(gateway)));
    }
    Lookup::Ready(PodNetwork {
        ip: pod.ip,
        prefix_len: subnet.cidr.prefix_len(),
        mac: pod.mac,
        cidr: subnet.cidr,
        gateway,
        mtu,
        subnet: subnet.name.clone(),
        provider_network,
        routes,
        nic_type,
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
        let Lookup::Ready(n) = lookup(
            &s,
            "node1",
            "default",
            "pod-a",
            inputs(&none),
            NicType::VethPair,
        ) else {
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
        let Lookup::Ready(n) = lookup(&s, "node1", "default", "pod-a", vxlan, NicType::VethPair)
        else {
            panic!()
        };
        assert_eq!(n.mtu, 1450);
    }

    #[test]
    fn an_underlay_pod_takes_the_provider_networks_mtu_and_waits_for_it() {
        let s = state();
        let none = |_: &str| None;
        assert!(matches!(
            lookup(&s, "node1", "default", "pod-u1", inputs(&none), NicType::VethPair),
            Lookup::Missing(m) if m.contains("provider network phys")
        ));
        let phys = |pn: &str| (pn == "phys").then_some(9000);
        let Lookup::Ready(n) = lookup(
            &s,
            "node1",
            "default",
            "pod-u1",
            inputs(&phys),
            NicType::VethPair,
        ) else {
            panic!("pod-u1 should be ready");
        };
        assert_eq!(n.mtu, 9000);
        assert_eq!(n.provider_network.as_deref(), Some("phys"));
    }

    #[test]
    fn a_u2o_pods_default_route_is_the_u2o_address() {
        let s = state();
        let none = |_: &str| None;
        let Lookup::Ready(n) = lookup(
            &s,
            "node1",
            "default",
            "pod-o1",
            inputs(&none),
            NicType::VethPair,
        ) else {
            panic!("pod-o1 should be ready");
        };
        assert_eq!(n.gateway, "192.168.50.254".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn a_missing_a_foreign_and_a_rejected_pod_each_say_why() {
        let s = state();
        let none = |_: &str| None;
        assert!(matches!(
            lookup(&s, "node1", "default", "nope", inputs(&none), NicType::VethPair),
            Lookup::Missing(m) if m.contains("default/nope") && m.contains("ip_address")
        ));
        assert!(matches!(
            lookup(&s, "node1", "default", "pod-b", inputs(&none), NicType::VethPair),
            Lookup::Rejected(m) if m.contains("on node node2")
        ));
        let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: 10.16.0.500\n    ovn.kubernetes.io/mac_address: 00:00:00:00:00:01\n    ovn.kubernetes.io/logical_switch: ovn-default\nspec:\n  nodeName: node1\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster.yaml");
        let mut text = std::fs::read_to_string(path).unwrap();
        text.push_str("\n---\n");
        text.push_str(bad);
        let s = validate(&load_yaml_str(&text, STATE).objects);
        assert!(matches!(
            lookup(&s, "node1", "default", "bad", inputs(&none), NicType::VethPair),
            Lookup::Rejected(m) if m.contains("default/bad") && m.contains("ip_address")
        ));
    }

    /// examples/cluster.yaml with pod-a's annotations extended by `extra` (YAML lines).
    fn state_with_pod_a(extra: &str) -> ClusterState {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let pod = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-z\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: 10.16.0.99\n    ovn.kubernetes.io/mac_address: 00:00:00:00:99:01\n    ovn.kubernetes.io/logical_switch: ovn-default\n{extra}spec:\n  nodeName: node1\n");
        let loaded = load_yaml_str(&format!("{text}\n---\n{pod}"), STATE);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        validate(&loaded.objects)
    }

    #[test]
    fn nic_type_from_the_annotation_else_the_agents_default() {
        let none = |_: &str| None;
        let s = state_with_pod_a("");
        let nic = |s: &ClusterState, default| match lookup(
            s,
            "node1",
            "default",
            "pod-z",
            inputs(&none),
            default,
        ) {
            Lookup::Ready(n) => Ok(n.nic_type),
            Lookup::Missing(m) | Lookup::Rejected(m) => Err(m),
        };
        assert_eq!(nic(&s, NicType::VethPair), Ok(NicType::VethPair));
        assert_eq!(nic(&s, NicType::InternalPort), Ok(NicType::InternalPort));
        let s = state_with_pod_a("    ovn.kubernetes.io/pod_nic_type: internal-port\n");
        assert_eq!(nic(&s, NicType::VethPair), Ok(NicType::InternalPort));
        let s = state_with_pod_a("    ovn.kubernetes.io/pod_nic_type: dpdk-port\n");
        let err = nic(&s, NicType::VethPair).unwrap_err();
        assert!(
            err.contains("default/pod-z")
                && err.contains("pod_nic_type")
                && err.contains("dpdk-port"),
            "{err}"
        );
    }

    #[test]
    fn routes_annotation_adds_routes_and_may_replace_the_default() {
        let none = |_: &str| None;
        let routes = |s: &ClusterState| match lookup(
            s,
            "node1",
            "default",
            "pod-z",
            inputs(&none),
            NicType::VethPair,
        ) {
            Lookup::Ready(n) => Ok(n.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>()),
            Lookup::Missing(m) | Lookup::Rejected(m) => Err(m),
        };
        assert_eq!(
            routes(&state_with_pod_a("")).unwrap(),
            ["default via 10.16.0.1"]
        );
        let s = state_with_pod_a(
            "    ovn.kubernetes.io/routes: '[{\"dst\":\"192.168.0.0/16\",\"gw\":\"10.16.0.254\"},{\"dst\":\"172.16.1.0/24\"}]'\n",
        );
        assert_eq!(
            routes(&s).unwrap(),
            [
                "default via 10.16.0.1",
                "192.168.0.0/16 via 10.16.0.254",
                "172.16.1.0/24"
            ]
        );
        let s = state_with_pod_a("    ovn.kubernetes.io/routes: '[{\"gw\":\"10.16.0.253\"}]'\n");
        assert_eq!(routes(&s).unwrap(), ["default via 10.16.0.253"]);
        for (bad, says) in [
            ("not json", "JSON"),
            (
                "[{\"dst\":\"300.0.0.0/8\",\"gw\":\"10.16.0.1\"}]",
                "dst \"300.0.0.0/8\"",
            ),
            ("[{\"dst\":\"10.0.0.0/8\",\"gw\":\"fd00::1\"}]", "IPv4"),
            ("[{\"dst\":\"\"}]", "needs a gw"),
        ] {
            let s = state_with_pod_a(&format!("    ovn.kubernetes.io/routes: '{bad}'\n"));
            let err = routes(&s).unwrap_err();
            assert!(
                err.contains("default/pod-z")
                    && err.contains("ovn.kubernetes.io/routes")
                    && err.contains(says),
                "{bad}: {err}"
            );
        }
    }
}
