//! The host side of the node port `kovs0` (Kube-OVN's `ovn0`): the node's join-subnet MAC and
//! address on the internal port, and routes to the default VPC's subnets through the join
//! gateway, so the host reaches pods (kubelet probes, kube-proxy) and pods reach the host.
//! What it should look like is the compiler's ([`NodePortIntent`]); this module makes it so.

use std::net::{IpAddr, Ipv4Addr};

use pipelines::intent::NodePortIntent;
use pipelines::tables::NODE_PORT_NAME;

use tracing::{info, warn};

use crate::observe::metrics::Metrics;
use crate::sys::netlink::{self, Address, Netlink, Route, FOREVER};

/// `proto` of the routes kovs adds, so it can find and remove its own (107 = `k`).
pub const RTPROT_KOVS: u8 = 107;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;

/// Why the node port could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// OVSDB created it a moment ago; the kernel device is not there yet.
    #[error("{NODE_PORT_NAME} does not exist yet")]
    Missing,
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    #[error("route {route}: {source}")]
    Route {
        route: String,
        source: netlink::Error,
    },
}

fn route(oif: u32, dst: Ipv4Addr, len: u8, gateway: Ipv4Addr) -> Route {
    Route {
        ipv6: false,
        dst: Some(IpAddr::V4(dst)),
        dst_len: len,
        src: None,
        src_len: 0,
        tos: 0,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_KOVS,
        scope: RT_SCOPE_UNIVERSE,
        kind: RTN_UNICAST,
        onlink: false,
        oif: Some(oif),
        gateway: Some(IpAddr::V4(gateway)),
        priority: None,
        prefsrc: None,
        nexthops: Vec::new(),
        expires: None,
        extra: Vec::new(),
    }
}

/// Brings `kovs0` to `want`: MAC, address, up, kovs's routes (stale ones removed). Returns the
/// number of changes made (0 when it already matched).
pub async fn configure(nl: &Netlink, want: &NodePortIntent) -> Result<usize, Error> {
    let Some(link) = nl.link(NODE_PORT_NAME).await? else {
        return Err(Error::Missing);
    };
    let mut changes = 0;
    if link.mac != Some(want.mac) {
        nl.set_mac(&link, want.mac).await?;
        changes += 1;
    }
    let addrs = nl.addresses(&link).await?;
    let have_ip = addrs
        .iter()
        .any(|a| a.ip == IpAddr::V4(want.ip) && a.prefix_len == want.prefix_len);
    for a in addrs.iter().filter(|a| !a.is_ipv6() && !a.is_link_local()) {
        if a.ip != IpAddr::V4(want.ip) || a.prefix_len != want.prefix_len {
            nl.del_address(&link, a).await?;
            changes += 1;
        }
    }
    if !have_ip {
        let a = Address {
            index: link.index,
            ip: IpAddr::V4(want.ip),
            prefix_len: want.prefix_len,
            peer: None,
            broadcast: None,
            label: None,
            flags: 0,
            scope: 0,
            valid_lft: FOREVER,
            preferred_lft: FOREVER,
            metric: None,
            proto: None,
        };
        nl.add_address(&link, &a, true).await?;
        changes += 1;
    }
    if !link.up {
        nl.set_up(&link, true).await?;
        changes += 1;
    }
    let existing: Vec<Route> = nl
        .routes(&link)
        .await?
        .into_iter()
        .filter(|r| r.protocol == RTPROT_KOVS && !r.ipv6)
        .collect();
    let wanted: Vec<Route> = want
        .routes
        .iter()
        .map(|(dst, len)| route(link.index, *dst, *len, want.gateway))
        .collect();
    let same = |a: &Route, b: &Route| {
        a.dst == b.dst && a.dst_len == b.dst_len && a.gateway == b.gateway && a.table == b.table
    };
    for r in &existing {
        if !wanted.iter().any(|w| same(w, r)) {
            nl.del_route(r).await?;
            changes += 1;
        }
    }
    for w in &wanted {
        if !existing.iter().any(|r| same(w, r)) {
            nl.add_route(w, true).await.map_err(|source| Error::Route {
                route: w.to_string(),
                source,
            })?;
            changes += 1;
        }
    }
    Ok(changes)
}

/// Keeps `kovs0`'s host configuration equal to what the state asks for; retried on every pass
/// of the daemon's loop until it succeeds (the port appears a moment after OVSDB creates it).
#[derive(Default)]
pub struct NodePortSync {
    applied: Option<NodePortIntent>,
    last_error: Option<String>,
}

impl NodePortSync {
    /// Brings the node port to `want` unless it was already brought there; `None`: the node
    /// has no join address (nothing is changed).
    pub async fn sync(&mut self, nl: &Netlink, want: Option<&NodePortIntent>, metrics: &Metrics) {
        if want == self.applied.as_ref() {
            return;
        }
        let Some(w) = want else {
            self.applied = None;
            return;
        };
        match configure(nl, w).await {
            Ok(n) => {
                if n > 0 {
                    info!(port = NODE_PORT_NAME, ip = %w.ip, routes = w.routes.len(), changes = n, "node port configured");
                }
                self.applied = Some(w.clone());
                self.last_error = None;
            }
            Err(e) => {
                let e = e.to_string();
                if self.last_error.as_deref() != Some(e.as_str()) {
                    warn!(port = NODE_PORT_NAME, "configuring the node port: {e}");
                    metrics.error("netlink");
                    self.last_error = Some(e);
                }
            }
        }
    }
}
