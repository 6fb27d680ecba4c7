//! br-`<pn>` table 0: a provider network's bridge is an ordinary learning switch (`NORMAL`) for
//! the node's own traffic, plus protective flows. Flows here go on that bridge, not br-int.

use std::net::Ipv4Addr;

use flowlib::wire::{port, Action, Field};

use super::{any, apply, arp_match, drop_packet, ip, Emitter};
use crate::flowset::{BridgeId, BR_INT};
use crate::tables::Stage;

/// The table provider bridges' flows are in.
const TABLE: u8 = 0;

mod priority {
    pub const PROTECT_ROUTER: u16 = 200;
    pub const NORMAL: u16 = 0;
}

/// Everything else is switched normally.
pub(crate) fn normal(e: &mut Emitter<'_>, bridge: BridgeId) {
    e.on(bridge).flow(
        Stage::Provider,
        TABLE,
        priority::NORMAL,
        any(),
        apply(vec![Action::output(port::NORMAL)]),
    );
    e.on(BR_INT);
}

/// ARP for the router port `router_ip` from the uplink is dropped (defence in depth: br-int
/// drops it too).
pub(crate) fn protect_router(
    e: &mut Emitter<'_>,
    bridge: BridgeId,
    uplink_ofport: u32,
    router_ip: Ipv4Addr,
) {
    let mut mm = arp_match();
    mm.in_port(uplink_ofport).set(Field::ArpTpa, ip(router_ip));
    e.on(bridge).flow(
        Stage::Provider,
        TABLE,
        priority::PROTECT_ROUTER,
        mm,
        drop_packet(),
    );
    e.on(BR_INT);
}
