//! Table 30: L2 forwarding within the packet's subnet (`reg2`), by destination MAC: to a local
//! port, to a remote node's tunnel endpoint (table 31 encapsulates), or for a provider network,
//! unknown unicast and broadcast to the wire. Anything else is dropped.

use std::net::Ipv4Addr;

use flowlib::wire::oxm::{eth_type, OFPVID_PRESENT};
use flowlib::wire::{Action, Field};

use super::{any, apply, apply_goto, drop_packet, flag_clear, ip, Emitter};
use crate::model::MacAddr;
use crate::tables::*;

mod priority {
    pub const DELIVER: u16 = 200;
    pub const TO_NODE: u16 = 150;
    pub const TO_WIRE: u16 = 10;
    pub const MISS: u16 = 0;
}

pub(crate) fn miss(e: &mut Emitter<'_>) {
    e.flow(Stage::L2, T_L2, priority::MISS, any(), drop_packet());
}

/// `dst_mac` in subnet `key` is on this node, at `ofport`.
pub(crate) fn deliver(e: &mut Emitter<'_>, key: u32, dst_mac: MacAddr, ofport: u32) {
    let mut mm = any();
    mm.reg(REG_SUBNET, key).eth_dst(dst_mac);
    e.flow(
        Stage::L2,
        T_L2,
        priority::DELIVER,
        mm,
        apply(vec![Action::output(ofport)]),
    );
}

/// `dst_mac` in overlay subnet `key` is on the node whose tunnel endpoint is `remote`; table 31
/// adds key and option and outputs. Tunnel traffic is never sent on (no flag `FROM_TUNNEL`).
pub(crate) fn to_node(e: &mut Emitter<'_>, key: u32, dst_mac: MacAddr, remote: Ipv4Addr) {
    let mut mm = any();
    flag_clear(&mut mm, FLAG_FROM_TUNNEL);
    mm.reg(REG_SUBNET, key).eth_dst(dst_mac);
    e.flow(
        Stage::L2,
        T_L2,
        priority::TO_NODE,
        mm,
        apply_goto(vec![Action::set_field(Field::TunDst, ip(remote))], T_TUNNEL),
    );
}

/// Unknown unicast and broadcast of underlay subnet `key` go to the wire (br-int's patch port
/// to its provider network), tagged with `vlan` unless it is 0; never back to the wire they came
/// from.
pub(crate) fn to_wire(e: &mut Emitter<'_>, key: u32, vlan: u16, patch_ofport: u32) {
    let mut mm = any();
    flag_clear(&mut mm, FLAG_FROM_UPLINK);
    mm.reg(REG_SUBNET, key);
    let mut acts = Vec::new();
    if vlan != 0 {
        acts.push(Action::PushVlan(eth_type::VLAN));
        acts.push(Action::set_field(
            Field::VlanVid,
            (OFPVID_PRESENT | vlan) as u128,
        ));
    }
    acts.push(Action::output(patch_ofport));
    e.flow(Stage::L2, T_L2, priority::TO_WIRE, mm, apply(acts));
}
