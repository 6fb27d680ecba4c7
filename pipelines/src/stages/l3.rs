//! Tables 20–23: the distributed router. Every node routes its own pods' packets.
//!
//! * 20, gateway: a packet addressed to a router port's MAC goes to routing; the rest is
//!   same-subnet traffic, on to L2.
//! * 21, routing: echo replies from router ports, routes to every routed address of the packet's
//!   VPC, drops for unknown addresses in a known subnet; u2o subnets leave by the physical
//!   gateway, the default VPC by the host; anything else is dropped.
//! * 22, route out: per destination subnet, TTL and the router's source MAC.
//! * 23, learned gateway MACs: filled by `learn` in table 10 ([`super::arp::learn_gateway`]).

use std::net::Ipv4Addr;

use flowlib::wire::oxm::{eth_type, ip_proto};
use flowlib::wire::{port, Action, Field, Subfield};
use ipnet::Ipv4Net;

use super::{any, apply, apply_goto, drop_packet, goto, ip, ip_match, mac, reg, sf, Emitter};
use crate::model::MacAddr;
use crate::tables::*;

/// Table 23's learned flows (added by the switch, with cookie 0).
pub(crate) const LEARNED_GATEWAY_MAC_PRIORITY: u16 = 100;

mod priority {
    /// Table 20.
    pub mod gateway {
        pub const TO_ROUTER: u16 = 100;
        pub const MISS: u16 = 0;
    }
    /// Table 21, highest first.
    pub mod routing {
        pub const ECHO_REPLY: u16 = 300;
        pub const TO_ADDRESS: u16 = 200;
        /// Below every address of the subnet: no such pod.
        pub const NO_SUCH_ADDRESS: u16 = 100;
        pub const TO_PHYSICAL_GATEWAY: u16 = 50;
        pub const TO_HOST: u16 = 10;
        pub const MISS: u16 = 0;
    }
    /// Table 22.
    pub mod route_out {
        pub const ENTER_SUBNET: u16 = 100;
        pub const MISS: u16 = 0;
    }
}

/// The fixed flows: same-subnet traffic passes the gateway table; routing and route-out drop
/// what no flow takes (custom VPCs have no default route).
pub(crate) fn defaults(e: &mut Emitter<'_>) {
    e.flow(
        Stage::L3,
        T_ROUTE_OUT,
        priority::route_out::MISS,
        any(),
        drop_packet(),
    );
    e.flow(
        Stage::L3,
        T_GATEWAY,
        priority::gateway::MISS,
        any(),
        goto(T_L2),
    );
    e.flow(
        Stage::L3,
        T_ROUTING,
        priority::routing::MISS,
        any(),
        drop_packet(),
    );
}

/// Table 20: packets of subnet `key` addressed to its router port go to routing.
pub(crate) fn to_router(e: &mut Emitter<'_>, key: u32, router_mac: MacAddr) {
    let mut mm = any();
    mm.reg(REG_SUBNET, key).eth_dst(router_mac);
    e.flow(
        Stage::L3,
        T_GATEWAY,
        priority::gateway::TO_ROUTER,
        mm,
        goto(T_ROUTING),
    );
}

/// Table 21: the router port `router_ip` of VPC `vpc` answers pings, out the port they came in.
pub(crate) fn echo_reply(e: &mut Emitter<'_>, vpc: u32, router_ip: Ipv4Addr) {
    let mut mm = any();
    mm.eth_type(eth_type::IPV4)
        .set(Field::IpProto, ip_proto::ICMP as u128)
        .reg(REG_VPC, vpc)
        .ipv4_dst(router_ip)
        .set(Field::IcmpType, 8);
    let actions = vec![
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
        Action::set_field(Field::Ipv4Src, ip(router_ip)),
        Action::set_field(Field::IcmpType, 0),
        Action::output(port::IN_PORT),
    ];
    e.flow(
        Stage::L3,
        T_ROUTING,
        priority::routing::ECHO_REPLY,
        mm,
        apply(actions),
    );
}

/// Table 21: the route to one address (a pod, a node port) of VPC `vpc`: its MAC and subnet
/// `key`; table 22 sets TTL and source MAC.
pub(crate) fn to_address(
    e: &mut Emitter<'_>,
    vpc: u32,
    addr: Ipv4Addr,
    addr_mac: MacAddr,
    key: u32,
) {
    let mut mm = ip_match();
    mm.reg(REG_VPC, vpc).ipv4_dst(addr);
    e.flow(
        Stage::L3,
        T_ROUTING,
        priority::routing::TO_ADDRESS,
        mm,
        apply_goto(
            vec![
                Action::set_field(Field::EthDst, mac(addr_mac)),
                reg(REG_SUBNET, key),
            ],
            T_ROUTE_OUT,
        ),
    );
}

/// Table 21: an address of subnet `cidr` (in VPC `vpc`) no route matched: there is no such pod.
pub(crate) fn no_such_address(e: &mut Emitter<'_>, vpc: u32, cidr: Ipv4Net) {
    let mut mm = ip_match();
    mm.reg(REG_VPC, vpc)
        .ipv4_dst_prefix(cidr.network(), cidr.prefix_len());
    e.flow(
        Stage::L3,
        T_ROUTING,
        priority::routing::NO_SUCH_ADDRESS,
        mm,
        drop_packet(),
    );
}

/// Table 21: traffic from u2o subnet `key` that is not for the VPC's overlay leaves by the
/// physical gateway (its MAC from table 23), from this node's MAC.
pub(crate) fn to_physical_gateway(e: &mut Emitter<'_>, key: u32, node_mac: MacAddr) {
    let mut mm = ip_match();
    mm.reg(REG_SUBNET, key);
    e.flow(
        Stage::L3,
        T_ROUTING,
        priority::routing::TO_PHYSICAL_GATEWAY,
        mm,
        apply_goto(
            vec![
                Action::DecTtl,
                Action::set_field(Field::EthSrc, mac(node_mac)),
                Action::resubmit(T_GATEWAY_MAC),
            ],
            T_L2,
        ),
    );
}

/// Table 21: the default route of VPC `vpc` (the default VPC): to this host's node port, which
/// routes or NATs it (kovs does no NAT).
pub(crate) fn to_host(
    e: &mut Emitter<'_>,
    vpc: u32,
    join_key: u32,
    join_router_mac: MacAddr,
    node_port_mac: MacAddr,
) {
    let mut mm = ip_match();
    mm.reg(REG_VPC, vpc);
    e.flow(
        Stage::L3,
        T_ROUTING,
        priority::routing::TO_HOST,
        mm,
        apply_goto(
            vec![
                Action::DecTtl,
                Action::set_field(Field::EthSrc, mac(join_router_mac)),
                Action::set_field(Field::EthDst, mac(node_port_mac)),
                reg(REG_SUBNET, join_key),
            ],
            T_L2,
        ),
    );
}

/// Table 22: routed packets enter subnet `key` from `src_mac`.
pub(crate) fn enter_subnet(e: &mut Emitter<'_>, key: u32, src_mac: MacAddr) {
    let mut mm = ip_match();
    mm.reg(REG_SUBNET, key);
    e.flow(
        Stage::L3,
        T_ROUTE_OUT,
        priority::route_out::ENTER_SUBNET,
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
