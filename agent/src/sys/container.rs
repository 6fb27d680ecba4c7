//! A pod's interface inside its network namespace, through a [`Netlink`] connected there
//! ([`Netlink::connect_in`]): configuring it for CNI ADD (Kube-OVN's `configureContainerNic`),
//! reading it back for the CNI result, and comparing it with what is expected for CHECK.
//!
//! Any link works: the container end of a veth moved in, or an OVS internal port moved in
//! (`pod_nic_type=internal-port`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::netlink::{
    mac_to_string, Address, Error, Link, Mac, Netlink, Route, FOREVER, SCOPE_LINK, SCOPE_UNIVERSE,
    TABLE_MAIN,
};
use super::netns::{in_netns_async_then_drop, send_garp};
use super::veth::check_ifname;

/// `RTPROT_BOOT`, what `ip route add` uses (printed as no `proto` at all).
const PROTO_BOOT: u8 = 3;
/// `RTN_UNICAST`.
const UNICAST: u8 = 1;

/// An address with its prefix length, `10.16.0.5/16` or `fd00::5/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn new(ip: IpAddr, prefix_len: u8) -> Cidr {
        Cidr { ip, prefix_len }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len.min(32)))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    /// Whether `ip` is inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.ip.is_ipv4()
            && Cidr::new(ip, self.prefix_len).network() == self.network()
    }

    fn max_len(ip: IpAddr) -> u8 {
        if ip.is_ipv4() {
            32
        } else {
            128
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `IP/LEN`; a bare IP is a host prefix (/32, /128).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?}: not an IP address"))?;
        let max = Cidr::max_len(ip);
        let prefix_len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { ip, prefix_len })
    }
}

/// A route of a pod: to `dst` via `gateway`, or directly on the link when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodRoute {
    pub dst: Cidr,
    pub gateway: Option<IpAddr>,
}

impl PodRoute {
    /// The default route of `gateway`'s family.
    pub fn default_via(gateway: IpAddr) -> PodRoute {
        let any = if gateway.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        PodRoute {
            dst: Cidr::new(any, 0),
            gateway: Some(gateway),
        }
    }

    pub fn is_default(&self) -> bool {
        self.dst.prefix_len == 0
    }

    /// Whether the kernel route `r` (on link `index`, main table) is this one.
    fn matches(&self, r: &Route, index: u32) -> bool {
        r.table == TABLE_MAIN
            && r.ipv6 == self.dst.ip.is_ipv6()
            && r.dst_len == self.dst.prefix_len
            && (self.dst.prefix_len == 0
                || r.dst.map(|d| Cidr::new(d, r.dst_len).network()) == Some(self.dst.network()))
            && r.gateway == self.gateway
            && r.uses_link(index)
    }
}

impl fmt::Display for PodRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", self.dst.network(), self.dst.prefix_len)?;
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        Ok(())
    }
}

/// What a pod's interface should be (CNI ADD), and what CHECK compares against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerNic {
    /// `CNI_IFNAME`.
    pub ifname: String,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    /// Its addresses; any other non-link-local address found on the link is removed.
    pub addresses: Vec<Cidr>,
    /// Routes, default routes included ([`PodRoute::default_via`]); a gateway outside every
    /// address prefix of the link makes the route `onlink`.
    pub routes: Vec<PodRoute>,
    /// Send one gratuitous ARP per IPv4 address once configured.
    pub garp: bool,
}

/// A pod's interface as read back: for the CNI result and for CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIface {
    pub link: Link,
    /// Every IPv4/IPv6 address of the link (link-local ones included).
    pub addresses: Vec<Address>,
    /// The main-table routes through the link that have a destination prefix or a gateway,
    /// fe80::/10 destinations excluded (Kube-OVN's CNI result).
    pub routes: Vec<Route>,
}

impl ContainerIface {
    /// The addresses worth reporting (not link-local).
    pub fn global_addresses(&self) -> impl Iterator<Item = Cidr> + '_ {
        self.addresses
            .iter()
            .filter(|a| !a.is_link_local())
            .map(|a| Cidr::new(a.ip, a.prefix_len))
    }
}

/// One way a pod's interface differs from what CHECK expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("MAC is {}, expected {}", .found.as_ref().map_or("none".into(), mac_to_string), mac_to_string(.expected))]
    Mac { expected: Mac, found: Option<Mac> },
    #[error("MTU is {found}, expected {expected}")]
    Mtu { expected: u32, found: u32 },
    #[error("link is down")]
    Down,
    #[error("address {0} is missing")]
    MissingAddress(Cidr),
    #[error("route {0} is missing")]
    MissingRoute(PodRoute),
}

impl Netlink {
    /// Configures link `current` (the moved veth end or internal port, in this handle's
    /// namespace) as `nic`: renames it to `nic.ifname` (bringing it down first if needed),
    /// sets MAC and MTU, brings it and `lo` up, removes stale non-link-local addresses, adds
    /// the addresses, replaces the routes, sends gratuitous ARPs, and reads the result back.
    /// Repeating it (a retried ADD; `current` already renamed) changes nothing more.
    pub async fn configure_container_nic(
        &self,
        current: &str,
        nic: &ContainerNic,
    ) -> Result<ContainerIface, Error> {
        check_ifname(&nic.ifname)?;
        let mut link = match self.link(current).await? {
            Some(l) => l,
            None if current != nic.ifname => self.require_link(&nic.ifname).await?,
            None => return Err(self.no_link(current)),
        };
        if link.name != nic.ifname {
            if link.up {
                self.set_up(&link, false).await?;
            }
            self.rename(&link, &nic.ifname).await?;
            link = self.require_link_index(link.index, &nic.ifname).await?;
        }
        if let Some(mac) = nic.mac {
            if link.mac != Some(mac) {
                self.set_mac(&link, mac).await?;
            }
        }
        if let Some(mtu) = nic.mtu {
            if link.mtu != mtu {
                self.set_mtu(&link, mtu).await?;
            }
        }
        if !link.up {
            self.set_up(&link, true).await?;
        }
        if let Some(lo) = self.link("lo").await? {
            if !lo.up {
                self.set_up(&lo, true).await?;
            }
        }

        let existing = self.addresses(&link).await?;
        for a in &existing {
            let keep = a.is_link_local()
                || nic
                    .addresses
                    .iter()
                    .any(|c| c.ip == a.ip && c.prefix_len == a.prefix_len && a.peer.is_none());
            if !keep {
                self.del_address(&link, a).await?;
            }
        }
        for c in &nic.addresses {
            let present = existing
                .iter()
                .any(|a| a.ip == c.ip && a.prefix_len == c.prefix_len && a.peer.is_none());
            if !present {
                self.add_address(&link, &new_address(link.index, *c), true)
                    .await?;
            }
        }

        let routes = self.all_routes().await?;
        for want in &nic.routes {
            if routes.iter().any(|r| want.matches(r, link.index)) {
                continue;
            }
            let onlink = want
                .gateway
                .is_some_and(|g| !nic.addresses.iter().any(|c| c.contains(g)));
            self.add_route(&new_route(link.index, want, onlink), true)
                .await?;
        }

        if nic.garp {
            if let Some(mac) = link.mac.or(nic.mac) {
                for c in &nic.addresses {
                    if let IpAddr::V4(ip) = c.ip {
                        self.send_garp(&link, mac, ip).await?;
                    }
                }
            }
        }
        self.container_iface(&nic.ifname).await
    }

    /// The interface named `ifname` as it is now ([`Error::NoLink`] if missing).
    pub async fn container_iface(&self, ifname: &str) -> Result<ContainerIface, Error> {
        let link = self.require_link(ifname).await?;
        let addresses = self.addresses(&link).await?;
        let routes = self
            .all_routes()
            .await?
            .into_iter()
            .filter(|r| {
                r.table == TABLE_MAIN
                    && r.uses_link(link.index)
                    && (r.dst_len > 0 || r.gateway.is_some())
                    && !matches!(r.dst, Some(IpAddr::V6(d)) if (d.segments()[0] & 0xffc0) == 0xfe80)
            })
            .collect();
        Ok(ContainerIface {
            link,
            addresses,
            routes,
        })
    }

    /// CNI CHECK: the interface `nic.ifname` exists and is up, has `nic.mac` and `nic.mtu` (when
    /// given), every address and every route of `nic` (others may exist too). Every difference
    /// is listed in one [`Error::Check`]; on success the interface as read. Changes nothing.
    pub async fn check_container_nic(&self, nic: &ContainerNic) -> Result<ContainerIface, Error> {
        let iface = self.container_iface(&nic.ifname).await?;
        let mut mismatches = Vec::new();
        if let Some(mac) = nic.mac {
            if iface.link.mac != Some(mac) {
                mismatches.push(Mismatch::Mac {
                    expected: mac,
                    found: iface.link.mac,
                });
            }
        }
        if let Some(mtu) = nic.mtu {
            if iface.link.mtu != mtu {
                mismatches.push(Mismatch::Mtu {
                    expected: mtu,
                    found: iface.link.mtu,
                });
            }
        }
        if !iface.link.up {
            mismatches.push(Mismatch::Down);
        }
        for c in &nic.addresses {
            if !iface
                .addresses
                .iter()
                .any(|a| a.ip == c.ip && a.prefix_len == c.prefix_len)
            {
                mismatches.push(Mismatch::MissingAddress(*c));
            }
        }
        for want in &nic.routes {
            if !iface
                .routes
                .iter()
                .any(|r| want.matches(r, iface.link.index))
            {
                mismatches.push(Mismatch::MissingRoute(*want));
            }
        }
        if mismatches.is_empty() {
            Ok(iface)
        } else {
            Err(Error::Check {
                link: nic.ifname.clone(),
                netns: self.netns_name(),
                mismatches,
            })
        }
    }

    /// Sends one gratuitous ARP (`who-has IP tell IP`, broadcast, from `mac`) out of `link`,
    /// from a packet socket opened in this handle's namespace. Counted as a write.
    pub async fn send_garp(&self, link: &Link, mac: Mac, ip: Ipv4Addr) -> Result<(), Error> {
        self.count_write();
        let index = link.index;
        let what = format!(
            "sending a gratuitous ARP for {ip} from {} on link {link} in {}",
            mac_to_string(&mac),
            self.netns_name()
        );
        in_netns_async_then_drop(self.netns_arc(), move || {
            send_garp(index, mac, ip)
                .map(|sock| ((), sock))
                .map_err(|e| Error::request(what, e))
        })
        .await
    }

    fn no_link(&self, name: &str) -> Error {
        Error::NoLink {
            name: name.to_string(),
            netns: self.netns_name(),
        }
    }

    async fn require_link_index(&self, index: u32, name: &str) -> Result<Link, Error> {
        self.link_by_index(index)
            .await?
            .ok_or_else(|| self.no_link(name))
    }
}

fn new_address(index: u32, c: Cidr) -> Address {
    let broadcast = match c.ip {
        IpAddr::V4(_) if c.prefix_len < 31 => {
            let IpAddr::V4(net) = c.network() else {
                unreachable!()
            };
            Some(Ipv4Addr::from(
                u32::from(net) | (u32::MAX >> u32::from(c.prefix_len)),
            ))
        }
        _ => None,
    };
    Address {
        index,
        ip: c.ip,
        prefix_len: c.prefix_len,
        peer: None,
        broadcast,
        label: None,
        flags: 0,
        scope: SCOPE_UNIVERSE,
        valid_lft: FOREVER,
        preferred_lft: FOREVER,
        metric: None,
        proto: None,
    }
}

fn new_route(index: u32, want: &PodRoute, onlink: bool) -> Route {
    Route {
        ipv6: want.dst.ip.is_ipv6(),
        dst: (!want.is_default()).then(|| want.dst.network()),
        dst_len: want.dst.prefix_len,
        src: None,
        src_len: 0,
        tos: 0,
        table: TABLE_MAIN,
        protocol: PROTO_BOOT,
        scope: if want.gateway.is_some() {
            SCOPE_UNIVERSE
        } else {
            SCOPE_LINK
        },
        kind: UNICAST,
        onlink,
        oif: Some(index),
        gateway: want.gateway,
        priority: None,
        prefsrc: None,
        nexthops: Vec::new(),
        expires: None,
        extra: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let c: Cidr = "10.16.0.5/16".parse().unwrap();
        assert_eq!(c.network(), "10.16.0.0".parse::<IpAddr>().unwrap());
        assert!(c.contains("10.16.255.1".parse().unwrap()));
        assert!(!c.contains("10.17.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert_eq!(c.to_string(), "10.16.0.5/16");
        let h: Cidr = "fd00::5".parse().unwrap();
        assert_eq!(h.prefix_len, 128);
        let z: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(z.contains("1.2.3.4".parse().unwrap()));
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("x/3".parse::<Cidr>().is_err());
        let a = new_address(1, c);
        assert_eq!(a.broadcast, Some("10.16.255.255".parse().unwrap()));
        assert_eq!(
            new_address(1, "10.0.0.1/31".parse().unwrap()).broadcast,
            None
        );
    }

    #[test]
    fn mismatch_messages() {
        let e = Error::Check {
            link: "eth0".into(),
            netns: "/var/run/netns/x".into(),
            mismatches: vec![
                Mismatch::Mac {
                    expected: [2, 0, 0, 0, 0, 1],
                    found: Some([2, 0, 0, 0, 0, 2]),
                },
                Mismatch::MissingRoute(PodRoute::default_via("10.16.0.1".parse().unwrap())),
            ],
        };
        assert_eq!(
            e.to_string(),
            "interface eth0 in /var/run/netns/x: MAC is 02:00:00:00:00:02, expected \
             02:00:00:00:00:01; route default via 10.16.0.1 is missing"
        );
    }
}
