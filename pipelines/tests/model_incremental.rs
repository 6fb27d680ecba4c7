//! Incremental pod changes (`ClusterState::upsert_pod`/`delete_pod`) against full validation.

use std::collections::BTreeMap;

use pipelines::model::*;
use proptest::prelude::*;

const NAMESPACES: &[&str] = &["", "default", "prod"];
const POD_NAMES: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h"];
const NODE_REFS: &[&str] = &["n0", "n1", "n2", "n9"];
const SUBNET_REFS: &[&str] = &["s0", "s1", "s2", "s3", "nope"];
/// Mostly in s0 (10.0.0.0/28) and s1 (10.0.0.16/28 or 10.0.1.0/28); a few reserved or bad.
const IPS: &[&str] = &[
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.14",
    "10.0.0.18",
    "10.0.0.19",
    "10.0.1.2",
    "10.0.1.3",
    "10.0.0.1",
    "10.0.0.15",
    "10.0.1.14",
    "10.0.0.5,fd00::5",
    "fd00::6",
    "10.0.0.x",
];
const MACS: &[&str] = &[
    "00:00:00:00:00:01",
    "00:00:00:00:00:02",
    "00:00:00:00:00:03",
    "00:00:00:00:00:04",
    "00:00:00:00:00:05",
    "01:00:5e:00:00:01",
    "00:00:00:00:0b",
];

fn node(name: &str, ip: Option<u8>) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.into();
    if let Some(last) = ip {
        n.status.addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: format!("172.18.0.{last}"),
        });
    }
    n
}

fn subnet(name: &str, shape: u8) -> Subnet {
    let mut s = Subnet::default();
    s.metadata.name = name.into();
    s.metadata.creation_timestamp = Some(format!("2024-05-01T12:00:0{shape}Z"));
    let spec = &mut s.spec;
    match shape {
        // Overlay /28s; the /27 overlaps both and is rejected when it comes later.
        0 => spec.cidr_block = "10.0.0.0/28".into(),
        1 => spec.cidr_block = "10.0.0.16/28".into(),
        2 => spec.cidr_block = "10.0.0.0/27".into(),
        // Another VPC, so it may overlap.
        3 => {
            spec.cidr_block = "10.0.0.0/28".into();
            spec.vpc = "red".into();
        }
        // u2o underlay: the u2o IP is 10.0.1.14, its MAC derived from it.
        4 => {
            spec.cidr_block = "10.0.1.0/28".into();
            spec.vlan = "v0".into();
            spec.u2o_interconnection = true;
        }
        // IPAM-only.
        5 => {
            spec.cidr_block = "10.0.1.0/28".into();
            spec.provider = "macvlan.default".into();
        }
        // Unknown VPC: rejected.
        _ => {
            spec.cidr_block = "10.0.2.0/28".into();
            spec.vpc = "blue".into();
        }
    }
    s
}

fn base_objects(nodes: &[Option<u8>], subnets: &[u8]) -> ObjectSet {
    let mut set = ObjectSet::new();
    for (i, ip) in nodes.iter().enumerate() {
        set.insert(node(&format!("n{i}"), *ip));
    }
    for (i, shape) in subnets.iter().enumerate() {
        set.insert(subnet(&format!("s{i}"), *shape));
    }
    let mut pn = ProviderNetwork::default();
    pn.metadata.name = "phys".into();
    pn.spec.default_interface = "eth1".into();
    set.insert(pn);
    let mut vlan = Vlan::default();
    vlan.metadata.name = "v0".into();
    vlan.spec.provider = "phys".into();
    set.insert(vlan);
    let mut vpc = Vpc::default();
    vpc.metadata.name = "red".into();
    set.insert(vpc);
    set
}

/// A pod as the strategy draws it.
#[derive(Debug, Clone)]
struct PodSpecDraw {
    namespace: &'static str,
    name: &'static str,
    node: &'static str,
    subnet: Option<&'static str>,
    ip: Option<&'static str>,
    mac: Option<&'static str>,
    /// 0: running; 1: hostNetwork; 2: Succeeded.
    state: u8,
}

impl PodSpecDraw {
    fn build(&self) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = self.namespace.into();
        p.metadata.name = self.name.into();
        p.spec.node_name = self.node.into();
        let ann = &mut p.metadata.annotations;
        for (k, v) in [
            (ANNOTATION_LOGICAL_SWITCH, self.subnet),
            (ANNOTATION_IP_ADDRESS, self.ip),
            (ANNOTATION_MAC_ADDRESS, self.mac),
        ] {
            if let Some(v) = v {
                ann.insert(k, v);
            }
        }
        match self.state {
            1 => p.spec.host_network = true,
            2 => p.status.phase = "Succeeded".into(),
            _ => {}
        }
        p
    }
}

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(pool)
}

/// Mostly present, sometimes missing.
fn maybe(pool: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![20 => pick(pool).prop_map(Some), 1 => Just(None)]
}

/// A subnet reference and an IP: mostly an address of that subnet's natural shape (so most
/// pods pass their own rules and clash often), sometimes anything.
fn subnet_and_ip() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>)> {
    prop_oneof![
        5 => pick(&IPS[..4]).prop_map(|ip| (Some("s0"), Some(ip))),
        2 => pick(&IPS[4..6]).prop_map(|ip| (Some("s1"), Some(ip))),
        2 => pick(&IPS[6..8]).prop_map(|ip| (Some("s2"), Some(ip))),
        2 => (maybe(SUBNET_REFS), maybe(IPS)),
    ]
}

fn pod_draw() -> impl Strategy<Value = PodSpecDraw> {
    (
        pick(NAMESPACES),
        pick(POD_NAMES),
        prop_oneof![8 => pick(&NODE_REFS[..2]), 1 => pick(NODE_REFS)],
        subnet_and_ip(),
        prop_oneof![8 => maybe(&MACS[..5]), 1 => maybe(MACS)],
        prop_oneof![12 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(
            |(namespace, name, node, (subnet, ip), mac, state)| PodSpecDraw {
                namespace,
                name,
                node,
                subnet,
                ip,
                mac,
                state,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(PodSpecDraw),
    /// Deletes `(namespace, name)` (often present).
    Delete(&'static str, &'static str),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => pod_draw().prop_map(Op::Upsert),
        1 => (pick(NAMESPACES), pick(POD_NAMES)).prop_map(|(ns, n)| Op::Delete(ns, n)),
    ]
}

#[derive(Debug, Clone)]
struct Cluster {
    /// InternalIP last octet per node; `None` = rejected node.
    nodes: Vec<Option<u8>>,
    /// Subnet shapes (see `subnet`).
    subnets: Vec<u8>,
    pods: Vec<PodSpecDraw>,
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        // Mostly distinct InternalIPs; sometimes none or a clash (a rejected node).
        proptest::collection::vec(
            prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            2..=3,
        ),
        // Mostly the natural shape of s0..s3 (two overlay /28s, u2o, IPAM-only), sometimes any.
        proptest::collection::vec(
            prop_oneof![6 => Just(None), 1 => (0u8..7).prop_map(Some)],
            2..=4,
        ),
        proptest::collection::vec(pod_draw(), 0..=30),
    )
        .prop_map(|(nodes, subnets, pods)| Cluster {
            nodes: nodes
                .into_iter()
                .enumerate()
                .map(|(i, how)| match how {
                    0 => Some(i as u8 + 1),
                    1 => None,
                    _ => Some(1),
                })
                .collect(),
            subnets: subnets
                .into_iter()
                .enumerate()
                .map(|(i, shape)| shape.unwrap_or([0, 1, 4, 5][i]))
                .collect(),
            pods,
        })
}

/// The valid-pod difference between two states, as a `PodDelta`.
fn diff(before: &BTreeMap<PodName, ValidPod>, after: &BTreeMap<PodName, ValidPod>) -> PodDelta {
    PodDelta {
        removed: before
            .iter()
            .filter(|(k, v)| after.get(k) != Some(v))
            .map(|(_, v)| v.clone())
            .collect(),
        added: after
            .iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .map(|(_, v)| v.clone())
            .collect(),
    }
}

/// Whether the pod's IP and MAC annotations are used by no other pod object (nor is the pod
/// clashing through the annotations it had).
fn unique_addresses(objects: &ObjectSet, key: &ObjectKey, pods: &[&Pod]) -> bool {
    let ann = |p: &Pod, k: &str| p.metadata.annotations.get(k).map(str::to_owned);
    objects.of_kind(ObjectKind::Pod).all(|(k, o)| {
        let Object::Pod(other) = o else { return true };
        k == key
            || pods.iter().all(|p| {
                [ANNOTATION_IP_ADDRESS, ANNOTATION_MAC_ADDRESS]
                    .iter()
                    .all(|a| ann(p, a).is_none() || ann(p, a) != ann(other, a))
            })
    })
}

/// Runs the ops, checking each incremental result against a full validation. Returns how many
/// ops fell back (`None`).
fn run(cluster: &Cluster, ops: &[Op]) -> Result<usize, TestCaseError> {
    let mut objects = base_objects(&cluster.nodes, &cluster.subnets);
    for p in &cluster.pods {
        objects.insert(p.build());
    }
    let mut state = validate(&objects);
    let mut fallbacks = 0;
    for op in ops {
        let before = state.pods.clone();
        let (result, unique) = match op {
            Op::Upsert(draw) => {
                let pod = draw.build();
                let key = pod.key();
                let old = match objects.get(&key) {
                    Some(Object::Pod(p)) => Some(p.clone()),
                    _ => None,
                };
                let mut mine = vec![&pod];
                mine.extend(old.as_ref());
                let unique = unique_addresses(&objects, &key, &mine);
                objects.insert(pod.clone());
                (state.upsert_pod(&pod), unique)
            }
            Op::Delete(ns, name) => {
                let key = ObjectKey::pod(if ns.is_empty() { "default" } else { *ns }, *name);
                let unique = match objects.get(&key) {
                    Some(Object::Pod(p)) => unique_addresses(&objects, &key, &[p]),
                    _ => true,
                };
                objects.remove(&key);
                (state.delete_pod(&key), unique)
            }
        };
        let expected = validate(&objects);
        match result {
            Some(delta) => {
                prop_assert_eq!(&state, &expected, "after {:?}", op);
                prop_assert_eq!(delta, diff(&before, &expected.pods), "after {:?}", op);
            }
            None => {
                prop_assert!(
                    !unique,
                    "unique addresses must take the fast path: {:?}",
                    op
                );
                // The caller's fallback.
                fallbacks += 1;
                state = validate(&objects);
                prop_assert_eq!(&state, &expected);
            }
        }
    }
    Ok(fallbacks)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn incremental_pods_match_validation(
        cluster in cluster(),
        ops in proptest::collection::vec(op(), 20),
    ) {
        // Claim groups here are far below MAX_CLAIM_GROUP: every change takes the fast path.
        prop_assert_eq!(run(&cluster, &ops)?, 0);
    }
}

fn simple_objects() -> ObjectSet {
    base_objects(&[Some(1), Some(2)], &[0, 1])
}

fn pod(ns: &str, name: &str, subnet: &str, ip: &str, mac: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.namespace = ns.into();
    p.metadata.name = name.into();
    p.spec.node_name = "n0".into();
    let ann = &mut p.metadata.annotations;
    ann.insert(ANNOTATION_LOGICAL_SWITCH, subnet);
    ann.insert(ANNOTATION_IP_ADDRESS, ip);
    ann.insert(ANNOTATION_MAC_ADDRESS, mac);
    p
}

fn valid(name: &str, ip: [u8; 4], mac: u8) -> ValidPod {
    ValidPod {
        id: PodName::new("default", name),
        node: "n0".into(),
        subnet: "s0".into(),
        ip: ip.into(),
        mac: [0, 0, 0, 0, 0, mac],
        cni: None,
    }
}

#[test]
fn common_changes_are_fast_and_exact() {
    let mut objects = simple_objects();
    let mut state = validate(&objects);

    // Add, update (node and an unrelated annotation), delete.
    let a = pod("default", "a", "s0", "10.0.0.2", "00:00:00:00:00:02");
    objects.insert(a.clone());
    let d = state.upsert_pod(&a).unwrap();
    assert_eq!(d.added, [valid("a", [10, 0, 0, 2], 2)]);
    assert!(d.removed.is_empty());
    let mut a2 = a.clone();
    a2.spec.node_name = "n1".into();
    a2.metadata.annotations.insert("x", "y");
    objects.insert(a2.clone());
    let d = state.upsert_pod(&a2).unwrap();
    let mut moved = valid("a", [10, 0, 0, 2], 2);
    moved.node = "n1".into();
    assert_eq!(
        (d.removed, d.added),
        (vec![valid("a", [10, 0, 0, 2], 2)], vec![moved])
    );
    assert_eq!(state, validate(&objects));
    let mut a3 = a2.clone();
    a3.metadata.labels.insert("app", "web");
    objects.insert(a3.clone());
    assert!(state.upsert_pod(&a3).unwrap().is_empty());

    // An invalid pod, added and removed.
    let bad = pod("default", "bad", "s0", "10.0.5.5", "00:00:00:00:00:09");
    objects.insert(bad.clone());
    assert!(state.upsert_pod(&bad).unwrap().is_empty());
    assert_eq!(state, validate(&objects));
    assert_eq!(state.errors.len(), 1);
    let d = state.delete_pod(&bad.key()).unwrap();
    objects.remove(&bad.key());
    assert!(d.is_empty());
    assert_eq!(state, validate(&objects));
    assert!(state.errors.is_empty());

    // Deleting an absent pod, and a non-pod key.
    assert!(state
        .delete_pod(&ObjectKey::pod("x", "y"))
        .unwrap()
        .is_empty());
    assert_eq!(
        state.delete_pod(&ObjectKey::cluster(ObjectKind::Node, "n0")),
        None
    );

    let d = state.delete_pod(&a.key()).unwrap();
    objects.remove(&a.key());
    assert_eq!(d.removed.len(), 1);
    assert_eq!(state, validate(&objects));
}

#[test]
fn duplicates_promote_and_cascade() {
    let mut objects = simple_objects();
    // a holds ip2; b loses ip2 (so claims nothing, not even mac3); c holds mac3.
    let pods = [
        pod("default", "a", "s0", "10.0.0.2", "00:00:00:00:00:02"),
        pod("default", "b", "s0", "10.0.0.2", "00:00:00:00:00:03"),
        pod("default", "c", "s0", "10.0.0.4", "00:00:00:00:00:03"),
    ];
    for p in &pods {
        objects.insert(p.clone());
    }
    let mut state = validate(&objects);
    assert_eq!(state.pods.len(), 2);
    // Deleting a promotes b, which takes mac3 from c.
    let d = state.delete_pod(&pods[0].key()).unwrap();
    objects.remove(&pods[0].key());
    assert_eq!(state, validate(&objects));
    assert_eq!(
        (d.removed, d.added),
        (
            vec![valid("a", [10, 0, 0, 2], 2), valid("c", [10, 0, 0, 4], 3)],
            vec![valid("b", [10, 0, 0, 2], 3)]
        )
    );
    assert_eq!(
        state.errors[0].message,
        "00:00:00:00:00:03 is already used by Pod \"default/b\" in Subnet \"s0\""
    );
    // Putting a back reverts it all.
    objects.insert(pods[0].clone());
    let d = state.upsert_pod(&pods[0]).unwrap();
    assert_eq!(state, validate(&objects));
    assert_eq!(d.added.len(), 2);
}

#[test]
fn large_claim_groups_fall_back() {
    let mut objects = simple_objects();
    // MAX_CLAIM_GROUP + 1 pods asking for one MAC (each with its own IP) in a /20.
    let mut s = Subnet::default();
    s.metadata.name = "big".into();
    s.spec.cidr_block = "10.9.0.0/20".into();
    s.spec.vpc = "red".into();
    objects.insert(s);
    let big = |i: usize, mac: &str| {
        pod(
            "default",
            &format!("p{i:03}"),
            "big",
            &format!("10.9.1.{}", i + 2),
            mac,
        )
    };
    for i in 0..=MAX_CLAIM_GROUP {
        objects.insert(big(i, "00:00:00:00:00:01"));
    }
    let mut state = validate(&objects);
    assert_eq!(state.errors.len(), MAX_CLAIM_GROUP);
    let p = big(MAX_CLAIM_GROUP + 1, "00:00:00:00:00:01");
    objects.insert(p.clone());
    assert_eq!(state.upsert_pod(&p), None);
    let mut state = validate(&objects);
    // A pod with its own addresses in the same subnet is still fast.
    let q = big(MAX_CLAIM_GROUP + 2, "00:00:00:00:00:02");
    objects.insert(q.clone());
    assert_eq!(state.upsert_pod(&q).unwrap().added.len(), 1);
    assert_eq!(state, validate(&objects));
    // Deleting a member of the big group falls back too.
    assert_eq!(state.delete_pod(&big(MAX_CLAIM_GROUP + 1, "").key()), None);
}

#[test]
fn namespaces_with_slashes_fall_back() {
    let mut objects = simple_objects();
    let odd = pod("a/b", "c", "s0", "10.0.0.2", "00:00:00:00:00:02");
    objects.insert(odd.clone());
    let mut state = validate(&objects);
    let p = pod("default", "d", "s0", "10.0.0.3", "00:00:00:00:00:03");
    assert_eq!(state.upsert_pod(&p), None);
    objects.remove(&odd.key());
    let mut state2 = validate(&objects);
    assert_eq!(state2.upsert_pod(&odd), None);
    assert!(state2.upsert_pod(&p).is_some());
}

#[test]
fn creation_timestamps() {
    let loaded = load_yaml_str(
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: s, creationTimestamp: 2024-05-01T12:00:00Z}\nspec: {cidrBlock: 10.0.0.0/24}\n---\n\
         apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: red, creationTimestamp: \"2024-04-01T08:30:00Z\"}\n---\n\
         apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: t, creationTimestamp: null}\nspec: {cidrBlock: 10.1.0.0/24}\n",
        "test",
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let s = loaded.validate();
    assert_eq!(
        s.subnets["s"].creation_timestamp.as_deref(),
        Some("2024-05-01T12:00:00Z")
    );
    assert_eq!(s.subnets["t"].creation_timestamp, None);
    assert_eq!(
        s.vpcs["red"].creation_timestamp.as_deref(),
        Some("2024-04-01T08:30:00Z")
    );
    assert_eq!(s.vpcs[DEFAULT_VPC].creation_timestamp, None);
}

/// `pod_nic_type` and `routes` ride along in the pod's values (for the CNI server), are kept as
/// written, and a change of them is a change of the pod, incremental or validated afresh.
#[test]
fn cni_annotations_ride_along() {
    let mut objects = simple_objects();
    let mut state = validate(&objects);
    let mut a = pod("default", "a", "s0", "10.0.0.2", "00:00:00:00:00:02");
    objects.insert(a.clone());
    state.upsert_pod(&a).unwrap();
    assert_eq!(state.pods.values().next().unwrap().cni, None);

    a.metadata.annotations.insert(
        ANNOTATION_ROUTES,
        r#"[{"dst":"192.168.0.0/16","gw":"10.0.0.254"}]"#,
    );
    a.metadata
        .annotations
        .insert(ANNOTATION_POD_NIC_TYPE, "internal-port");
    objects.insert(a.clone());
    let d = state.upsert_pod(&a).unwrap();
    assert_eq!(d.added.len(), 1, "{d:?}");
    let cni = state.pods.values().next().unwrap().cni.clone().unwrap();
    assert_eq!(cni.nic_type.as_deref(), Some("internal-port"));
    assert_eq!(
        cni.routes.as_deref(),
        Some(r#"[{"dst":"192.168.0.0/16","gw":"10.0.0.254"}]"#)
    );
    assert_eq!(state, validate(&objects));
    assert_eq!(pod_values(&a.key(), &a).unwrap().cni, Some(cni));
}
