//! What an incremental pod change costs, against a full validation, with 100k pods.
//!
//! `cargo run --release -p pipelines --example pod_churn [pods]`
//!
//! Prints the time of `validate` and the mean time of `ClusterState::upsert_pod` (new pods,
//! moved pods) and `delete_pod`. No assertions: timings belong here, not in tests.

use std::net::Ipv4Addr;
use std::time::Instant;

use pipelines::model::*;

const SUBNETS: u32 = 200;

fn pod(p: u32, node: u32) -> Pod {
    let s = p % SUBNETS;
    let host = p / SUBNETS + 2;
    let mut pod = Pod::default();
    pod.metadata.name = format!("pod{p}");
    pod.metadata.namespace = format!("ns{}", p % 50);
    pod.spec.node_name = format!("node{node}");
    let ann = &mut pod.metadata.annotations;
    ann.insert(ANNOTATION_LOGICAL_SWITCH, format!("subnet{s}"));
    ann.insert(
        ANNOTATION_IP_ADDRESS,
        format!("10.{}.{}.{}", s + 1, host >> 8, host & 0xff),
    );
    ann.insert(
        ANNOTATION_MAC_ADDRESS,
        format_mac(&[0, 0, 1, (p >> 16) as u8, (p >> 8) as u8, p as u8]),
    );
    pod
}

fn main() {
    let pods: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut set = ObjectSet::new();
    for n in 0..100u32 {
        let mut node = Node::default();
        node.metadata.name = format!("node{n}");
        node.status.addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: Ipv4Addr::from(0xac12_0000 + n + 1).to_string(),
        });
        set.insert(node);
    }
    for s in 0..SUBNETS {
        let mut subnet = Subnet::default();
        subnet.metadata.name = format!("subnet{s}");
        subnet.spec.cidr_block = format!("10.{}.0.0/16", s + 1);
        set.insert(subnet);
    }
    for p in 0..pods {
        set.insert(pod(p, p % 100));
    }

    let start = Instant::now();
    let mut state = validate(&set);
    println!(
        "validate: {} pods in {:?}",
        state.pods.len(),
        start.elapsed()
    );

    const OPS: u32 = 10_000;
    // Objects are built outside the timed loops: the caller already has them.
    let added: Vec<Pod> = (pods..pods + OPS).map(|p| pod(p, p % 100)).collect();
    let moved: Vec<Pod> = (0..OPS).map(|p| pod(p * 7 % pods, (p + 1) % 100)).collect();
    let deleted: Vec<ObjectKey> = (0..OPS).map(|p| pod(p * 11 % pods, 0).key()).collect();

    let mut fallbacks = 0;
    for (what, run) in [
        ("upsert (new pod)", 0),
        ("upsert (moved pod)", 1),
        ("delete", 2),
    ] {
        let start = Instant::now();
        for i in 0..OPS as usize {
            let delta = match run {
                0 => state.upsert_pod(&added[i]),
                1 => state.upsert_pod(&moved[i]),
                _ => state.delete_pod(&deleted[i]),
            };
            fallbacks += usize::from(delta.is_none());
        }
        println!("{what}: {:?} per change", start.elapsed() / OPS);
    }
    println!(
        "{fallbacks} fallbacks; {} pods, {} errors",
        state.pods.len(),
        state.errors.len()
    );
}
