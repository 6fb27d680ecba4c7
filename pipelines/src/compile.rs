//! Compiling one node's flows, owner by owner: which objects contribute which flows on this
//! node. The flows' shapes are in `stages` (one module per table group); this module
//! decides, per object, which of them it gets here (local or remote pod, overlay or underlay
//! subnet, this node or another). Pure functions of the validated state, the [`Plan`] and the
//! [`NodeConfig`].

use crate::config::{NodeConfig, TunnelType};
use crate::flowset::{BridgeId, CompactFlow};
use crate::ids::{node_mac, object_id, pod_object_id, router_mac};
use crate::model::{ClusterState, PodName, SubnetMode, ValidPod, ValidSubnet, DEFAULT_VPC};
use crate::plan::{programmed, Plan};
use crate::stages::{arp, classifier, l2, l3, provider, tunnel, Emitter};
use crate::tables::JOIN_SUBNET;

/// Who a flow belongs to: recompiling an owner replaces exactly its flows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Global,
    Subnet(String),
    Pod(PodName),
    Node(String),
    ProviderNetwork(String),
}

impl Owner {
    /// The object id in the cookies of this owner's flows.
    pub(crate) fn object(&self) -> u64 {
        match self {
            Owner::Global => 0,
            Owner::Subnet(n) => object_id("Subnet", "", n),
            Owner::Pod(p) => pod_object_id(p),
            Owner::Node(n) => object_id("Node", "", n),
            Owner::ProviderNetwork(n) => object_id("ProviderNetwork", "", n),
        }
    }
}

/// Bridge names <-> ids. Ids are never reused while a compiler lives.
#[derive(Debug, Clone, Default)]
pub struct Bridges {
    names: Vec<String>,
}

impl Bridges {
    pub fn new(integration: &str) -> Bridges {
        Bridges {
            names: vec![integration.to_string()],
        }
    }
    pub fn id(&mut self, name: &str) -> BridgeId {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i as BridgeId;
        }
        self.names.push(name.to_string());
        (self.names.len() - 1) as BridgeId
    }
    pub fn name(&self, id: BridgeId) -> &str {
        self.names
            .get(id as usize)
            .map(|s| s.as_str())
            .unwrap_or("?")
    }
}

/// Flows owned by nobody in particular: table-miss behaviour and fixed plumbing.
pub(crate) fn emit_global(e: &mut Emitter<'_>, cfg: &NodeConfig) {
    classifier::miss(e);
    arp::defaults(e);
    arp::respond(e);
    l3::defaults(e);
    l2::miss(e);
    tunnel::encapsulate(e, cfg);
}

/// A subnet's own flows: its router port, tunnel or VLAN classification, unknown-destination
/// handling.
pub(crate) fn emit_subnet(
    e: &mut Emitter<'_>,
    plan: &Plan,
    cfg: &NodeConfig,
    bridges: &mut Bridges,
    s: &ValidSubnet,
) {
    if !programmed(s) {
        return;
    }
    let key = plan.key(&s.name);
    let vpc = plan.vpc(&s.vpc);
    let rmac = match s.u2o() {
        Some(u) => u.mac,
        None => router_mac(&s.vpc, &s.name),
    };
    if let Some(rip) = s.router_ip() {
        arp::answer(e, key, rip, rmac);
        l3::to_router(e, key, rmac);
        l3::echo_reply(e, vpc, rip);
        l3::no_such_address(e, vpc, s.cidr);
        // Routed packets enter the subnet from its router port; on a provider network from
        // this node's MAC, so the router MAC never shows on the wire.
        let src = if s.vlan.is_some() {
            node_mac(&cfg.node)
        } else {
            rmac
        };
        l3::enter_subnet(e, key, src);
    }
    match &s.vlan {
        None => {
            // Overlay: traffic for this subnet arrives by tunnel with the subnet key.
            let source_in_option = cfg.tunnel == TunnelType::Geneve;
            classifier::from_tunnel(e, cfg.ports.tunnel, key, vpc, source_in_option);
        }
        Some(vb) => {
            let Some(lp) = plan.providers.get(&vb.provider_network) else {
                return;
            };
            classifier::from_wire(e, lp.patch, vb.id, key, vpc);
            l2::to_wire(e, key, vb.id, lp.patch);
            arp::ask_wire(e, key);
            if let Some(rip) = s.router_ip() {
                arp::protect_router(e, key, rip);
                provider::protect_router(e, bridges.id(&lp.bridge), lp.uplink, rip);
            }
            if matches!(s.mode, SubnetMode::U2o(_)) {
                // The physical gateway's MAC, learned from its ARP on the wire, is where
                // everything else from the u2o subnet goes.
                arp::learn_gateway(e, key, s.gateway);
                l3::to_physical_gateway(e, key, node_mac(&cfg.node));
            }
        }
    }
}

/// A pod's flows: spoof guard and delivery where it lives; ARP, routes and tunnel entries elsewhere.
pub(crate) fn emit_pod(
    e: &mut Emitter<'_>,
    state: &ClusterState,
    plan: &Plan,
    cfg: &NodeConfig,
    pod: &ValidPod,
) {
    let Some(s) = plan.subnets.get(&*pod.subnet) else {
        return;
    };
    let (key, vpc) = (s.key, s.vpc);
    let local = *pod.node == *cfg.node;
    let underlay = s.underlay;
    if underlay && !s.provider_here && local {
        // The pod's provider network is not on this node: nothing can carry its traffic.
        return;
    }
    if local {
        if let Some(&ofport) = cfg.ports.pods.get(&pod.iface_id()) {
            classifier::pod_port(e, ofport, key, vpc, pod.mac, pod.ip);
            l2::deliver(e, key, pod.mac, ofport);
            if underlay {
                arp::wire_request_to_pod(e, key, pod.ip, ofport);
            }
        }
    }
    // ARP answers: every overlay pod; underlay pods only where they live.
    if !underlay || local {
        arp::answer(e, key, pod.ip, pod.mac);
    }
    // Routes towards the pod from the rest of its VPC.
    if s.routed {
        l3::to_address(e, vpc, pod.ip, pod.mac, key);
    }
    // Remote overlay pods are reached through the tunnel.
    if !local && !underlay {
        if let Some(node) = state.nodes.get(&*pod.node) {
            l2::to_node(e, key, pod.mac, node.internal_ip);
        }
    }
}

/// A node's flows: its node port as a member of the join subnet, and this node's own plumbing.
pub(crate) fn emit_node(
    e: &mut Emitter<'_>,
    state: &ClusterState,
    plan: &Plan,
    cfg: &NodeConfig,
    node_name: &str,
) {
    let Some(node) = state.nodes.get(node_name) else {
        return;
    };
    let jkey = plan.key(JOIN_SUBNET);
    let jvpc = plan.vpc(&plan.join.vpc);
    let jrmac = router_mac(&plan.join.vpc, JOIN_SUBNET);
    let local = node.name == cfg.node;
    // Without a `join` Subnet object the local node owns the join subnet's own flows.
    let implicit_join = !state.subnets.contains_key(JOIN_SUBNET);
    if local && implicit_join {
        arp::answer(e, jkey, plan.join.gateway, jrmac);
        l3::to_router(e, jkey, jrmac);
        l3::enter_subnet(e, jkey, jrmac);
        // Tunnel traffic for the join subnet (replies to this host from remote pods).
        classifier::from_tunnel(e, cfg.ports.tunnel, jkey, jvpc, false);
    }
    if local {
        classifier::node_port(e, cfg.ports.node_port, jkey, jvpc);
    }
    let (Some(jip), Some(jmac)) = (node.join_ip, node.join_mac) else {
        return;
    };
    // The node port is a pod of the join subnet.
    arp::answer(e, jkey, jip, jmac);
    l3::to_address(e, jvpc, jip, jmac, jkey);
    if local {
        l2::deliver(e, jkey, jmac, cfg.ports.node_port);
        // Default route of the default VPC: to this host, which routes or NATs it.
        l3::to_host(e, plan.vpc(DEFAULT_VPC), jkey, jrmac, jmac);
    } else {
        l2::to_node(e, jkey, jmac, node.internal_ip);
    }
}

/// A provider network's own flows on its bridge.
pub(crate) fn emit_provider(e: &mut Emitter<'_>, plan: &Plan, bridges: &mut Bridges, pn: &str) {
    let Some(lp) = plan.providers.get(pn) else {
        return;
    };
    provider::normal(e, bridges.id(&lp.bridge));
}

/// Emits every flow of the state, owner by owner, without materialising the owner list.
pub fn emit_all(
    out: &mut Vec<CompactFlow>,
    state: &ClusterState,
    plan: &Plan,
    cfg: &NodeConfig,
    bridges: &mut Bridges,
    mut sink: impl FnMut(&mut Vec<CompactFlow>),
) {
    if !plan.node_known {
        return;
    }
    emit_owner(out, &Owner::Global, state, plan, cfg, bridges);
    sink(out);
    for s in state.subnets.values() {
        let mut e = Emitter::new(out, &Owner::Subnet(s.name.clone()));
        emit_subnet(&mut e, plan, cfg, bridges, s);
        sink(out);
    }
    for n in state.nodes.keys() {
        let mut e = Emitter::new(out, &Owner::Node(n.clone()));
        emit_node(&mut e, state, plan, cfg, n);
        sink(out);
    }
    for pn in plan.providers.keys() {
        let mut e = Emitter::new(out, &Owner::ProviderNetwork(pn.clone()));
        emit_provider(&mut e, plan, bridges, pn);
        sink(out);
    }
    let mut scratch = Vec::with_capacity(256);
    for pod in state.pods.values() {
        let mut e = Emitter::with_object(out, pod_object_id(&pod.id), std::mem::take(&mut scratch));
        emit_pod(&mut e, state, plan, cfg, pod);
        scratch = e.into_scratch();
        sink(out);
    }
}

/// Every owner present in `state` for this node, in a deterministic order.
pub fn owners(state: &ClusterState, plan: &Plan) -> Vec<Owner> {
    let mut v = vec![Owner::Global];
    v.extend(state.subnets.keys().map(|n| Owner::Subnet(n.clone())));
    v.extend(state.nodes.keys().map(|n| Owner::Node(n.clone())));
    v.extend(
        plan.providers
            .keys()
            .map(|n| Owner::ProviderNetwork(n.clone())),
    );
    v.extend(state.pods.keys().map(|p| Owner::Pod(p.clone())));
    v
}

/// Emits one owner's flows into `out`.
pub fn emit_owner(
    out: &mut Vec<CompactFlow>,
    owner: &Owner,
    state: &ClusterState,
    plan: &Plan,
    cfg: &NodeConfig,
    bridges: &mut Bridges,
) {
    if !plan.node_known {
        return;
    }
    let mut e = Emitter::new(out, owner);
    match owner {
        Owner::Global => emit_global(&mut e, cfg),
        Owner::Subnet(n) => {
            if let Some(s) = state.subnets.get(n) {
                emit_subnet(&mut e, plan, cfg, bridges, s)
            }
        }
        Owner::Pod(p) => {
            if let Some(pod) = state.pods.get(p) {
                emit_pod(&mut e, state, plan, cfg, pod)
            }
        }
        Owner::Node(n) => emit_node(&mut e, state, plan, cfg, n),
        Owner::ProviderNetwork(n) => emit_provider(&mut e, plan, bridges, n),
    }
}
