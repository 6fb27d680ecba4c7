//! Tables 10 (ARP) and 11 (ARP reply). Table 10 answers ARP requests for every address it knows
//! (router ports, pods, node ports) by choosing the answer's MAC; table 11's single shared flow
//! turns the request into the reply, which keeps each per-address flow small. On a provider
//! network it also keeps the router's addresses off the wire, hands requests from the wire only
//! to the pod they ask for, and learns the physical gateway's MAC (u2o).

use std::net::Ipv4Addr;

use flowlib::wire::action::{Learn, LearnDst, LearnSpec, LearnSrc};
use flowlib::wire::{port, Action, Field, Instructions};

use super::{
    any, apply, apply_goto, arp_match, drop_packet, flag_set, goto, ip, l3, mac, reg, sf, Emitter,
};
use crate::model::MacAddr;
use crate::tables::*;

mod priority {
    /// Table 10, highest first.
    pub const LEARN_GATEWAY: u16 = 310;
    /// No device on the wire may learn or own the router's addresses.
    pub const PROTECT_ROUTER: u16 = 300;
    pub const WIRE_REQUEST_TO_POD: u16 = 200;
    pub const FROM_WIRE: u16 = 150;
    pub const ANSWER: u16 = 100;
    pub const REPLY: u16 = 90;
    pub const ASK_WIRE: u16 = 50;
    pub const MISS: u16 = 0;
    /// Table 11's one flow.
    pub const RESPOND: u16 = 0;
}

/// Table 11: the shared half of the responder. The request becomes the reply and goes back out
/// the port it came in.
pub(crate) fn respond(e: &mut Emitter<'_>) {
    let actions = vec![
        Action::load(sf(Field::ArpOp), 2),
        Action::move_(sf(Field::ArpSha), sf(Field::ArpTha)),
        Action::move_(sf(Field::EthSrc), sf(Field::ArpSha)),
        Action::move_(sf(Field::ArpSpa), sf(Field::Reg(REG_SCRATCH))),
        Action::move_(sf(Field::ArpTpa), sf(Field::ArpSpa)),
        Action::move_(sf(Field::Reg(REG_SCRATCH)), sf(Field::ArpTpa)),
        Action::output(port::IN_PORT),
    ];
    e.flow(
        Stage::Arp,
        T_ARP_REPLY,
        priority::RESPOND,
        arp_match(),
        apply(actions),
    );
}

/// Table 10's fixed flows: ARP from the wire and ARP replies are delivered by MAC; a request no
/// flow answers (an unknown target in an overlay subnet: nobody to ask) is dropped.
pub(crate) fn defaults(e: &mut Emitter<'_>) {
    let mut mm = arp_match();
    flag_set(&mut mm, FLAG_FROM_UPLINK);
    e.flow(Stage::Arp, T_ARP, priority::FROM_WIRE, mm, goto(T_L2));
    let mut mm = arp_match();
    mm.set(Field::ArpOp, 2);
    e.flow(Stage::Arp, T_ARP, priority::REPLY, mm, goto(T_L2));
    e.flow(Stage::Arp, T_ARP, priority::MISS, any(), drop_packet());
}

/// Answers requests for `addr` in subnet `key` with `answer_mac`.
pub(crate) fn answer(e: &mut Emitter<'_>, key: u32, addr: Ipv4Addr, answer_mac: MacAddr) {
    let mut mm = arp_match();
    mm.set(Field::ArpOp, 1)
        .reg(REG_SUBNET, key)
        .set(Field::ArpTpa, ip(addr));
    e.flow(
        Stage::Arp,
        T_ARP,
        priority::ANSWER,
        mm,
        answer_with(answer_mac),
    );
}

/// The per-address half of the responder: answer with `answer_mac`; table 11 does the rest.
fn answer_with(answer_mac: MacAddr) -> Instructions {
    apply_goto(
        vec![
            Action::move_(sf(Field::EthSrc), sf(Field::EthDst)),
            Action::set_field(Field::EthSrc, mac(answer_mac)),
        ],
        T_ARP_REPLY,
    )
}

/// A request from the wire for a local underlay pod reaches only that pod.
pub(crate) fn wire_request_to_pod(e: &mut Emitter<'_>, key: u32, pod_ip: Ipv4Addr, ofport: u32) {
    let mut mm = arp_match();
    flag_set(&mut mm, FLAG_FROM_UPLINK);
    mm.reg(REG_SUBNET, key)
        .set(Field::ArpOp, 1)
        .set(Field::ArpTpa, ip(pod_ip));
    e.flow(
        Stage::Arp,
        T_ARP,
        priority::WIRE_REQUEST_TO_POD,
        mm,
        apply(vec![Action::output(ofport)]),
    );
}

/// ARP for an unknown target of underlay subnet `key` is asked on the wire.
pub(crate) fn ask_wire(e: &mut Emitter<'_>, key: u32) {
    let mut mm = arp_match();
    mm.reg(REG_SUBNET, key);
    e.flow(Stage::Arp, T_ARP, priority::ASK_WIRE, mm, goto(T_L2));
}

/// Nobody on the wire may resolve the router port `router_ip` of underlay subnet `key`.
pub(crate) fn protect_router(e: &mut Emitter<'_>, key: u32, router_ip: Ipv4Addr) {
    let mut mm = arp_match();
    flag_set(&mut mm, FLAG_FROM_UPLINK);
    mm.reg(REG_SUBNET, key).set(Field::ArpTpa, ip(router_ip));
    e.flow(
        Stage::Arp,
        T_ARP,
        priority::PROTECT_ROUTER,
        mm,
        drop_packet(),
    );
}

/// The physical gateway's MAC of u2o subnet `key`, learned into table 23 from its ARP on the
/// wire. Requests and replies both teach it; then the packet goes through table 10 again
/// (flagged, so this flow does not match twice) to reach its pod.
pub(crate) fn learn_gateway(e: &mut Emitter<'_>, key: u32, gateway: Ipv4Addr) {
    let mut mm = arp_match();
    mm.set_masked(
        Field::Reg(REG_FLAGS),
        FLAG_FROM_UPLINK as u128,
        (FLAG_FROM_UPLINK | FLAG_GW_LEARNED) as u128,
    );
    mm.reg(REG_SUBNET, key).set(Field::ArpSpa, ip(gateway));
    let learn = Action::Learn(Box::new(Learn {
        table: T_GATEWAY_MAC,
        priority: l3::LEARNED_GATEWAY_MAC_PRIORITY,
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
        priority::LEARN_GATEWAY,
        mm,
        apply(vec![
            learn,
            reg(REG_FLAGS, FLAG_FROM_UPLINK | FLAG_GW_LEARNED),
            Action::resubmit(T_ARP),
        ]),
    );
}
