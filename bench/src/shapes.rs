//! The flow shapes the benchmarks compare, typed (for kovs) and as ovs-ofctl text (for peers).

use std::net::Ipv4Addr;

use flowlib::wire::action::port;
use flowlib::wire::oxm::{eth_type, mac_to_u128};
use flowlib::wire::{Action, Field, Flow, Instructions, Match, Subfield};

/// Route shape: `table=20,priority=100,ip,nw_dst=X/32 actions=set_field:MAC->eth_dst,output:K`.
pub fn route(i: u32) -> Flow {
    let mut m = Match::new();
    m.eth_type(eth_type::IPV4)
        .ipv4_dst(Ipv4Addr::from(0x0a00_0000 + i));
    Flow::new(
        20,
        100,
        m,
        Instructions::apply([
            Action::set_field(Field::EthDst, mac_to_u128(mac(i))),
            Action::output(1 + i % 1000),
        ]),
    )
}

pub fn route_text(i: u32) -> String {
    let m = mac(i);
    format!(
        "table=20,priority=100,ip,nw_dst={} actions=set_field:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}->eth_dst,output:{}",
        Ipv4Addr::from(0x0a00_0000 + i),
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        1 + i % 1000
    )
}

/// The 8-action ARP responder for address `i`.
pub fn arp(i: u32) -> Flow {
    let ip = Ipv4Addr::from(0x0a00_0000 + i);
    let mut m = Match::new();
    m.eth_type(eth_type::ARP)
        .set(Field::ArpOp, 1)
        .set(Field::ArpTpa, u32::from(ip) as u128);
    let w = Subfield::whole;
    Flow::new(
        10,
        100,
        m,
        Instructions::apply([
            Action::move_(w(Field::EthSrc), w(Field::EthDst)),
            Action::set_field(Field::EthSrc, mac_to_u128(mac(i))),
            Action::load(w(Field::ArpOp), 2),
            Action::move_(w(Field::ArpSha), w(Field::ArpTha)),
            Action::set_field(Field::ArpSha, mac_to_u128(mac(i))),
            Action::move_(w(Field::ArpSpa), w(Field::ArpTpa)),
            Action::set_field(Field::ArpSpa, u32::from(ip) as u128),
            Action::output(port::IN_PORT),
        ]),
    )
}

pub fn arp_text(i: u32) -> String {
    // flowlib's Display is ovs-ofctl syntax (checked by the differential tests).
    let f = arp(i);
    format!(
        "table={}, {}",
        f.table,
        f.to_string().trim_start_matches("table=10, ")
    )
}

pub fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0xee, b[0], b[1], b[2], b[3]]
}
