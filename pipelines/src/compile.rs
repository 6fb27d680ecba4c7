//! The stages: what flows each object contributes on this node. Pure functions of the
//! validated state and the node's configuration. `docs/pipeline.md` is the map.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use flowlib::wire::action::{Learn, LearnDst, LearnSpec, LearnSrc};
use flowlib::wire::oxm::{eth_type, ip_proto, mac_to_u128, OFPVID_PRESENT};
use flowlib::wire::{port, Action, Field, Flow, Instructions, Match, Subfield};
use ipnet::Ipv4Net;

use crate::flowset::{BridgeId, CompactFlow};
use crate::ids::{allocate, node_mac, object_id, pod_object_id, router_mac};
use crate::model::{
    ClusterState, MacAddr, PodName, SubnetMode, ValidPod, ValidSubnet, DEFAULT_VPC,
};
use crate::tables::*;

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
    fn object(&self) -> u64 {
        match self {
            Owner::Global => 0,
            Owner::Subnet(n) => object_id("Subnet", "", n),
            Owner::Pod(p) => pod_object_id(p),
            Owner::Node(n) => object_id("Node", "", n),
            Owner::ProviderNetwork(n) => object_id("ProviderNetwork", "", n),
        }
    }
}

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

/// Collects an owner's flows as compact encodings.
pub struct Emitter<'a> {
    pub out: &'a mut Vec<CompactFlow>,
    scratch: Vec<u8>,
    object: u64,
    bridge: BridgeId,
}

impl<'a> Emitter<'a> {
    pub fn new(out: &'a mut Vec<CompactFlow>, owner: &Owner) -> Emitter<'a> {
        Emitter {
            out,
            scratch: Vec::with_capacity(256),
            object: owner.object(),
            bridge: 0,
        }
    }
    /// An emitter for a known cookie object, reusing a scratch buffer.
    pub fn with_object(
        out: &'a mut Vec<CompactFlow>,
        object: u64,
        scratch: Vec<u8>,
    ) -> Emitter<'a> {
        Emitter {
            out,
            scratch,
            object,
            bridge: 0,
        }
    }
    pub fn into_scratch(self) -> Vec<u8> {
        self.scratch
    }
    fn on(&mut self, bridge: BridgeId) -> &mut Self {
        self.bridge = bridge;
        self
    }
    fn flow(&mut self, stage: Stage, table: u8, priority: u16, m: Match, ins: Instructions) {
        let f = Flow {
            table,
            priority,
            cookie: cookie(stage, 0, self.object),
            matches: m,
            instructions: ins,
            ..Flow::default()
        };
        self.out
            .push(CompactFlow::new(self.bridge, &f, &mut self.scratch));
    }
}

fn mac(m: MacAddr) -> u128 {
    mac_to_u128(m)
}
fn ip(a: Ipv4Addr) -> u128 {
    u32::from(a) as u128
}
fn reg(n: u8, v: u32) -> Action {
    Action::set_field(Field::Reg(n), v as u128)
}
fn goto(t: u8) -> Instructions {
    Instructions {
        goto_table: Some(t),
        ..Instructions::default()
    }
}
fn apply_goto(actions: Vec<Action>, t: u8) -> Instructions {
    Instructions {
        apply: actions.into(),
        goto_table: Some(t),
        ..Instructions::default()
    }
}
fn apply(actions: Vec<Action>) -> Instructions {
    Instructions::apply(actions)
}
fn sf(f: Field) -> Subfield {
    Subfield::whole(f)
}
fn m() -> Match {
    Match::new()
}
fn arp_match() -> Match {
    let mut m = Match::new();
    m.eth_type(eth_type::ARP);
    m
}
fn ip_match() -> Match {
    let mut m = Match::new();
    m.eth_type(eth_type::IPV4);
    m
}
fn flag_clear(m: &mut Match, flag: u32) {
    m.set_masked(Field::Reg(REG_FLAGS), 0, flag as u128);
}
fn flag_set(m: &mut Match, flag: u32) {
    m.set_masked(Field::Reg(REG_FLAGS), flag as u128, flag as u128);
}

/// The per-address half of the ARP responder: answer with `mac_addr`; table 11 does the rest.
pub fn arp_answer(mac_addr: MacAddr) -> Instructions {
    apply_goto(
        vec![
            Action::move_(sf(Field::EthSrc), sf(Field::EthDst)),
            Action::set_field(Field::EthSrc, mac(mac_addr)),
        ],
        T_ARP_REPLY,
    )
}

/// The shared half of the ARP responder: turn the request into the reply, out the port it came in.
fn arp_reply_actions() -> Vec<Action> {
    vec![
        Action::load(sf(Field::ArpOp), 2),
        Action::move_(sf(Field::ArpSha), sf(Field::ArpTha)),
        Action::move_(sf(Field::EthSrc), sf(Field::ArpSha)),
        Action::move_(sf(Field::ArpSpa), sf(Field::Reg(REG_SCRATCH))),
        Action::move_(sf(Field::ArpTpa), sf(Field::ArpSpa)),
        Action::move_(sf(Field::Reg(REG_SCRATCH)), sf(Field::ArpTpa)),
        Action::output(port::IN_PORT),
    ]
}

/// ICMP echo reply from a router port: swaps addresses, answers out the port it came in.
fn icmp_echo_responder(ip_addr: Ipv4Addr, _mac_addr: MacAddr) -> Vec<Action> {
    vec![
        // The request's destination MAC is the router port it was sent to: reply from it.
        Action::move_(
            Subfield::new(Field::EthDst, 0, 32),
            Subfield::new(Field::Reg(4), 0, 32),
        ),
        Action::move_(
            Subfield::new(Field::EthDst, 32, 16),
            Subfield::new(Field::Reg(5), 0, 16),
        ),
        Action::move_(sf(Field::EthSrc), sf(Field::EthDst)),
        Action::move_(
            Subfield::new(Field::Reg(4), 0, 32),
            Subfield::new(Field::EthSrc, 0, 32),
        ),
        Action::move_(
            Subfield::new(Field::Reg(5), 0, 16),
            Subfield::new(Field::EthSrc, 32, 16),
        ),
        Action::move_(sf(Field::Ipv4Src), sf(Field::Ipv4Dst)),
        Action::set_field(Field::Ipv4Src, ip(ip_addr)),
        Action::set_field(Field::IcmpType, 0),
        Action::output(port::IN_PORT),
    ]
}

/// A local port's table-0 flows: IP and ARP matching `ip_m`/`arp_m` are classified with `regs`
/// (IP on to the gateway table, ARP to the ARP table); anything else from the port is dropped.
fn classify_port(
    e: &mut Emitter<'_>,
    ofport: u32,
    regs: Vec<Action>,
    mut ip_m: Match,
    mut arp_m: Match,
) {
    ip_m.in_port(ofport);
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        200,
        ip_m,
        apply_goto(regs.clone(), T_GATEWAY),
    );
    arp_m.in_port(ofport);
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        200,
        arp_m,
        apply_goto(regs, T_ARP),
    );
    let mut mm = m();
    mm.in_port(ofport);
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        100,
        mm,
        Instructions::default(),
    );
}

/// Per destination: which node's tunnel endpoint; table 31 adds key and option and outputs.
fn to_node(remote: Ipv4Addr) -> Instructions {
    apply_goto(vec![Action::set_field(Field::TunDst, ip(remote))], T_TUNNEL)
}

/// Per routed destination: its MAC and subnet; table 22 sets TTL and source MAC.
fn route_to(dst_mac: MacAddr, key: u32) -> Instructions {
    apply_goto(
        vec![
            Action::set_field(Field::EthDst, mac(dst_mac)),
            reg(REG_SUBNET, key),
        ],
        T_ROUTE_OUT,
    )
}

/// Table 22's flow for one destination subnet.
fn route_out(e: &mut Emitter<'_>, key: u32, src_mac: MacAddr) {
    let mut mm = ip_match();
    mm.reg(REG_SUBNET, key);
    e.flow(
        Stage::L3,
        T_ROUTE_OUT,
        100,
        mm,
        apply_goto(
            vec![
                Action::DecTtl,
                Action::set_field(Field::EthSrc, mac(src_mac)),
            ],
            T_L2,
        ),
    );
}

/// Flows owned by nobody in particular: table-miss behaviour and fixed plumbing.
pub fn emit_global(e: &mut Emitter<'_>, cfg: &NodeConfig) {
    e.on(0);
    e.flow(
        Stage::Arp,
        T_ARP_REPLY,
        0,
        arp_match(),
        apply(arp_reply_actions()),
    );
    e.flow(Stage::L3, T_ROUTE_OUT, 0, m(), Instructions::default());
    let mut acts = vec![Action::move_(
        Subfield::new(Field::Reg(REG_SUBNET), 0, 24),
        Subfield::new(Field::TunId, 0, 24),
    )];
    if cfg.tunnel == TunnelType::Geneve {
        acts.push(Action::move_(
            Subfield::new(Field::Reg(REG_SRC_SUBNET), 0, 24),
            Subfield::new(Field::TunMetadata(GENEVE_OPT_INDEX), 0, 24),
        ));
    }
    acts.push(Action::output(cfg.ports.tunnel));
    e.flow(Stage::L2, T_TUNNEL, 0, m(), apply(acts));
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        0,
        m(),
        Instructions::default(),
    );
    let mut mm = arp_match();
    flag_set(&mut mm, FLAG_FROM_UPLINK);
    e.flow(Stage::Arp, T_ARP, 150, mm, goto(T_L2));
    let mut mm = arp_match();
    mm.set(Field::ArpOp, 2);
    e.flow(Stage::Arp, T_ARP, 90, mm, goto(T_L2));
    e.flow(Stage::Arp, T_ARP, 0, m(), Instructions::default());
    e.flow(Stage::L3, T_GATEWAY, 0, m(), goto(T_L2));
    e.flow(Stage::L3, T_ROUTING, 0, m(), Instructions::default());
    e.flow(Stage::L2, T_L2, 0, m(), Instructions::default());
}

/// Does this subnet get a dataplane at all?
fn programmed(s: &ValidSubnet) -> bool {
    s.ovn_managed
}

/// A subnet's own flows: gateway, tunnel and VLAN classification, unknown-destination handling.
pub fn emit_subnet(
    e: &mut Emitter<'_>,
    plan: &Plan,
    cfg: &NodeConfig,
    bridges: &mut Bridges,
    s: &ValidSubnet,
) {
    if !programmed(s) {
        return;
    }
    e.on(0);
    let key = plan.key(&s.name);
    let vpc = plan.vpc(&s.vpc);
    let rmac = match s.u2o() {
        Some(u) => u.mac,
        None => router_mac(&s.vpc, &s.name),
    };
    if let Some(rip) = s.router_ip() {
        let mut mm = arp_match();
        mm.set(Field::ArpOp, 1)
            .reg(REG_SUBNET, key)
            .set(Field::ArpTpa, ip(rip));
        e.flow(Stage::Arp, T_ARP, 100, mm, arp_answer(rmac));
        let mut mm = m();
        mm.reg(REG_SUBNET, key).eth_dst(rmac);
        e.flow(Stage::L3, T_GATEWAY, 100, mm, goto(T_ROUTING));
        let mut mm = m();
        mm.eth_type(eth_type::IPV4)
            .set(Field::IpProto, ip_proto::ICMP as u128)
            .reg(REG_VPC, vpc)
            .ipv4_dst(rip)
            .set(Field::IcmpType, 8);
        e.flow(
            Stage::L3,
            T_ROUTING,
            300,
            mm,
            apply(icmp_echo_responder(rip, rmac)),
        );
        let mut mm = ip_match();
        mm.reg(REG_VPC, vpc)
            .ipv4_dst_prefix(s.cidr.network(), s.cidr.prefix_len());
        e.flow(Stage::L3, T_ROUTING, 100, mm, Instructions::default());
        // Routed packets enter the subnet from its router port; on a provider network from
        // this node's MAC, so the router MAC never shows on the wire.
        let src = if s.vlan.is_some() {
            node_mac(&cfg.node)
        } else {
            rmac
        };
        route_out(e, key, src);
    }
    match &s.vlan {
        None => {
            // Overlay: traffic for this subnet arrives by tunnel with the subnet key.
            let mut mm = m();
            mm.in_port(cfg.ports.tunnel).tun_id(key as u64);
            let mut acts = vec![
                reg(REG_FLAGS, FLAG_FROM_TUNNEL),
                reg(REG_VPC, vpc),
                reg(REG_SUBNET, key),
            ];
            if cfg.tunnel == TunnelType::Geneve {
                acts.push(reg(REG_SRC_SUBNET, 0));
                acts.push(Action::move_(
                    Subfield::new(Field::TunMetadata(GENEVE_OPT_INDEX), 0, 24),
                    Subfield::new(Field::Reg(REG_SRC_SUBNET), 0, 24),
                ));
            } else {
                acts.push(reg(REG_SRC_SUBNET, key));
            }
            e.flow(
                Stage::Classifier,
                T_CLASSIFY,
                200,
                mm,
                apply_goto(acts, T_L2),
            );
        }
        Some(vb) => {
            let Some(lp) = plan.providers.get(&vb.provider_network) else {
                return;
            };
            // From the wire: by VLAN, untagged for VLAN 0.
            for (is_arp, next) in [(true, T_ARP), (false, T_L2)] {
                let mut mm = if is_arp { arp_match() } else { ip_match() };
                mm.in_port(lp.patch);
                let mut acts = Vec::new();
                if vb.id == 0 {
                    mm.set_masked(Field::VlanVid, 0, 0x1fff);
                } else {
                    mm.set(Field::VlanVid, (OFPVID_PRESENT | vb.id) as u128);
                    acts.push(Action::PopVlan);
                }
                acts.extend([
                    reg(REG_FLAGS, FLAG_FROM_UPLINK),
                    reg(REG_VPC, vpc),
                    reg(REG_SUBNET, key),
                    reg(REG_SRC_SUBNET, key),
                ]);
                e.flow(
                    Stage::Classifier,
                    T_CLASSIFY,
                    200,
                    mm,
                    apply_goto(acts, next),
                );
            }
            // To the wire: unknown unicast and broadcast.
            let mut mm = m();
            flag_clear(&mut mm, FLAG_FROM_UPLINK);
            mm.reg(REG_SUBNET, key);
            let mut acts = Vec::new();
            if vb.id != 0 {
                acts.push(Action::PushVlan(eth_type::VLAN));
                acts.push(Action::set_field(
                    Field::VlanVid,
                    (OFPVID_PRESENT | vb.id) as u128,
                ));
            }
            acts.push(Action::output(lp.patch));
            e.flow(Stage::L2, T_L2, 10, mm, apply(acts));
            // ARP for an unknown target is asked on the wire.
            let mut mm = arp_match();
            mm.reg(REG_SUBNET, key);
            e.flow(Stage::Arp, T_ARP, 50, mm, goto(T_L2));
            if let Some(rip) = s.router_ip() {
                // Nobody on the wire may resolve the router port.
                let mut mm = arp_match();
                flag_set(&mut mm, FLAG_FROM_UPLINK);
                mm.reg(REG_SUBNET, key).set(Field::ArpTpa, ip(rip));
                e.flow(Stage::Arp, T_ARP, 300, mm, Instructions::default());
                let pb = bridges.id(&lp.bridge);
                e.on(pb);
                let mut mm = arp_match();
                mm.in_port(lp.uplink).set(Field::ArpTpa, ip(rip));
                e.flow(Stage::Provider, 0, 200, mm, Instructions::default());
                e.on(0);
            }
            if matches!(s.mode, SubnetMode::U2o(_)) {
                // The physical gateway's MAC, learned from its ARP on the wire ...
                // Requests and replies both teach it; then the packet goes through table 10
                // again (flagged, so this flow does not match twice) to reach its pod.
                let mut mm = arp_match();
                mm.set_masked(
                    Field::Reg(REG_FLAGS),
                    FLAG_FROM_UPLINK as u128,
                    (FLAG_FROM_UPLINK | FLAG_GW_LEARNED) as u128,
                );
                mm.reg(REG_SUBNET, key).set(Field::ArpSpa, ip(s.gateway));
                let learn = Action::Learn(Box::new(Learn {
                    table: T_GATEWAY_MAC,
                    priority: 100,
                    specs: vec![
                        LearnSpec {
                            n_bits: 32,
                            src: LearnSrc::Immediate(key as u128),
                            dst: LearnDst::Match(sf(Field::Reg(REG_SUBNET))),
                        },
                        LearnSpec {
                            n_bits: 48,
                            src: LearnSrc::Field(sf(Field::ArpSha)),
                            dst: LearnDst::Load(sf(Field::EthDst)),
                        },
                    ],
                    ..Learn::default()
                }));
                e.flow(
                    Stage::Arp,
                    T_ARP,
                    310,
                    mm,
                    apply(vec![
                        learn,
                        reg(REG_FLAGS, FLAG_FROM_UPLINK | FLAG_GW_LEARNED),
                        Action::resubmit(T_ARP),
                    ]),
                );
                // ... is where everything else from the u2o subnet goes.
                let mut mm = ip_match();
                mm.reg(REG_SUBNET, key);
                e.flow(
                    Stage::L3,
                    T_ROUTING,
                    50,
                    mm,
                    apply_goto(
                        vec![
                            Action::DecTtl,
                            Action::set_field(Field::EthSrc, mac(node_mac(&cfg.node))),
                            Action::resubmit(T_GATEWAY_MAC),
                        ],
                        T_L2,
                    ),
                );
            }
        }
    }
}

/// A pod's flows: spoof guard and delivery where it lives; ARP, routes and tunnel entries elsewhere.
pub fn emit_pod(
    e: &mut Emitter<'_>,
    state: &ClusterState,
    plan: &Plan,
    cfg: &NodeConfig,
    pod: &ValidPod,
) {
    let Some(s) = plan.subnets.get(&*pod.subnet) else {
        return;
    };
    e.on(0);
    let (key, vpc) = (s.key, s.vpc);
    let local = *pod.node == *cfg.node;
    let underlay = s.underlay;
    if underlay && !s.provider_here && local {
        // The pod's provider network is not on this node: nothing can carry its traffic.
        return;
    }
    if local {
        if let Some(&ofport) = cfg.ports.pods.get(&pod.iface_id()) {
            let regs = vec![
                reg(REG_FLAGS, FLAG_FROM_LOCAL),
                reg(REG_VPC, vpc),
                reg(REG_SUBNET, key),
                reg(REG_SRC_SUBNET, key),
            ];
            // Spoof guard: only the pod's own MAC and IP.
            let mut ipm = ip_match();
            ipm.eth_src(pod.mac).ipv4_src(pod.ip);
            let mut arpm = arp_match();
            arpm.eth_src(pod.mac)
                .set(Field::ArpSpa, ip(pod.ip))
                .set(Field::ArpSha, mac(pod.mac));
            classify_port(e, ofport, regs, ipm, arpm);
            let mut mm = m();
            mm.reg(REG_SUBNET, key).eth_dst(pod.mac);
            e.flow(
                Stage::L2,
                T_L2,
                200,
                mm,
                apply(vec![Action::output(ofport)]),
            );
            if underlay {
                let mut mm = arp_match();
                flag_set(&mut mm, FLAG_FROM_UPLINK);
                mm.reg(REG_SUBNET, key)
                    .set(Field::ArpOp, 1)
                    .set(Field::ArpTpa, ip(pod.ip));
                e.flow(
                    Stage::Arp,
                    T_ARP,
                    200,
                    mm,
                    apply(vec![Action::output(ofport)]),
                );
            }
        }
    }
    // ARP answers: every overlay pod; underlay pods only where they live.
    if !underlay || local {
        let mut mm = arp_match();
        mm.set(Field::ArpOp, 1)
            .reg(REG_SUBNET, key)
            .set(Field::ArpTpa, ip(pod.ip));
        e.flow(Stage::Arp, T_ARP, 100, mm, arp_answer(pod.mac));
    }
    // Routes towards the pod from the rest of its VPC.
    if s.routed {
        let mut mm = ip_match();
        mm.reg(REG_VPC, vpc).ipv4_dst(pod.ip);
        e.flow(Stage::L3, T_ROUTING, 200, mm, route_to(pod.mac, key));
    }
    // Remote overlay pods are reached through the tunnel.
    if !local && !underlay {
        if let Some(node) = state.nodes.get(&*pod.node) {
            let mut mm = m();
            flag_clear(&mut mm, FLAG_FROM_TUNNEL);
            mm.reg(REG_SUBNET, key).eth_dst(pod.mac);
            e.flow(Stage::L2, T_L2, 150, mm, to_node(node.internal_ip));
        }
    }
}

/// A node's flows: its node port as a member of the join subnet, and this node's own plumbing.
pub fn emit_node(
    e: &mut Emitter<'_>,
    state: &ClusterState,
    plan: &Plan,
    cfg: &NodeConfig,
    node_name: &str,
) {
    let Some(node) = state.nodes.get(node_name) else {
        return;
    };
    e.on(0);
    let jkey = plan.key(JOIN_SUBNET);
    let jvpc = plan.vpc(&plan.join.vpc);
    let jrmac = router_mac(&plan.join.vpc, JOIN_SUBNET);
    let local = node.name == cfg.node;
    // Without a `join` Subnet object the local node owns the join subnet's own flows.
    let implicit_join = !state.subnets.contains_key(JOIN_SUBNET);
    if local && implicit_join {
        let mut mm = arp_match();
        mm.set(Field::ArpOp, 1)
            .reg(REG_SUBNET, jkey)
            .set(Field::ArpTpa, ip(plan.join.gateway));
        e.flow(Stage::Arp, T_ARP, 100, mm, arp_answer(jrmac));
        let mut mm = m();
        mm.reg(REG_SUBNET, jkey).eth_dst(jrmac);
        e.flow(Stage::L3, T_GATEWAY, 100, mm, goto(T_ROUTING));
        route_out(e, jkey, jrmac);
        // Tunnel traffic for the join subnet (replies to this host from remote pods).
        let mut mm = m();
        mm.in_port(cfg.ports.tunnel).tun_id(jkey as u64);
        let acts = vec![
            reg(REG_FLAGS, FLAG_FROM_TUNNEL),
            reg(REG_VPC, jvpc),
            reg(REG_SUBNET, jkey),
            reg(REG_SRC_SUBNET, jkey),
        ];
        e.flow(
            Stage::Classifier,
            T_CLASSIFY,
            200,
            mm,
            apply_goto(acts, T_L2),
        );
    }
    if local {
        // The node port's classification: the host may use any address.
        let regs = vec![
            reg(REG_FLAGS, FLAG_FROM_LOCAL),
            reg(REG_VPC, jvpc),
            reg(REG_SUBNET, jkey),
            reg(REG_SRC_SUBNET, jkey),
        ];
        classify_port(e, cfg.ports.node_port, regs, ip_match(), arp_match());
    }
    let (Some(jip), Some(jmac)) = (node.join_ip, node.join_mac) else {
        return;
    };
    // The node port is a pod of the join subnet.
    let mut mm = arp_match();
    mm.set(Field::ArpOp, 1)
        .reg(REG_SUBNET, jkey)
        .set(Field::ArpTpa, ip(jip));
    e.flow(Stage::Arp, T_ARP, 100, mm, arp_answer(jmac));
    let mut mm = ip_match();
    mm.reg(REG_VPC, jvpc).ipv4_dst(jip);
    e.flow(Stage::L3, T_ROUTING, 200, mm, route_to(jmac, jkey));
    if local {
        let mut mm = m();
        mm.reg(REG_SUBNET, jkey).eth_dst(jmac);
        e.flow(
            Stage::L2,
            T_L2,
            200,
            mm,
            apply(vec![Action::output(cfg.ports.node_port)]),
        );
        // Default route of the default VPC: to this host, which routes or NATs it.
        let mut mm = ip_match();
        mm.reg(REG_VPC, plan.vpc(DEFAULT_VPC));
        e.flow(
            Stage::L3,
            T_ROUTING,
            10,
            mm,
            apply_goto(
                vec![
                    Action::DecTtl,
                    Action::set_field(Field::EthSrc, mac(jrmac)),
                    Action::set_field(Field::EthDst, mac(jmac)),
                    reg(REG_SUBNET, jkey),
                ],
                T_L2,
            ),
        );
    } else {
        let mut mm = m();
        flag_clear(&mut mm, FLAG_FROM_TUNNEL);
        mm.reg(REG_SUBNET, jkey).eth_dst(jmac);
        e.flow(Stage::L2, T_L2, 150, mm, to_node(node.internal_ip));
    }
}

/// A provider network's own flows on its bridge.
pub fn emit_provider(e: &mut Emitter<'_>, plan: &Plan, bridges: &mut Bridges, pn: &str) {
    let Some(lp) = plan.providers.get(pn) else {
        return;
    };
    let b = bridges.id(&lp.bridge);
    e.on(b);
    e.flow(
        Stage::Provider,
        0,
        0,
        m(),
        apply(vec![Action::output(port::NORMAL)]),
    );
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
