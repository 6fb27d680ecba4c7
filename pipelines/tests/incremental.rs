//! Incremental compilation equals full compilation: for random sequences of object changes,
//! applying every returned delta to the starting flow set gives exactly the full compile of
//! the final state.

use pipelines::model::{load_yaml_str, validate, Change, Object, ObjectKey, ObjectKind, ObjectSet};
use pipelines::{Compiler, FlowSet, NodeConfig, TunnelType};
use proptest::prelude::*;

const BASE: &str = include_str!("../../examples/cluster.yaml");

fn base_objects() -> ObjectSet {
    let l = load_yaml_str(BASE, "cluster.yaml");
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l.objects
}

fn pod_yaml(name: &str, node: &str, subnet: &str, ip: &str, mac: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: {ip}\n    ovn.kubernetes.io/mac_address: {mac}\n    ovn.kubernetes.io/logical_switch: {subnet}\nspec:\n  nodeName: {node}\n"
    )
}

fn subnet_yaml(name: &str, cidr: &str, gw: &str, vpc: &str) -> String {
    format!("apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: {name}\nspec:\n  cidrBlock: {cidr}\n  gateway: {gw}\n  vpc: {vpc}\n")
}

fn node_yaml(name: &str, ip: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n")
}

fn one(yaml: &str) -> Object {
    let l = load_yaml_str(yaml, "gen");
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let (_, o) = l.objects.iter().next().expect("one object");
    o.clone()
}

#[derive(Debug, Clone)]
enum Op {
    AddPod {
        idx: u8,
        node: u8,
        subnet: u8,
        host: u8,
    },
    DelPod {
        idx: u8,
    },
    /// A pod whose own fields are malformed (its MAC), which the compiler keeps as an object.
    AddBadPod {
        idx: u8,
    },
    AddSubnet {
        idx: u8,
        gw_host: u8,
    },
    DelSubnet {
        idx: u8,
    },
    MoveNode {
        node: u8,
        last: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..20, 0u8..3, 0u8..4, 2u8..40).prop_map(|(idx, node, subnet, host)| Op::AddPod { idx, node, subnet, host }),
        3 => (0u8..20).prop_map(|idx| Op::DelPod { idx }),
        1 => (0u8..20).prop_map(|idx| Op::AddBadPod { idx }),
        1 => (0u8..2, 1u8..3).prop_map(|(idx, gw_host)| Op::AddSubnet { idx, gw_host }),
        1 => (0u8..2).prop_map(|idx| Op::DelSubnet { idx }),
        1 => (0u8..3, 1u8..9).prop_map(|(node, last)| Op::MoveNode { node, last }),
    ]
}

const NODES: [&str; 3] = ["node1", "node2", "node3"];
const SUBNETS: [&str; 4] = ["ovn-default", "blue", "extra0", "extra1"];

fn to_change(op: &Op) -> Change {
    match *op {
        Op::AddPod {
            idx,
            node,
            subnet,
            host,
        } => {
            let s = SUBNETS[subnet as usize];
            let ip = match s {
                "ovn-default" => format!("10.16.1.{host}"),
                "blue" => format!("10.17.0.{}", 100 + host),
                "extra0" => format!("10.30.0.{host}"),
                _ => format!("10.31.0.{host}"),
            };
            let mac = format!("00:00:00:f0:{:02x}:{:02x}", subnet, host);
            Change::Apply(one(&pod_yaml(
                &format!("gen-{idx}"),
                NODES[node as usize],
                s,
                &ip,
                &mac,
            )))
        }
        Op::DelPod { idx } => Change::Delete(ObjectKey::pod("default", format!("gen-{idx}"))),
        Op::AddBadPod { idx } => Change::Apply(one(&pod_yaml(
            &format!("gen-{idx}"),
            "node1",
            "extra0",
            "10.30.0.9",
            "not-a-mac",
        ))),
        Op::AddSubnet { idx, gw_host } => {
            let cidr = format!("10.{}.0.0/24", 30 + idx);
            let gw = format!("10.{}.0.{gw_host}", 30 + idx);
            Change::Apply(one(&subnet_yaml(
                SUBNETS[2 + idx as usize],
                &cidr,
                &gw,
                "ovn-cluster",
            )))
        }
        Op::DelSubnet { idx } => Change::Delete(ObjectKey::cluster(
            ObjectKind::Subnet,
            SUBNETS[2 + idx as usize],
        )),
        Op::MoveNode { node, last } => Change::Apply(one(&node_yaml(
            NODES[node as usize],
            &format!("172.18.1.{last}"),
        ))),
    }
}

fn full(cfg: &NodeConfig, objects: &ObjectSet) -> FlowSet {
    Compiler::new(cfg.clone(), objects.clone()).flows().clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deltas_reach_the_full_compile(ops in prop::collection::vec(op(), 1..25), tunnel in 0u8..3, batch in 1usize..4) {
        let tunnel = [TunnelType::Geneve, TunnelType::Vxlan, TunnelType::Stt][tunnel as usize];
        let mut cfg = NodeConfig::new("node1", tunnel);
        cfg.ports.pods.insert("pod-a.default".into(), 10);
        for i in 0..20 {
            cfg.ports.pods.insert(format!("gen-{i}.default"), 100 + i);
        }
        let mut objects = base_objects();
        let mut compiler = Compiler::new(cfg.clone(), objects.clone());
        // Fed by reloads: the whole object set each time, diffed by the compiler.
        let mut reloaded = Compiler::new(cfg.clone(), objects.clone());
        let mut mirror = compiler.flows().clone();
        for chunk in ops.chunks(batch) {
            let changes: Vec<Change> = chunk.iter().map(to_change).collect();
            for c in &changes {
                objects.apply(c.clone());
            }
            let delta = compiler.apply(changes);
            mirror.apply(&delta);
            let expected = full(&cfg, &objects);
            let diff = mirror.diff(&expected);
            prop_assert!(diff.is_empty(), "after {:?}: mirror differs from full compile: {:?}", chunk, diff);
            prop_assert_eq!(compiler.flows().len(), expected.len());
            prop_assert_eq!(compiler.flow_counts().total(), expected.len());
            // Without most pod objects, the compiler's state is still the validation of all.
            let validated = validate(&objects);
            prop_assert_eq!(compiler.state(), &validated);
            prop_assert!(compiler.changes_from(&objects).is_empty(), "{:?}", compiler.changes_from(&objects));
            let changes = reloaded.changes_from(&objects);
            reloaded.apply(changes);
            prop_assert_eq!(reloaded.state(), &validated);
            prop_assert!(reloaded.flows().diff(&expected).is_empty());
        }
    }
}

#[test]
fn adding_one_pod_touches_only_its_flows() {
    let mut cfg = NodeConfig::new("node1", TunnelType::Geneve);
    cfg.ports.pods.insert("gen-1.default".into(), 50);
    let mut compiler = Compiler::new(cfg, base_objects());
    let before = compiler.flows().len();
    let delta = compiler.apply(vec![to_change(&Op::AddPod {
        idx: 1,
        node: 0,
        subnet: 0,
        host: 5,
    })]);
    // A local overlay pod: classifier (ip, arp, drop), L2 delivery, ARP answer, route.
    assert_eq!(delta.add.len(), 6, "{delta:?}");
    assert!(
        delta.modify.is_empty() && delta.delete.is_empty(),
        "{delta:?}"
    );
    assert_eq!(compiler.flows().len(), before + 6);
    let delta = compiler.apply(vec![to_change(&Op::DelPod { idx: 1 })]);
    assert_eq!(delta.delete.len(), 6);
    assert_eq!(compiler.flows().len(), before);
    // On another node the same pod is a remote one: ARP answer, route, tunnel entry.
    let mut cfg2 = NodeConfig::new("node2", TunnelType::Geneve);
    cfg2.ports.pods.clear();
    let mut c2 = Compiler::new(cfg2, base_objects());
    let d2 = c2.apply(vec![to_change(&Op::AddPod {
        idx: 1,
        node: 0,
        subnet: 0,
        host: 5,
    })]);
    assert_eq!(d2.add.len(), 3, "{d2:?}");
}

#[test]
fn subnet_keys_do_not_move_when_other_subnets_come_and_go() {
    let cfg = NodeConfig::new("node1", TunnelType::Vxlan);
    let mut compiler = Compiler::new(cfg, base_objects());
    let keys_before = compiler.plan().subnet_keys.clone();
    compiler.apply(vec![to_change(&Op::AddSubnet { idx: 0, gw_host: 1 })]);
    compiler.apply(vec![to_change(&Op::DelSubnet { idx: 0 })]);
    compiler.apply(vec![to_change(&Op::AddSubnet { idx: 1, gw_host: 1 })]);
    for (name, key) in &keys_before {
        assert_eq!(compiler.plan().subnet_keys.get(name), Some(key), "{name}");
        assert!(
            *key > 0 && *key < (1 << 24),
            "{name} key {key} fits VXLAN's 24 bits"
        );
    }
}

#[test]
fn a_port_event_recompiles_only_its_local_pod() {
    // Pod names may hold dots; the iface-id is `<name>.<namespace>`.
    let mut objects = base_objects();
    let yaml = pod_yaml(
        "web.v1",
        "node1",
        "ovn-default",
        "10.16.0.77",
        "00:00:00:77:00:01",
    ) + "---\n"
        + &pod_yaml(
            "far",
            "node2",
            "ovn-default",
            "10.16.0.78",
            "00:00:00:77:00:02",
        );
    for o in load_yaml_str(&yaml, "gen")
        .objects
        .into_iter()
        .map(|(_, o)| o)
    {
        objects.apply(Change::Apply(o));
    }
    let cfg = NodeConfig::new("node1", TunnelType::Geneve);
    let mut compiler = Compiler::new(cfg.clone(), objects.clone());
    let mut mirror = compiler.flows();
    let mut plugged = cfg.clone();
    plugged.ports.pods.insert("web.v1.default".into(), 60);

    let delta = compiler.set_port("web.v1.default", Some(60));
    assert!(!delta.add.is_empty(), "{delta:?}");
    mirror.apply(&delta);
    assert!(mirror.diff(&full(&plugged, &objects)).is_empty());
    // Renumbered: the in_port matches are replaced, the output actions modified.
    let delta = compiler.set_port("web.v1.default", Some(61));
    assert_eq!((delta.add.len(), delta.delete.len()), (3, 3), "{delta:?}");
    assert_eq!(delta.modify.len(), 1, "{delta:?}");
    mirror.apply(&delta);
    plugged.ports.pods.insert("web.v1.default".into(), 61);
    assert!(mirror.diff(&full(&plugged, &objects)).is_empty());
    // A remote pod's or an unknown port on this node adds nothing.
    assert!(compiler.set_port("far.default", Some(62)).is_empty());
    assert!(compiler.set_port("web.v1.other", Some(63)).is_empty());
    assert!(compiler.set_port("no-dots", Some(64)).is_empty());
    // Unplugged: its flows go.
    let delta = compiler.set_port("web.v1.default", None);
    mirror.apply(&delta);
    assert!(mirror.diff(&full(&cfg, &objects)).is_empty());
}
