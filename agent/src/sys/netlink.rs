//! rtnetlink for the node's own interfaces: links, addresses and routes. This is the one
//! module of the agent that talks rtnetlink (the provider-network code moves a NIC's
//! configuration onto its OVS bridge with it; nothing runs `ip`).
//!
//! Everything happens in the network namespace of the thread that called
//! [`Netlink::connect`]: the socket is bound there; [`Netlink::connect_in`] binds it in another
//! namespace (a container's) without moving the caller. Host-side veths are in
//! [`super::veth`], a container's interface in [`super::container`].
//!
//! The types keep what moving a NIC's configuration needs to be exact: addresses with their
//! flags, scope, label, broadcast/peer, prefix-route metric and remaining lifetimes; routes of
//! every table with gateway, metric, scope, protocol, type, preferred source, `onlink`,
//! multipath next hops, expiry and the remaining attributes (metrics such as `mtu`, IPv6
//! `pref`, `via`, encapsulation) carried along as read.
//!
//! Every write (netlink request that changes something, and the IPv6 sysctl) is counted:
//! [`Netlink::writes`] lets callers and tests check that a reconcile with nothing to do changes
//! nothing. Errors name the link, address or route concerned.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::netns::{in_netns, NetnsFile};
use futures::StreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHop, RouteNextHopFlags,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{
    Emitable, NetlinkMessage, NetlinkPayload, Parseable, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};

/// An Ethernet address.
pub type Mac = [u8; 6];

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_to_string(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Lifetime value meaning "forever" (`ip` prints `forever`).
pub const FOREVER: u32 = u32::MAX;

/// `RT_TABLE_MAIN` and `RT_TABLE_LOCAL`.
pub const TABLE_MAIN: u32 = 254;
pub const TABLE_LOCAL: u32 = 255;

/// `RTPROT_KERNEL`: routes the kernel derives from addresses (prefix, local, broadcast,
/// IPv6 `fe80::/64` and multicast routes). They follow their address and are never copied.
pub const PROTO_KERNEL: u8 = 2;

/// `RT_SCOPE_*`.
pub const SCOPE_UNIVERSE: u8 = 0;
pub const SCOPE_SITE: u8 = 200;
pub const SCOPE_LINK: u8 = 253;
pub const SCOPE_HOST: u8 = 254;

/// `IFA_F_*` a caller may set when adding an address; the others (`secondary`, `permanent`,
/// `tentative`, `deprecated`, `dadfailed`, ...) are state the kernel keeps.
pub const IFA_F_NODAD: u32 = 0x02;
const SETTABLE_ADDR_FLAGS: u32 = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400;

/// Everything that can go wrong; the message names what was being done to what.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open an rtnetlink socket: {0}")]
    Socket(#[source] io::Error),
    /// A network namespace given by path that is missing, is not one, or cannot be entered.
    #[error("network namespace {path} {what}: {source}", path = path.display())]
    Netns {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// An interface name the kernel would refuse (empty, longer than 15 bytes, `/`, blanks).
    #[error("invalid interface name {0:?}")]
    BadName(String),
    /// A link that must exist (in the namespace `netns`, "this namespace" for the caller's).
    #[error("link {name} not found in {netns}")]
    NoLink { name: String, netns: String },
    /// A link that exists but is not of the kind an operation is for (e.g. deleting a
    /// pod's host veth finds something else under that name).
    #[error("link {name} in {netns} is {found}, not a {expected}")]
    WrongKind {
        name: String,
        netns: String,
        found: String,
        expected: &'static str,
    },
    /// A container interface that is not as expected (CNI CHECK); every difference is listed.
    #[error("interface {link} in {netns}: {}", mismatches.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("; "))]
    Check {
        link: String,
        netns: String,
        mismatches: Vec<super::container::Mismatch>,
    },
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A record made by `to_hex` ([`Address::to_hex`], [`Route::to_hex`]) that does not
    /// decode: not hex, not an rtnetlink message, or one lacking what kovs needs.
    #[error("bad {kind} record {record:?}: {reason}")]
    BadRecord {
        kind: &'static str,
        record: String,
        reason: String,
    },
}

impl Error {
    pub(super) fn request(what: impl Into<String>, source: io::Error) -> Error {
        Error::Request {
            what: what.into(),
            source,
        }
    }

    /// The errno the kernel answered with, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Socket(e)
            | Error::Request { source: e, .. }
            | Error::Netns { source: e, .. } => e.raw_os_error(),
            Error::BadRecord { .. }
            | Error::BadName(_)
            | Error::NoLink { .. }
            | Error::WrongKind { .. }
            | Error::Check { .. } => None,
        }
    }
}

/// A network interface as `ip link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// ARP on (no `IFF_NOARP`).
    pub arp: bool,
    pub promisc: bool,
    /// `IFLA_MASTER`: the bridge, bond or `ovs-system` it is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_INFO_KIND`: `veth`, `tun`, `openvswitch`, `vlan`, ... (None for plain NICs).
    pub kind: Option<String>,
    /// `IFLA_OPERSTATE` as `ip` prints it (`UP`, `DOWN`, `UNKNOWN`, ...).
    pub oper_state: String,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (#{})", self.name, self.index)
    }
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            arp: !msg.header.flags.contains(LinkFlags::Noarp),
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            master: None,
            kind: None,
            oper_state: String::new(),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(a);
                    link.mac = Some(mac);
                }
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
                LinkAttribute::OperState(s) => link.oper_state = s.to_string(),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            link.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// An IPv4 or IPv6 address of a link, as `ip addr` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The link it was read from.
    pub index: u32,
    /// The local address (`IFA_LOCAL`, or `IFA_ADDRESS` when there is no peer).
    pub ip: IpAddr,
    pub prefix_len: u8,
    /// Point-to-point peer (`peer` in `ip addr`).
    pub peer: Option<IpAddr>,
    pub broadcast: Option<Ipv4Addr>,
    pub label: Option<String>,
    /// `IFA_F_*` (all 32 bits of `IFA_FLAGS` when present).
    pub flags: u32,
    pub scope: u8,
    /// Seconds left, [`FOREVER`] for permanent addresses.
    pub valid_lft: u32,
    pub preferred_lft: u32,
    /// Metric of the address's prefix route (`ip addr add ... metric N`).
    pub metric: Option<u32>,
    /// `IFA_PROTO` (who added it), when set.
    pub proto: Option<u8>,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)?;
        if let Some(p) = self.peer {
            write!(f, " peer {p}")?;
        }
        Ok(())
    }
}

impl Address {
    pub fn is_ipv6(&self) -> bool {
        self.ip.is_ipv6()
    }

    /// 169.254.0.0/16 or fe80::/10: never moved (the kernel and each link own these).
    pub fn is_link_local(&self) -> bool {
        match self.ip {
            IpAddr::V4(a) => a.is_link_local(),
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        }
    }

    /// Same address (local, prefix length and peer), wherever it is and whatever its state.
    pub fn same_as(&self, other: &Address) -> bool {
        self.ip == other.ip && self.prefix_len == other.prefix_len && self.peer == other.peer
    }

    /// The flags that can be given when adding it again.
    pub fn settable_flags(&self) -> u32 {
        self.flags & SETTABLE_ADDR_FLAGS
    }

    /// The RTM_NEWADDR message that adds this address to link `index`: settable flags,
    /// label, broadcast/peer, prefix-route metric, protocol and the remaining lifetimes.
    fn to_message(&self, index: u32) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::from(self.ip);
        msg.header.prefix_len = self.prefix_len;
        msg.header.scope = self.scope.into();
        msg.header.index = index;
        let flags = self.settable_flags();
        msg.header.flags = AddressHeaderFlags::from_bits_retain((flags & 0xff) as u8);
        match self.peer {
            Some(peer) => {
                msg.attributes.push(AddressAttribute::Local(self.ip));
                msg.attributes.push(AddressAttribute::Address(peer));
            }
            None => {
                if self.ip.is_ipv4() {
                    msg.attributes.push(AddressAttribute::Local(self.ip));
                }
                msg.attributes.push(AddressAttribute::Address(self.ip));
            }
        }
        if let Some(b) = self.broadcast {
            msg.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = &self.label {
            msg.attributes.push(AddressAttribute::Label(l.clone()));
        }
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                flags,
            )));
        if self.valid_lft != FOREVER || self.preferred_lft != FOREVER {
            let mut ci = CacheInfo::default();
            ci.ifa_valid = self.valid_lft.max(1);
            ci.ifa_preferred = self.preferred_lft.min(ci.ifa_valid);
            msg.attributes.push(AddressAttribute::CacheInfo(ci));
        }
        if let Some(m) = self.metric {
            msg.attributes.push(AddressAttribute::RoutePriority(m));
        }
        if let Some(p) = self.proto {
            msg.attributes.push(AddressAttribute::Protocol(p.into()));
        }
        msg
    }

    fn from_message(msg: &AddressMessage) -> Option<Address> {
        if !matches!(
            msg.header.family,
            AddressFamily::Inet | AddressFamily::Inet6
        ) {
            return None;
        }
        let mut address = None;
        let mut local = None;
        let mut a = Address {
            index: msg.header.index,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix_len: msg.header.prefix_len,
            peer: None,
            broadcast: None,
            label: None,
            flags: u32::from(msg.header.flags.bits()),
            scope: msg.header.scope.into(),
            valid_lft: FOREVER,
            preferred_lft: FOREVER,
            metric: None,
            proto: None,
        };
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Label(l) => a.label = Some(l.clone()),
                AddressAttribute::Broadcast(b) => a.broadcast = Some(*b),
                AddressAttribute::Flags(f) => a.flags = f.bits(),
                AddressAttribute::CacheInfo(ci) => {
                    a.valid_lft = ci.ifa_valid;
                    a.preferred_lft = ci.ifa_preferred;
                }
                AddressAttribute::RoutePriority(m) => a.metric = Some(*m),
                AddressAttribute::Protocol(p) => a.proto = Some((*p).into()),
                _ => {}
            }
        }
        match (local, address) {
            (Some(l), Some(ad)) => {
                a.ip = l;
                a.peer = (l != ad).then_some(ad);
            }
            (Some(ip), None) | (None, Some(ip)) => a.ip = ip,
            (None, None) => return None,
        }
        Some(a)
    }

    /// The address as a hex-encoded RTM_NEWADDR payload (for records kept outside the
    /// kernel, e.g. in OVSDB); [`Address::from_hex`] reads it back.
    pub fn to_hex(&self) -> String {
        let msg = self.to_message(self.index);
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        hex(&buf)
    }

    pub fn from_hex(s: &str) -> Result<Address, Error> {
        let bad = |reason: String| Error::BadRecord {
            kind: "address",
            record: s.to_string(),
            reason,
        };
        let bytes = unhex(s).ok_or_else(|| bad("not hex".into()))?;
        let msg = AddressMessage::parse(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
        Address::from_message(&msg).ok_or_else(|| bad("incomplete".into()))
    }
}

/// One next hop of a multipath route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    pub oif: u32,
    pub gateway: Option<IpAddr>,
    /// `weight` as `ip` prints it (the kernel's `rtnh_hops` + 1).
    pub weight: u16,
    pub onlink: bool,
    /// Other next-hop attributes, replayed as read.
    pub extra: Vec<RouteAttribute>,
}

/// A route (any table, IPv4 or IPv6), as `ip route show table all` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub ipv6: bool,
    /// Destination; `None` with `dst_len` 0 is the default route.
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    /// Source prefix (`from`, IPv6 source routing).
    pub src: Option<IpAddr>,
    pub src_len: u8,
    pub tos: u8,
    pub table: u32,
    /// `RTPROT_*` (`proto` in `ip route`): 2 kernel, 3 boot, 4 static, 16 dhcp, ...
    pub protocol: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `RTN_*`: 1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable, ...
    pub kind: u8,
    pub onlink: bool,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// The metric (`RTA_PRIORITY`).
    pub priority: Option<u32>,
    pub prefsrc: Option<IpAddr>,
    pub nexthops: Vec<NextHop>,
    /// Seconds until it expires (IPv6 routes learnt from router advertisements).
    pub expires: Option<u32>,
    /// Other attributes, replayed as read: metrics (`mtu`, `advmss`, ...), IPv6 `pref`,
    /// `via`, realms, encapsulation.
    pub extra: Vec<RouteAttribute>,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dst {
            Some(d) if self.dst_len > 0 => write!(f, "{d}/{}", self.dst_len)?,
            _ => f.write_str("default")?,
        }
        if let Some(s) = self.src {
            write!(f, " from {s}/{}", self.src_len)?;
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(o) = self.oif {
            write!(f, " dev #{o}")?;
        }
        for nh in &self.nexthops {
            write!(f, " nexthop")?;
            if let Some(g) = nh.gateway {
                write!(f, " via {g}")?;
            }
            write!(f, " dev #{} weight {}", nh.oif, nh.weight)?;
        }
        match self.table {
            TABLE_MAIN => f.write_str(" table main")?,
            TABLE_LOCAL => f.write_str(" table local")?,
            t => write!(f, " table {t}")?,
        }
        if let Some(m) = self.priority {
            write!(f, " metric {m}")?;
        }
        if let Some(p) = self.prefsrc {
            write!(f, " src {p}")?;
        }
        write!(f, " proto {} scope {}", self.protocol, self.scope)?;
        if self.kind != 1 {
            write!(f, " type {}", self.kind)?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

impl Route {
    /// Derived from an address by the kernel (`proto kernel`).
    pub fn is_kernel(&self) -> bool {
        self.protocol == PROTO_KERNEL
    }

    /// Goes out through link `index` (directly or as one of its next hops).
    pub fn uses_link(&self, index: u32) -> bool {
        self.oif == Some(index) || self.nexthops.iter().any(|nh| nh.oif == index)
    }

    /// A copy going through link `to` wherever this one went through `from`.
    pub fn moved(&self, from: u32, to: u32) -> Route {
        let mut r = self.clone();
        if r.oif == Some(from) {
            r.oif = Some(to);
        }
        for nh in &mut r.nexthops {
            if nh.oif == from {
                nh.oif = to;
            }
        }
        r
    }

    /// The kernel's identity of a route in its table: two routes with the same key cannot
    /// coexist unless appended (IPv4) or multipath (IPv6); `replace` swaps one for the other.
    pub fn same_key(&self, other: &Route) -> bool {
        self.ipv6 == other.ipv6
            && self.table == other.table
            && self.dst_len == other.dst_len
            && self.dst == other.dst
            && self.src_len == other.src_len
            && self.src == other.src
            && self.tos == other.tos
            && self.priority.unwrap_or(0) == other.priority.unwrap_or(0)
    }

    /// Same key and the same way out (link, gateway, next hops).
    pub fn same_path(&self, other: &Route) -> bool {
        self.same_key(other)
            && self.kind == other.kind
            && self.oif == other.oif
            && self.gateway == other.gateway
            && self.nexthops.len() == other.nexthops.len()
            && self
                .nexthops
                .iter()
                .zip(&other.nexthops)
                .all(|(a, b)| a.oif == b.oif && a.gateway == b.gateway)
    }

    /// A destination in 169.254.0.0/16 or fe80::/10 reached without a gateway: each link has
    /// its own (Kube-OVN does not move them either).
    pub fn is_link_local_direct(&self) -> bool {
        if self.gateway.is_some() || !self.nexthops.is_empty() || self.dst_len == 0 {
            return false;
        }
        match self.dst {
            Some(IpAddr::V4(a)) => a.is_link_local(),
            Some(IpAddr::V6(a)) => (a.segments()[0] & 0xffc0) == 0xfe80,
            None => false,
        }
    }

    pub(super) fn to_message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let h = &mut msg.header;
        h.address_family = if self.ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        h.destination_prefix_length = self.dst_len;
        h.source_prefix_length = self.src_len;
        h.tos = self.tos;
        h.table = if self.table < 256 {
            self.table as u8
        } else {
            0
        };
        h.protocol = self.protocol.into();
        h.scope = self.scope.into();
        h.kind = self.kind.into();
        if self.onlink {
            h.flags = RouteFlags::Onlink;
        }
        let a = &mut msg.attributes;
        a.push(RouteAttribute::Table(self.table));
        if let Some(d) = self.dst {
            a.push(RouteAttribute::Destination(RouteAddress::from(d)));
        }
        if let Some(s) = self.src {
            a.push(RouteAttribute::Source(RouteAddress::from(s)));
        }
        if let Some(o) = self.oif {
            a.push(RouteAttribute::Oif(o));
        }
        if let Some(g) = self.gateway {
            a.push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        if let Some(p) = self.priority {
            a.push(RouteAttribute::Priority(p));
        }
        if let Some(p) = self.prefsrc {
            a.push(RouteAttribute::PrefSource(RouteAddress::from(p)));
        }
        if !self.nexthops.is_empty() {
            let hops = self
                .nexthops
                .iter()
                .map(|nh| {
                    let mut h = RouteNextHop::default();
                    h.interface_index = nh.oif;
                    h.hops = nh.weight.saturating_sub(1).min(255) as u8;
                    if nh.onlink {
                        h.flags = RouteNextHopFlags::Onlink;
                    }
                    if let Some(g) = nh.gateway {
                        h.attributes
                            .push(RouteAttribute::Gateway(RouteAddress::from(g)));
                    }
                    h.attributes.extend(nh.extra.iter().cloned());
                    h
                })
                .collect();
            a.push(RouteAttribute::MultiPath(hops));
        }
        if let Some(e) = self.expires {
            a.push(RouteAttribute::Expires(e));
        }
        a.extend(self.extra.iter().cloned());
        msg
    }

    fn from_message(msg: &RouteMessage) -> Option<Route> {
        let ipv6 = match msg.header.address_family {
            AddressFamily::Inet => false,
            AddressFamily::Inet6 => true,
            _ => return None,
        };
        let h = &msg.header;
        let mut r = Route {
            ipv6,
            dst: None,
            dst_len: h.destination_prefix_length,
            src: None,
            src_len: h.source_prefix_length,
            tos: h.tos,
            table: u32::from(h.table),
            protocol: h.protocol.into(),
            scope: h.scope.into(),
            kind: h.kind.into(),
            onlink: h.flags.contains(RouteFlags::Onlink),
            oif: None,
            gateway: None,
            priority: None,
            prefsrc: None,
            nexthops: Vec::new(),
            expires: None,
            extra: Vec::new(),
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Destination(a) => r.dst = ip_of(a),
                RouteAttribute::Source(a) => r.src = ip_of(a),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::Gateway(a) => r.gateway = ip_of(a),
                RouteAttribute::Priority(p) => r.priority = Some(*p),
                RouteAttribute::PrefSource(a) => r.prefsrc = ip_of(a),
                RouteAttribute::Expires(e) => r.expires = Some(*e),
                RouteAttribute::CacheInfo(ci) if ci.expires > 0 => {
                    // rta_expires is in clock ticks (USER_HZ).
                    r.expires = Some((ci.expires as u64 / clock_ticks()).max(1) as u32);
                }
                RouteAttribute::MultiPath(hops) => {
                    for h in hops {
                        let mut nh = NextHop {
                            oif: h.interface_index,
                            gateway: None,
                            weight: u16::from(h.hops) + 1,
                            onlink: h.flags.contains(RouteNextHopFlags::Onlink),
                            extra: Vec::new(),
                        };
                        for a in &h.attributes {
                            match a {
                                RouteAttribute::Gateway(g) => nh.gateway = ip_of(g),
                                other if replayable(other) => nh.extra.push(other.clone()),
                                _ => {}
                            }
                        }
                        r.nexthops.push(nh);
                    }
                }
                other if replayable(other) => r.extra.push(other.clone()),
                _ => {}
            }
        }
        Some(r)
    }

    /// The route as a hex-encoded RTM_NEWROUTE payload (for records kept outside the kernel);
    /// [`Route::from_hex`] reads it back.
    pub fn to_hex(&self) -> String {
        let msg = self.to_message();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        hex(&buf)
    }

    pub fn from_hex(s: &str) -> Result<Route, Error> {
        let bad = |reason: String| Error::BadRecord {
            kind: "route",
            record: s.to_string(),
            reason,
        };
        let bytes = unhex(s).ok_or_else(|| bad("not hex".into()))?;
        let msg = RouteMessage::parse(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
        Route::from_message(&msg).ok_or_else(|| bad("incomplete".into()))
    }
}

/// Attributes worth sending back when re-adding a route (the rest are read-only state,
/// the fields of [`Route`], or request-only).
fn replayable(a: &RouteAttribute) -> bool {
    matches!(
        a,
        RouteAttribute::Metrics(_)
            | RouteAttribute::Preference(_)
            | RouteAttribute::Via(_)
            | RouteAttribute::Realm(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Encap(_)
            | RouteAttribute::NewDestination(_)
            | RouteAttribute::TtlPropagate(_)
    )
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Aborts the connection task when the last [`Netlink`] clone goes away.
#[derive(Debug)]
struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A handle on the rtnetlink socket; cheap to clone (clones share the socket and the write
/// counter).
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    writes: Arc<AtomicU64>,
    /// The namespace of [`Netlink::connect_in`]; None: the one `connect` was called in.
    netns: Option<Arc<NetnsFile>>,
    _task: Arc<ConnTask>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns.as_ref().map(|n| n.path()))
            .field("writes", &self.writes())
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens the socket in the calling thread's network namespace and spawns its task on the
    /// current tokio runtime (panics outside one, like `tokio::spawn`).
    pub fn connect() -> Result<Netlink, Error> {
        let (conn, handle, _messages) = rtnetlink::new_connection().map_err(Error::Socket)?;
        let task = tokio::spawn(conn);
        Ok(Netlink {
            handle,
            writes: Arc::new(AtomicU64::new(0)),
            netns: None,
            _task: Arc::new(ConnTask(task)),
        })
    }

    /// Opens the socket inside the network namespace `netns` (a file such as
    /// `/var/run/netns/NAME` or `/proc/PID/ns/net`), from a short-lived thread that enters it;
    /// the caller's thread stays where it is. The connection task runs on the current tokio
    /// runtime (an error outside one). Everything this handle does (links, addresses, routes,
    /// the IPv6 sysctl, gratuitous ARPs) happens in that namespace, which it keeps open.
    pub fn connect_in(netns: &Path) -> Result<Netlink, Error> {
        let ns = Arc::new(NetnsFile::open(netns)?);
        let rt = tokio::runtime::Handle::try_current().map_err(|e| Error::Netns {
            path: netns.to_path_buf(),
            what: "needs a tokio runtime for its rtnetlink connection",
            source: io::Error::other(e),
        })?;
        let (conn, handle, _messages) = in_netns(Some(&ns), || {
            // The socket registers with the runtime's reactor when it is made.
            let _entered = rt.enter();
            rtnetlink::new_connection().map_err(|source| Error::Netns {
                path: netns.to_path_buf(),
                what: "refused an rtnetlink socket",
                source,
            })
        })?;
        let task = rt.spawn(conn);
        Ok(Netlink {
            handle,
            writes: Arc::new(AtomicU64::new(0)),
            netns: Some(ns),
            _task: Arc::new(ConnTask(task)),
        })
    }

    /// The namespace given to [`Netlink::connect_in`]; None for [`Netlink::connect`].
    pub fn netns(&self) -> Option<&NetnsFile> {
        self.netns.as_deref()
    }

    /// The namespace for messages: its path, or "this namespace".
    pub(super) fn netns_name(&self) -> String {
        match &self.netns {
            Some(ns) => ns.to_string(),
            None => "this namespace".to_string(),
        }
    }

    pub(super) fn netns_arc(&self) -> Option<&Arc<NetnsFile>> {
        self.netns.as_ref()
    }

    pub(super) fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// How many changes this handle (and its clones) asked the kernel for.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Sends one request and collects the messages of the answer; an error answer becomes
    /// the io::Error of its errno.
    pub(super) async fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut stream = self
            .handle
            .clone()
            .request(req)
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))?;
        let mut out = Vec::new();
        while let Some(m) = stream.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(i) => out.push(i),
                NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                _ => {}
            }
        }
        Ok(out)
    }

    /// A request that changes something (counted), acknowledged.
    pub(super) async fn write(&self, msg: RouteNetlinkMessage, extra_flags: u16) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.request(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags)
            .await
            .map(|_| ())
    }

    // ---- links ----------------------------------------------------------------------------

    /// The link named `name` (its primary name, not an altname), None if there is none.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, Error> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self
            .request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)
            .await
        {
            Ok(msgs) => Ok(first_link(&msgs).filter(|l| l.name == name)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(Error::request(format!("looking up link {name}"), e)),
        }
    }

    /// The link with this index, None if there is none.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self
            .request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)
            .await
        {
            Ok(msgs) => Ok(first_link(&msgs)),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(Error::request(format!("looking up link #{index}"), e)),
        }
    }

    pub(super) async fn set_link(
        &self,
        link: &Link,
        what: String,
        f: impl FnOnce(&mut LinkMessage),
    ) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        f(&mut msg);
        self.write(RouteNetlinkMessage::NewLink(msg), 0)
            .await
            .map_err(|e| Error::request(format!("{what} of link {link}"), e))
    }

    /// `ip link set LINK address MAC`.
    pub async fn set_mac(&self, link: &Link, mac: Mac) -> Result<(), Error> {
        self.set_link(link, format!("setting MAC {}", mac_to_string(&mac)), |m| {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()))
        })
        .await
    }

    /// `ip link set LINK mtu MTU`.
    pub async fn set_mtu(&self, link: &Link, mtu: u32) -> Result<(), Error> {
        self.set_link(link, format!("setting MTU {mtu}"), |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu))
        })
        .await
    }

    /// `ip link set LINK up|down`.
    pub async fn set_up(&self, link: &Link, up: bool) -> Result<(), Error> {
        let what = if up { "bringing up" } else { "bringing down" };
        self.set_link(link, what.to_string(), |m| {
            m.header.change_mask = LinkFlags::Up;
            if up {
                m.header.flags = LinkFlags::Up;
            }
        })
        .await
    }

    /// `ip link set LINK arp on|off`.
    pub async fn set_arp(&self, link: &Link, on: bool) -> Result<(), Error> {
        let what = if on {
            "turning ARP on"
        } else {
            "turning ARP off"
        };
        self.set_link(link, what.to_string(), |m| {
            m.header.change_mask = LinkFlags::Noarp;
            if !on {
                m.header.flags = LinkFlags::Noarp;
            }
        })
        .await
    }

    /// `ip link set LINK name NEW` (the kernel refuses while the link is up).
    pub async fn rename(&self, link: &Link, new_name: &str) -> Result<(), Error> {
        self.set_link(link, format!("renaming to {new_name}"), |m| {
            m.attributes
                .push(LinkAttribute::IfName(new_name.to_string()))
        })
        .await
    }

    // ---- addresses ------------------------------------------------------------------------

    /// The IPv4 and IPv6 addresses of a link, in the kernel's order (IPv4 primaries before
    /// their secondaries).
    pub async fn addresses(&self, link: &Link) -> Result<Vec<Address>, Error> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|e| Error::request(format!("listing addresses of link {link}"), e))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == link.index => {
                    Address::from_message(a)
                }
                _ => None,
            })
            .collect())
    }

    /// Adds `addr` (its settable flags, label, lifetimes, ...) to `link`; with `replace`,
    /// an existing copy is updated instead of failing with EEXIST.
    pub async fn add_address(
        &self,
        link: &Link,
        addr: &Address,
        replace: bool,
    ) -> Result<(), Error> {
        let mode = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.write(
            RouteNetlinkMessage::NewAddress(addr.to_message(link.index)),
            NLM_F_CREATE | mode,
        )
        .await
        .map_err(|e| Error::request(format!("adding address {addr} to link {link}"), e))
    }

    /// Removes `addr` from `link`; `Ok(false)` if it was not there.
    pub async fn del_address(&self, link: &Link, addr: &Address) -> Result<bool, Error> {
        let mut msg = addr.to_message(link.index);
        msg.attributes
            .retain(|a| matches!(a, AddressAttribute::Local(_) | AddressAttribute::Address(_)));
        match self.write(RouteNetlinkMessage::DelAddress(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(Error::request(
                format!("removing address {addr} from link {link}"),
                e,
            )),
        }
    }

    // ---- routes ---------------------------------------------------------------------------

    /// Every IPv4 and IPv6 route of every table (main, local, and numbered ones).
    pub async fn all_routes(&self) -> Result<Vec<Route>, Error> {
        let msgs = self
            .request(
                RouteNetlinkMessage::GetRoute(RouteMessage::default()),
                NLM_F_REQUEST | NLM_F_DUMP,
            )
            .await
            .map_err(|e| Error::request("listing routes", e))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Route::from_message(r),
                _ => None,
            })
            .collect())
    }

    /// The routes (all tables, both families, default routes included) that go out
    /// through `link`, directly or as a multipath next hop.
    pub async fn routes(&self, link: &Link) -> Result<Vec<Route>, Error> {
        Ok(self
            .all_routes()
            .await
            .map_err(|e| match e {
                Error::Request { source, .. } => {
                    Error::request(format!("listing routes through link {link}"), source)
                }
                other => other,
            })?
            .into_iter()
            .filter(|r| r.uses_link(link.index))
            .collect())
    }

    /// Adds a route; with `replace`, a route with the same key (table, destination, tos,
    /// metric) is swapped for it, whichever link it used (`ip route replace`).
    pub async fn add_route(&self, route: &Route, replace: bool) -> Result<(), Error> {
        let mode = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.write(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | mode,
        )
        .await
        .map_err(|e| Error::request(format!("adding route {route}"), e))
    }

    /// Deletes a route; `Ok(false)` if there was no such route.
    pub async fn del_route(&self, route: &Route) -> Result<bool, Error> {
        let mut r = route.clone();
        r.expires = None;
        match self
            .write(RouteNetlinkMessage::DelRoute(r.to_message()), 0)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(Error::request(format!("deleting route {route}"), e)),
        }
    }

    // ---- IPv6 sysctl ----------------------------------------------------------------------

    /// `net.ipv6.conf.<link>.disable_ipv6`, None when the kernel has no IPv6 for it.
    pub fn ipv6_disabled(&self, link: &Link) -> Result<Option<bool>, Error> {
        // /proc/sys/net shows the namespace of the thread that opens it.
        let path = disable_ipv6_path(&link.name);
        match in_netns(self.netns(), || {
            std::fs::read_to_string(&path).map_err(Error::Socket)
        }) {
            Ok(s) => Ok(Some(s.trim() == "1")),
            Err(Error::Socket(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(Error::Socket(e)) => Err(Error::request(
                format!("reading disable_ipv6 of link {link}"),
                e,
            )),
            Err(e) => Err(e),
        }
    }

    /// Sets `net.ipv6.conf.<link>.disable_ipv6` (disabling drops the link's IPv6
    /// addresses, its link-local one included; enabling regenerates the link-local one).
    pub fn set_ipv6_disabled(&self, link: &Link, disabled: bool) -> Result<(), Error> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let path = disable_ipv6_path(&link.name);
        in_netns(self.netns(), || {
            std::fs::write(&path, if disabled { "1" } else { "0" }).map_err(|e| {
                Error::request(
                    format!("setting disable_ipv6={} on link {link}", u8::from(disabled)),
                    e,
                )
            })
        })
    }
}

fn disable_ipv6_path(name: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
}

pub(super) fn first_link(msgs: &[RouteNetlinkMessage]) -> Option<Link> {
    msgs.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:AB:cd:0e:f0:01").unwrap();
        assert_eq!(m, [0x02, 0xab, 0xcd, 0x0e, 0xf0, 0x01]);
        assert_eq!(mac_to_string(&m), "02:ab:cd:0e:f0:01");
        assert_eq!(parse_mac("02:ab:cd:0e:f0"), None);
        assert_eq!(parse_mac("02:ab:cd:0e:f0:01:02"), None);
    }

    #[test]
    fn address_record_round_trip() {
        let a = Address {
            index: 3,
            ip: "192.168.200.1".parse().unwrap(),
            prefix_len: 24,
            peer: None,
            broadcast: Some("192.168.200.255".parse().unwrap()),
            label: Some("eth1:x".into()),
            flags: IFA_F_NODAD | 0x80,
            scope: 0,
            valid_lft: 3600,
            preferred_lft: 1800,
            metric: Some(20),
            proto: None,
        };
        let b = Address::from_hex(&a.to_hex()).unwrap();
        // Only settable flags are recorded.
        assert_eq!(b.flags, IFA_F_NODAD);
        assert_eq!(
            Address {
                flags: a.flags,
                ..b
            },
            a
        );
    }

    #[test]
    fn route_record_round_trip() {
        let r = Route {
            ipv6: false,
            dst: None,
            dst_len: 0,
            src: None,
            src_len: 0,
            tos: 0,
            table: 100,
            protocol: 4,
            scope: SCOPE_UNIVERSE,
            kind: 1,
            onlink: true,
            oif: Some(7),
            gateway: Some("192.168.200.254".parse().unwrap()),
            priority: Some(50),
            prefsrc: Some("192.168.200.1".parse().unwrap()),
            nexthops: vec![],
            expires: None,
            extra: vec![],
        };
        assert_eq!(Route::from_hex(&r.to_hex()).unwrap(), r);
        let moved = r.moved(7, 9);
        assert_eq!(moved.oif, Some(9));
        assert!(moved.same_key(&r) && !moved.same_path(&r));
    }
}
