//! Table 0: classifier and spoof guard. A packet entering br-int gets its registers here: where it
//! came from (`reg0`), its VPC (`reg1`), the subnet it is on (`reg2`) and entered on (`reg3`).
//! IP from a local port goes on to the gateway table, ARP to the ARP table, tunnel and wire
//! traffic (already routed by its sender) straight to L2; anything not classified is dropped.

use flowlib::wire::oxm::OFPVID_PRESENT;
use flowlib::wire::{Action, Field, Match, Subfield};

use super::{any, apply_goto, arp_match, drop_packet, ip, ip_match, mac, reg, Emitter};
use crate::model::MacAddr;
use crate::tables::*;
use std::net::Ipv4Addr;

mod priority {
    /// Traffic of a known port, tunnel key or VLAN.
    pub const CLASSIFY: u16 = 200;
    /// Anything else from a local port: a spoofed MAC or IP, or a protocol the port may not send.
    pub const PORT_DROP: u16 = 100;
    pub const MISS: u16 = 0;
}

/// Unclassified traffic is dropped.
pub(crate) fn miss(e: &mut Emitter<'_>) {
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        priority::MISS,
        any(),
        drop_packet(),
    );
}

/// A pod's port: only the pod's own MAC and IP pass (spoof guard).
pub(crate) fn pod_port(
    e: &mut Emitter<'_>,
    ofport: u32,
    key: u32,
    vpc: u32,
    pod_mac: MacAddr,
    pod_ip: Ipv4Addr,
) {
    let regs = vec![
        reg(REG_FLAGS, FLAG_FROM_LOCAL),
        reg(REG_VPC, vpc),
        reg(REG_SUBNET, key),
        reg(REG_SRC_SUBNET, key),
    ];
    let mut ipm = ip_match();
    ipm.eth_src(pod_mac).ipv4_src(pod_ip);
    let mut arpm = arp_match();
    arpm.eth_src(pod_mac)
        .set(Field::ArpSpa, ip(pod_ip))
        .set(Field::ArpSha, mac(pod_mac));
    local_port(e, ofport, regs, ipm, arpm);
}

/// The node port (`kovs0`), in the join subnet: the host may use any address.
pub(crate) fn node_port(e: &mut Emitter<'_>, ofport: u32, join_key: u32, join_vpc: u32) {
    let regs = vec![
        reg(REG_FLAGS, FLAG_FROM_LOCAL),
        reg(REG_VPC, join_vpc),
        reg(REG_SUBNET, join_key),
        reg(REG_SRC_SUBNET, join_key),
    ];
    local_port(e, ofport, regs, ip_match(), arp_match());
}

/// A local port's flows: IP and ARP matching `ip_m`/`arp_m` are classified with `regs`
/// (IP on to the gateway table, ARP to the ARP table); anything else from the port is dropped.
fn local_port(
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
        priority::CLASSIFY,
        ip_m,
        apply_goto(regs.clone(), T_GATEWAY),
    );
    arp_m.in_port(ofport);
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        priority::CLASSIFY,
        arp_m,
        apply_goto(regs, T_ARP),
    );
    let mut mm = any();
    mm.in_port(ofport);
    e.flow(
        Stage::Classifier,
        T_CLASSIFY,
        priority::PORT_DROP,
        mm,
        drop_packet(),
    );
}

/// Traffic for subnet `key` arriving by tunnel: delivered locally (table 30). With
/// `source_in_option` (Geneve) the sender's source subnet key comes from the tunnel option;
/// otherwise it is taken to be `key`.
pub(crate) fn from_tunnel(
    e: &mut Emitter<'_>,
    tunnel_ofport: u32,
    key: u32,
    vpc: u32,
    source_in_option: bool,
) {
    let mut mm = any();
    mm.in_port(tunnel_ofport).tun_id(key as u64);
    let mut acts = vec![
        reg(REG_FLAGS, FLAG_FROM_TUNNEL),
        reg(REG_VPC, vpc),
        reg(REG_SUBNET, key),
    ];
    if source_in_option {
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
        priority::CLASSIFY,
        mm,
        apply_goto(acts, T_L2),
    );
}

/// Traffic of underlay subnet `key` from the wire (br-int's patch port to its provider network),
/// by VLAN (untagged for VLAN 0): ARP to the ARP table, IP to L2. Frames with any other tag match
/// nothing and are dropped.
pub(crate) fn from_wire(e: &mut Emitter<'_>, patch_ofport: u32, vlan: u16, key: u32, vpc: u32) {
    for (is_arp, next) in [(true, T_ARP), (false, T_L2)] {
        let mut mm = if is_arp { arp_match() } else { ip_match() };
        mm.in_port(patch_ofport);
        let mut acts = Vec::new();
        if vlan == 0 {
            mm.set_masked(Field::VlanVid, 0, 0x1fff);
        } else {
            mm.set(Field::VlanVid, (OFPVID_PRESENT | vlan) as u128);
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
            priority::CLASSIFY,
            mm,
            apply_goto(acts, next),
        );
    }
}
