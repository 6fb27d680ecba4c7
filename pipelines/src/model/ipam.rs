//! IP address management for one subnet, as Kube-OVN's controller does it (behaviour doc §6,
//! IPAM): the lowest free address; `excludeIps` (the gateway among them) never given out unless
//! asked for by name; a static address honoured even inside `excludeIps`; released addresses
//! reused only when nothing else is free; MACs unique in the subnet.
//!
//! Pure: no I/O, no clock, no randomness of its own (a MAC source is passed in). There must be
//! one writer per subnet (the controller's leader); it rebuilds a pool from what pods and IP
//! objects already hold ([`SubnetPool::allocate_static`]) before it gives out anything new.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::addr::{host_range, is_unicast_mac, Ipv4Range, MacAddr, MacDisplay};

/// Why an address or MAC could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("{ip} is not in subnet {subnet} ({cidr})")]
    OutOfSubnet {
        ip: Ipv4Addr,
        subnet: String,
        cidr: Ipv4Net,
    },
    #[error("{ip} is the network or broadcast address of {cidr}")]
    NotAHost { ip: Ipv4Addr, cidr: Ipv4Net },
    #[error("{ip} is already used by {owner}")]
    AddressInUse { ip: Ipv4Addr, owner: String },
    #[error("MAC {mac} is already used by {owner}")]
    MacInUse { mac: String, owner: String },
    #[error("MAC {0} is not a unicast MAC")]
    BadMac(String),
    #[error("subnet {0} has no free address")]
    Full(String),
    #[error("no address of the pool is free in subnet {subnet}: {pool}")]
    PoolExhausted { subnet: String, pool: String },
}

/// What an owner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// One subnet's addresses and MACs. Owners are names such as `<pod>.<namespace>` (Kube-OVN's
/// IP object name).
#[derive(Debug, Clone)]
pub struct SubnetPool {
    name: String,
    cidr: Ipv4Net,
    /// The usable host range, inclusive.
    first: u32,
    last: u32,
    /// Sorted, within the host range.
    excluded: Vec<(u32, u32)>,
    by_ip: HashMap<u32, Box<str>>,
    by_owner: HashMap<Box<str>, Lease>,
    macs: HashMap<MacAddr, Box<str>>,
    /// Given back; handed out again only when nothing else is free (lowest first).
    released: BTreeSet<u32>,
    /// Every address below is used, excluded or released: where the next search starts.
    cursor: u32,
}

impl SubnetPool {
    /// A pool for `cidr` less `exclude` (entries outside the CIDR are ignored).
    pub fn new(name: &str, cidr: Ipv4Net, exclude: &[Ipv4Range]) -> SubnetPool {
        let (first, last) = host_range(&cidr);
        let mut excluded: Vec<(u32, u32)> = exclude
            .iter()
            .map(|r| (u32::from(r.start).max(first), u32::from(r.end).min(last)))
            .filter(|(s, e)| s <= e)
            .collect();
        excluded.sort_unstable();
        // Merge overlaps so that counting is exact.
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(excluded.len());
        for (s, e) in excluded {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        SubnetPool {
            name: name.to_string(),
            cidr,
            first,
            last,
            excluded: merged,
            by_ip: HashMap::new(),
            by_owner: HashMap::new(),
            macs: HashMap::new(),
            released: BTreeSet::new(),
            cursor: first,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// What `owner` holds.
    pub fn lease(&self, owner: &str) -> Option<Lease> {
        self.by_owner.get(owner).copied()
    }

    /// Who holds `ip`.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.by_ip.get(&u32::from(ip)).map(|o| &**o)
    }

    /// Kube-OVN's `v4usingIPs`.
    pub fn using(&self) -> u64 {
        self.by_ip.len() as u64
    }

    /// Kube-OVN's `v4availableIPs`: host addresses neither excluded nor used.
    pub fn available(&self) -> u64 {
        let total = u64::from(self.last - self.first) + 1;
        let excluded: u64 = self
            .excluded
            .iter()
            .map(|(s, e)| u64::from(e - s) + 1)
            .sum();
        let used_outside = self
            .by_ip
            .keys()
            .filter(|ip| !self.is_excluded(**ip))
            .count() as u64;
        total - excluded - used_outside
    }

    fn is_excluded(&self, ip: u32) -> bool {
        let i = self.excluded.partition_point(|(_, e)| *e < ip);
        self.excluded.get(i).is_some_and(|(s, _)| *s <= ip)
    }

    /// The end of the excluded range holding `ip`, if any.
    fn excluded_end(&self, ip: u32) -> Option<u32> {
        let i = self.excluded.partition_point(|(_, e)| *e < ip);
        self.excluded
            .get(i)
            .filter(|(s, _)| *s <= ip)
            .map(|(_, e)| *e)
    }

    fn check_host(&self, ip: Ipv4Addr) -> Result<u32, IpamError> {
        if !self.cidr.contains(&ip) {
            return Err(IpamError::OutOfSubnet {
                ip,
                subnet: self.name.clone(),
                cidr: self.cidr,
            });
        }
        let n = u32::from(ip);
        if n < self.first || n > self.last {
            return Err(IpamError::NotAHost {
                ip,
                cidr: self.cidr,
            });
        }
        Ok(n)
    }

    /// Takes `ip` for `owner` (a static `ip_address`, or what an existing pod already holds):
    /// allowed inside `excludeIps`; the same owner asking again is fine (a new MAC replaces
    /// its old one). An owner holding another address gives it back first.
    pub fn allocate_static(
        &mut self,
        owner: &str,
        ip: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<Lease, IpamError> {
        let n = self.check_host(ip)?;
        if let Some(o) = self.by_ip.get(&n) {
            if &**o != owner {
                return Err(IpamError::AddressInUse {
                    ip,
                    owner: o.to_string(),
                });
            }
        }
        self.check_mac(owner, mac)?;
        self.release(owner);
        Ok(self.take(owner, n, mac))
    }

    /// The lowest free address for `owner` (its current one if it holds one), with `mac` or a
    /// new one from `new_mac`.
    pub fn allocate(
        &mut self,
        owner: &str,
        mac: Option<MacAddr>,
        new_mac: &mut dyn FnMut() -> MacAddr,
    ) -> Result<Lease, IpamError> {
        if let Some(l) = self.lease(owner) {
            return match mac {
                Some(m) if m != l.mac => self.allocate_static(owner, l.ip, m),
                _ => Ok(l),
            };
        }
        let mac = self.pick_mac(owner, mac, new_mac)?;
        let n = match self.lowest_free() {
            Some(n) => n,
            None => self
                .released
                .iter()
                .next()
                .copied()
                .ok_or_else(|| IpamError::Full(self.name.clone()))?,
        };
        Ok(self.take(owner, n, mac))
    }

    /// The first address of `pool` (Kube-OVN's `ip_pool`) that is free or already `owner`'s;
    /// for a StatefulSet, the caller passes its ordinal's entry first.
    pub fn allocate_from(
        &mut self,
        owner: &str,
        pool: &[Ipv4Addr],
        mac: Option<MacAddr>,
        new_mac: &mut dyn FnMut() -> MacAddr,
    ) -> Result<Lease, IpamError> {
        for &ip in pool {
            let Ok(n) = self.check_host(ip) else { continue };
            match self.by_ip.get(&n) {
                Some(o) if &**o != owner => continue,
                _ => {}
            }
            let mac = match self.lease(owner) {
                Some(l) if mac.is_none() => l.mac,
                _ => self.pick_mac(owner, mac, new_mac)?,
            };
            return self.allocate_static(owner, ip, mac);
        }
        Err(IpamError::PoolExhausted {
            subnet: self.name.clone(),
            pool: pool
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(","),
        })
    }

    /// Gives back what `owner` holds; `None` when it held nothing.
    pub fn release(&mut self, owner: &str) -> Option<Lease> {
        let l = self.by_owner.remove(owner)?;
        let n = u32::from(l.ip);
        self.by_ip.remove(&n);
        self.macs.remove(&l.mac);
        if !self.is_excluded(n) {
            self.released.insert(n);
        }
        Some(l)
    }

    fn take(&mut self, owner: &str, n: u32, mac: MacAddr) -> Lease {
        let owner: Box<str> = owner.into();
        self.released.remove(&n);
        self.by_ip.insert(n, owner.clone());
        self.macs.insert(mac, owner.clone());
        let lease = Lease {
            ip: Ipv4Addr::from(n),
            mac,
        };
        self.by_owner.insert(owner, lease);
        lease
    }

    /// The lowest address neither used, excluded nor released; moves the cursor up to it.
    fn lowest_free(&mut self) -> Option<u32> {
        let mut n = self.cursor;
        while n <= self.last {
            if let Some(end) = self.excluded_end(n) {
                n = end.checked_add(1)?;
                continue;
            }
            if self.by_ip.contains_key(&n) || self.released.contains(&n) {
                n = n.checked_add(1)?;
                continue;
            }
            self.cursor = n;
            return Some(n);
        }
        self.cursor = n;
        None
    }

    fn check_mac(&self, owner: &str, mac: MacAddr) -> Result<(), IpamError> {
        if !is_unicast_mac(&mac) {
            return Err(IpamError::BadMac(MacDisplay(&mac).to_string()));
        }
        match self.macs.get(&mac) {
            Some(o) if &**o != owner => Err(IpamError::MacInUse {
                mac: MacDisplay(&mac).to_string(),
                owner: o.to_string(),
            }),
            _ => Ok(()),
        }
    }

    fn pick_mac(
        &self,
        owner: &str,
        mac: Option<MacAddr>,
        new_mac: &mut dyn FnMut() -> MacAddr,
    ) -> Result<MacAddr, IpamError> {
        if let Some(m) = mac {
            self.check_mac(owner, m)?;
            return Ok(m);
        }
        loop {
            let m = new_mac();
            if is_unicast_mac(&m) && !self.macs.contains_key(&m) {
                return Ok(m);
            }
        }
    }
}

/// A locally administered unicast MAC from 6 random bytes (Kube-OVN's `GenerateMac` shape).
pub fn local_mac(random: [u8; 6]) -> MacAddr {
    let mut m = random;
    m[0] = (m[0] & 0xfc) | 0x02;
    m
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.ip, MacDisplay(&self.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str, exclude: &[(&str, &str)]) -> SubnetPool {
        let ex: Vec<Ipv4Range> = exclude
            .iter()
            .map(|(s, e)| Ipv4Range {
                start: s.parse().unwrap(),
                end: e.parse().unwrap(),
            })
            .collect();
        SubnetPool::new("s", cidr.parse().unwrap(), &ex)
    }

    fn macs() -> impl FnMut() -> MacAddr {
        let mut i = 0u32;
        move || {
            i += 1;
            local_mac([0, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8])
        }
    }

    #[test]
    fn lowest_free_skipping_excluded_then_released_last() {
        let mut p = pool("10.17.0.0/24", &[("10.17.0.1", "10.17.0.10")]);
        let mut m = macs();
        let a = p.allocate("a.ns", None, &mut m).unwrap();
        assert_eq!(a.ip, "10.17.0.11".parse::<Ipv4Addr>().unwrap());
        let b = p.allocate("b.ns", None, &mut m).unwrap();
        assert_eq!(b.ip.to_string(), "10.17.0.12");
        assert_eq!(p.allocate("a.ns", None, &mut m).unwrap(), a, "idempotent");
        p.release("a.ns");
        // .11 was released: .13 comes first.
        assert_eq!(
            p.allocate("c.ns", None, &mut m).unwrap().ip.to_string(),
            "10.17.0.13"
        );
        assert_eq!((p.using(), p.available()), (2, 254 - 10 - 2));
    }

    #[test]
    fn released_addresses_are_reused_when_nothing_else_is_free() {
        let mut p = pool("10.0.0.0/29", &[("10.0.0.1", "10.0.0.1")]);
        let mut m = macs();
        for i in 0..5 {
            p.allocate(&format!("p{i}"), None, &mut m).unwrap();
        }
        assert!(matches!(
            p.allocate("x", None, &mut m),
            Err(IpamError::Full(_))
        ));
        let l = p.release("p2").unwrap();
        assert_eq!(p.allocate("x", None, &mut m).unwrap().ip, l.ip);
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn static_addresses_even_excluded_but_never_twice() {
        let mut p = pool("10.0.0.0/24", &[("10.0.0.1", "10.0.0.10")]);
        let ip: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let mac = local_mac([1; 6]);
        p.allocate_static("a", ip, mac).unwrap();
        assert_eq!(p.owner_of(ip), Some("a"));
        assert_eq!(
            p.allocate_static("b", ip, local_mac([2; 6])),
            Err(IpamError::AddressInUse {
                ip,
                owner: "a".into()
            })
        );
        assert!(matches!(
            p.allocate_static("b", "10.0.0.6".parse().unwrap(), mac),
            Err(IpamError::MacInUse { .. })
        ));
        assert!(matches!(
            p.allocate_static("b", "10.0.1.6".parse().unwrap(), local_mac([3; 6])),
            Err(IpamError::OutOfSubnet { .. })
        ));
        assert!(matches!(
            p.allocate_static("b", "10.0.0.255".parse().unwrap(), local_mac([3; 6])),
            Err(IpamError::NotAHost { .. })
        ));
        // An excluded address given back is not handed out by `allocate`.
        p.release("a");
        let mut m = macs();
        assert_eq!(
            p.allocate("c", None, &mut m).unwrap().ip.to_string(),
            "10.0.0.11"
        );
    }

    #[test]
    fn pools_take_the_first_free_entry() {
        let mut p = pool("10.0.0.0/24", &[]);
        let mut m = macs();
        let ips: Vec<Ipv4Addr> = ["10.0.0.50", "10.0.0.51"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(p.allocate_from("a", &ips, None, &mut m).unwrap().ip, ips[0]);
        assert_eq!(p.allocate_from("b", &ips, None, &mut m).unwrap().ip, ips[1]);
        assert_eq!(p.allocate_from("a", &ips, None, &mut m).unwrap().ip, ips[0]);
        assert!(matches!(
            p.allocate_from("c", &ips, None, &mut m),
            Err(IpamError::PoolExhausted { .. })
        ));
    }

    #[test]
    fn generated_macs_are_local_unicast() {
        for b in [[0xff; 6], [0; 6], [0x01, 2, 3, 4, 5, 6]] {
            let m = local_mac(b);
            assert!(is_unicast_mac(&m));
            assert_eq!(m[0] & 0x03, 0x02);
        }
    }
}
