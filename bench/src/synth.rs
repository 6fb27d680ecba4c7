//! Synthetic clusters of any size, built as objects (no YAML), for benchmarks.

use pipelines::model::{
    IntOrString, Node, NodeAddress, NodeStatus, Object, ObjectMeta, ObjectSet, Pod, PodSpec,
    ProviderNetwork, ProviderNetworkSpec, StringMap, Subnet, SubnetSpec, Vlan, VlanSpec,
};

pub struct Shape {
    pub pods: usize,
    pub nodes: usize,
    pub subnets: usize,
}

fn meta(name: String, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name,
        namespace: namespace.to_string(),
        ..ObjectMeta::default()
    }
}

pub fn node_name(i: usize) -> String {
    format!("node{i}")
}

/// Subnet `i`: every 10th is underlay on VLAN (100 + i), every 10th + 5 is u2o on the same
/// provider, the rest overlay. Subnet i has CIDR 10.(i/250).(i%250)... as a /16 in 10.0.0.0/8
/// space: `10.{i}.0.0/16` for i < 250, so up to 250 subnets.
pub fn subnet_cidr(i: usize) -> (String, String) {
    (format!("10.{}.0.0/16", i + 1), format!("10.{}.0.1", i + 1))
}

pub fn pod_ip(subnet: usize, k: usize) -> String {
    format!("10.{}.{}.{}", subnet + 1, 1 + k / 250, 2 + k % 250)
}

pub fn pod_object(idx: usize, shape: &Shape) -> Pod {
    let subnet = idx % shape.subnets;
    let k = idx / shape.subnets;
    let mut m = meta(format!("pod-{idx}"), "default");
    let mut ann = StringMap::new();
    ann.insert("ovn.kubernetes.io/ip_address", pod_ip(subnet, k));
    ann.insert(
        "ovn.kubernetes.io/mac_address",
        format!(
            "00:01:{:02x}:{:02x}:{:02x}:{:02x}",
            (idx >> 24) & 0xff,
            (idx >> 16) & 0xff,
            (idx >> 8) & 0xff,
            idx & 0xff
        ),
    );
    ann.insert(
        "ovn.kubernetes.io/logical_switch",
        format!("subnet-{subnet}"),
    );
    m.annotations = ann;
    Pod {
        metadata: m,
        spec: PodSpec {
            node_name: node_name(idx % shape.nodes),
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

pub fn cluster(shape: &Shape) -> ObjectSet {
    assert!(
        shape.subnets <= 250,
        "synthetic clusters have at most 250 subnets"
    );
    let mut set = ObjectSet::new();
    for i in 0..shape.nodes {
        let mut m = meta(node_name(i), "");
        m.annotations.insert(
            "ovn.kubernetes.io/ip_address",
            format!("100.64.{}.{}", 1 + i / 250, 2 + i % 250),
        );
        m.annotations.insert(
            "ovn.kubernetes.io/mac_address",
            format!("00:00:0f:00:{:02x}:{:02x}", (i >> 8) & 0xff, i & 0xff),
        );
        set.insert(Object::Node(Node {
            metadata: m,
            status: NodeStatus {
                addresses: vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: format!("172.18.{}.{}", i / 250, 1 + i % 250),
                }],
            },
        }));
    }
    set.insert(Object::ProviderNetwork(ProviderNetwork {
        metadata: meta("phys".into(), ""),
        spec: ProviderNetworkSpec {
            default_interface: "eth1".into(),
            ..ProviderNetworkSpec::default()
        },
    }));
    for i in 0..shape.subnets {
        let (cidr, gw) = subnet_cidr(i);
        let mut spec = SubnetSpec {
            cidr_block: cidr,
            gateway: gw,
            ..SubnetSpec::default()
        };
        if i % 10 == 0 || i % 10 == 5 {
            let vlan = format!("vlan-{i}");
            set.insert(Object::Vlan(Vlan {
                metadata: meta(vlan.clone(), ""),
                spec: VlanSpec {
                    id: Some(IntOrString::Int(100 + i as i64)),
                    provider: "phys".into(),
                    ..VlanSpec::default()
                },
            }));
            spec.vlan = vlan;
            spec.u2o_interconnection = i % 10 == 5;
        }
        set.insert(Object::Subnet(Box::new(Subnet {
            metadata: meta(format!("subnet-{i}"), ""),
            spec,
            ..Subnet::default()
        })));
    }
    for idx in 0..shape.pods {
        set.insert(Object::Pod(pod_object(idx, shape)));
    }
    set
}
