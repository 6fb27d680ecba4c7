//! Address types and parsing shared by validation and the flow compiler.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

/// An Ethernet address, in wire order.
pub type MacAddr = [u8; 6];

/// Parses `aa:bb:cc:dd:ee:ff` (also `-` separated, any case), as Kube-OVN's annotations carry them.
pub fn parse_mac(s: &str) -> Option<MacAddr> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats as lowercase `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &MacAddr) -> String {
    MacDisplay(mac).to_string()
}

/// `Display` adapter for a [`MacAddr`].
pub struct MacDisplay<'a>(pub &'a MacAddr);

impl fmt::Display for MacDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Whether a MAC can be a port's own address (not multicast/broadcast, not all-zero).
pub fn is_unicast_mac(mac: &MacAddr) -> bool {
    mac[0] & 1 == 0 && *mac != [0; 6]
}

/// The MAC kovs gives a router port whose MAC the cluster state does not record: `0a:58` + the
/// IPv4 address. Deterministic (every node computes the same one without coordination), locally
/// administered unicast, and disjoint from the `00:00:00:xx:xx:xx` MACs Kube-OVN's IPAM hands
/// out. Kube-OVN itself takes a random IPAM MAC for the u2o port and stores it in
/// `status.u2oInterconnectionMAC`; this is only used when that is empty.
pub fn derive_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// An inclusive IPv4 address range (an `excludeIps` entry; a single address has `start == end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Ipv4Range {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}..{}", self.start, self.end)
        }
    }
}

/// One parsed `excludeIps` entry; IPv6 entries are checked but not kept (kovs is IPv4-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExcludeEntry {
    V4(Ipv4Range),
    V6,
}

/// Parses `ip` or `ip1..ip2` (same family, start <= end). `Err` carries the message.
pub(crate) fn parse_exclude(entry: &str) -> Result<ExcludeEntry, String> {
    let parts: Vec<&str> = entry.split("..").collect();
    let parse = |s: &str| {
        s.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{s:?} is not a valid IP address"))
    };
    match parts.as_slice() {
        [one] => match parse(one)? {
            IpAddr::V4(a) => Ok(ExcludeEntry::V4(Ipv4Range { start: a, end: a })),
            IpAddr::V6(_) => Ok(ExcludeEntry::V6),
        },
        [a, b] => match (parse(a), parse(b)) {
            (Ok(IpAddr::V4(a)), Ok(IpAddr::V4(b))) if a <= b => {
                Ok(ExcludeEntry::V4(Ipv4Range { start: a, end: b }))
            }
            (Ok(IpAddr::V6(a)), Ok(IpAddr::V6(b))) if a <= b => Ok(ExcludeEntry::V6),
            _ => Err(format!("{entry:?} is not a valid IP range")),
        },
        _ => Err(format!("{entry:?} is not a valid IP range")),
    }
}

/// Whether a net has distinct network and broadcast addresses (not /31, RFC 3021, nor /32).
pub(crate) fn has_network_broadcast(net: &Ipv4Net) -> bool {
    net.prefix_len() < 31
}

/// Kube-OVN's default gateway (`util.FirstIP`): the first host address, the network address
/// itself for a /31.
pub fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    if has_network_broadcast(net) {
        Ipv4Addr::from(u32::from(net.network()) + 1)
    } else {
        net.network()
    }
}

/// The usable host range of a net: (first, last).
pub(crate) fn host_range(net: &Ipv4Net) -> (u32, u32) {
    let (n, b) = (u32::from(net.network()), u32::from(net.broadcast()));
    if has_network_broadcast(net) {
        (n + 1, b - 1)
    } else {
        (n, b)
    }
}

/// Why an address of a net can't be a host's: `Some("network")`/`Some("broadcast")`.
pub(crate) fn reserved_role(net: &Ipv4Net, ip: Ipv4Addr) -> Option<&'static str> {
    if !has_network_broadcast(net) {
        None
    } else if ip == net.network() {
        Some("network")
    } else if ip == net.broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        assert_eq!(
            parse_mac("00:00:00:AA:00:0a"),
            Some([0, 0, 0, 0xaa, 0, 0x0a])
        );
        assert_eq!(
            parse_mac("00-00-00-aa-00-0a"),
            Some([0, 0, 0, 0xaa, 0, 0x0a])
        );
        assert_eq!(format_mac(&[0, 0, 0, 0xaa, 0, 0x0a]), "00:00:00:aa:00:0a");
        for bad in [
            "",
            "00:00:00:aa:00",
            "00:00:00:aa:00:0a:01",
            "0:00:00:aa:00:0a",
            "zz:00:00:aa:00:0a",
            "00:00:00:aa:00:+a",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn unicast() {
        assert!(is_unicast_mac(&[0, 0, 0, 0, 0, 1]));
        assert!(!is_unicast_mac(&[1, 0, 0x5e, 0, 0, 1]));
        assert!(!is_unicast_mac(&[0xff; 6]));
        assert!(!is_unicast_mac(&[0; 6]));
    }

    #[test]
    fn derived_mac_is_local_unicast() {
        let m = derive_mac(Ipv4Addr::new(192, 168, 50, 254));
        assert_eq!(format_mac(&m), "0a:58:c0:a8:32:fe");
        assert!(is_unicast_mac(&m));
        assert_eq!(m[0] & 2, 2, "locally administered");
    }

    #[test]
    fn exclude_entries() {
        let r = |a: [u8; 4], b: [u8; 4]| {
            Ok(ExcludeEntry::V4(Ipv4Range {
                start: a.into(),
                end: b.into(),
            }))
        };
        assert_eq!(parse_exclude("10.0.0.1"), r([10, 0, 0, 1], [10, 0, 0, 1]));
        assert_eq!(
            parse_exclude("10.0.0.1..10.0.0.9"),
            r([10, 0, 0, 1], [10, 0, 0, 9])
        );
        assert_eq!(parse_exclude("fd00::1..fd00::5"), Ok(ExcludeEntry::V6));
        assert_eq!(
            parse_exclude("10.0.0.300"),
            Err("\"10.0.0.300\" is not a valid IP address".into())
        );
        for bad in [
            "10.0.0.9..10.0.0.1",
            "10.0.0.1..fd00::1",
            "10.0.0.1..10.0.0.2..10.0.0.3",
            "10.0.0.1..x",
        ] {
            assert_eq!(
                parse_exclude(bad),
                Err(format!("{bad:?} is not a valid IP range"))
            );
        }
    }

    #[test]
    fn first_hosts() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert_eq!(first_host(&n("10.16.0.0/16")), Ipv4Addr::new(10, 16, 0, 1));
        assert_eq!(first_host(&n("10.0.0.4/31")), Ipv4Addr::new(10, 0, 0, 4));
        assert_eq!(
            reserved_role(&n("10.0.0.0/24"), Ipv4Addr::new(10, 0, 0, 255)),
            Some("broadcast")
        );
        assert_eq!(
            reserved_role(&n("10.0.0.4/31"), Ipv4Addr::new(10, 0, 0, 5)),
            None
        );
    }
}
