//! Subnets: CIDR, gateway, excluded IPs, VPC and VLAN references, the dataplane mode (overlay,
//! underlay, logicalGateway, u2o and its router port), and no overlaps within a VPC's router or
//! VLAN.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::super::addr::{
    derive_mac, first_host, host_range, is_unicast_mac, parse_exclude, parse_mac, reserved_role,
    ExcludeEntry, Ipv4Range, MacAddr,
};
use super::super::objects::{Object, ObjectKind, Subnet};
use super::{parse_ip_list, Report, Validator, DEFAULT_SUBNET_PROVIDER, DEFAULT_VPC};

/// How a subnet's gateway is placed (only matters for routed subnets in the default VPC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayType {
    Distributed,
    Centralized,
}

/// An underlay subnet's VLAN, resolved down to the ProviderNetwork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanBinding {
    /// The Vlan object's name.
    pub vlan: String,
    /// 0 = untagged.
    pub id: u16,
    pub provider_network: String,
}

/// Where a u2o value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum U2oSource {
    /// `spec.u2oInterconnectionIP`.
    Spec,
    /// `status.u2oInterconnectionIP`/`MAC`, as Kube-OVN's controller recorded them.
    Status,
    /// Chosen by kovs: see [`u2o_default_ip`] and [`derive_mac`].
    Derived,
}

/// The u2o router port of a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U2o {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub ip_source: U2oSource,
    pub mac_source: U2oSource,
}

/// The dataplane mode of a subnet (behaviour doc 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubnetMode {
    /// No VLAN: pods reach each other through tunnels, the gateway is a router port.
    Overlay,
    /// Pure underlay: L2 via the provider network, the gateway is a physical router.
    Underlay,
    /// Underlay L2, with `spec.gateway` on a VPC router port.
    LogicalGateway,
    /// Underlay L2 plus a VPC router port with the u2o IP, the pods' default route.
    U2o(U2o),
}

/// A validated, normalized subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSubnet {
    pub name: String,
    /// The IPv4 CIDR, truncated to its network address.
    pub cidr: Ipv4Net,
    /// The IPv6 half of a dual-stack subnet; kovs does not program it.
    pub ipv6_cidr: Option<Ipv6Net>,
    /// `spec.gateway`'s IPv4, or the first host address. For pure underlay, the physical gateway.
    pub gateway: Ipv4Addr,
    /// IPv4 `excludeIps`, sorted (IPv6 entries are dropped).
    pub exclude_ips: Vec<Ipv4Range>,
    /// `ovn` when empty.
    pub provider: String,
    /// Whether the provider is OVN's (`ovn` or `<nad>.<ns>.ovn`); others are IPAM-only in
    /// Kube-OVN and get no dataplane.
    pub ovn_managed: bool,
    /// The VPC (`ovn-cluster` when empty), known and valid.
    pub vpc: String,
    /// Set for underlay subnets (every mode but [`SubnetMode::Overlay`]).
    pub vlan: Option<VlanBinding>,
    pub mode: SubnetMode,
    pub gateway_type: GatewayType,
    pub nat_outgoing: bool,
    pub private: bool,
    /// IPv4 `allowSubnets`, truncated.
    pub allow_subnets: Vec<Ipv4Net>,
    /// `spec.mtu` when non-zero.
    pub mtu: Option<u32>,
    pub default: bool,
    pub namespaces: Vec<String>,
    pub enable_lb: Option<bool>,
    pub enable_dhcp: bool,
    pub disable_gateway_check: bool,
    /// `metadata.creationTimestamp` as written (RFC 3339), `None` when absent.
    pub creation_timestamp: Option<String>,
}

impl ValidSubnet {
    /// Whether the subnet has a port on its VPC router (overlay, logicalGateway, u2o).
    pub fn is_routed(&self) -> bool {
        !matches!(self.mode, SubnetMode::Underlay)
    }

    /// The VPC router port's IP: the gateway, or the u2o IP; `None` for pure underlay.
    pub fn router_ip(&self) -> Option<Ipv4Addr> {
        match &self.mode {
            SubnetMode::Overlay | SubnetMode::LogicalGateway => Some(self.gateway),
            SubnetMode::U2o(u) => Some(u.ip),
            SubnetMode::Underlay => None,
        }
    }

    /// The pods' default gateway: the u2o IP for u2o subnets, else `gateway`.
    pub fn pod_gateway(&self) -> Ipv4Addr {
        match &self.mode {
            SubnetMode::U2o(u) => u.ip,
            _ => self.gateway,
        }
    }

    /// The u2o port, for u2o subnets.
    pub fn u2o(&self) -> Option<&U2o> {
        match &self.mode {
            SubnetMode::U2o(u) => Some(u),
            _ => None,
        }
    }

    /// Whether node iptables MASQUERADE applies: `natOutgoing`, routed through OVN (overlay or
    /// logicalGateway) and in the default VPC (Kube-OVN `isSubnetNeedNat`).
    pub fn needs_nat(&self) -> bool {
        self.nat_outgoing
            && matches!(self.mode, SubnetMode::Overlay | SubnetMode::LogicalGateway)
            && self.vpc == DEFAULT_VPC
    }

    /// Whether `ip` is in `excludeIps`.
    pub fn is_excluded(&self, ip: Ipv4Addr) -> bool {
        self.exclude_ips.iter().any(|r| r.contains(ip))
    }
}

impl<'a> Validator<'a> {
    pub(super) fn subnets(&mut self) {
        // Accepted subnets per VPC, for the overlap check.
        let mut by_vpc: HashMap<String, Vec<(Ipv4Net, &'a str, bool, &'a str)>> = HashMap::new();
        for (key, obj) in self.objects.of_kind(ObjectKind::Subnet) {
            let Object::Subnet(subnet) = obj else {
                continue;
            };
            let mut r = Report::new(key);
            let Some(valid) = self.check_subnet(subnet, &mut r) else {
                self.finish(r);
                continue;
            };
            let vlan: &'a str = &subnet.spec.vlan;
            if valid.ovn_managed {
                let peers = by_vpc.entry(valid.vpc.clone()).or_default();
                let routed = valid.is_routed();
                // Kube-OVN rejects overlaps within one VPC and one VLAN; kovs also rejects
                // overlaps between two subnets routed by the same VPC router (doc 5.3 item 6:
                // ambiguous routing), but lets pure-underlay subnets on other VLANs overlap.
                let clash = peers.iter().find(|(net, peer_vlan, peer_routed, _)| {
                    overlaps(net, &valid.cidr) && (*peer_vlan == vlan || (routed && *peer_routed))
                });
                if let Some((net, _, _, name)) = clash {
                    r.fail(
                        "spec.cidrBlock",
                        format!(
                            "{} overlaps {net} of Subnet \"{name}\" in Vpc \"{}\"",
                            valid.cidr, valid.vpc
                        ),
                    );
                } else {
                    peers.push((valid.cidr, vlan, routed, key.name.as_str()));
                }
            }
            if self.finish(r) {
                self.state.subnets.insert(key.name.clone(), valid);
            }
        }
    }

    fn check_subnet(&self, subnet: &Subnet, r: &mut Report<'_>) -> Option<ValidSubnet> {
        let spec = &subnet.spec;
        let provider = if spec.provider.is_empty() {
            DEFAULT_SUBNET_PROVIDER
        } else {
            spec.provider.as_str()
        };
        let ovn_managed = provider == DEFAULT_SUBNET_PROVIDER || provider.ends_with(".ovn");

        let cidrs = parse_cidr_block(&spec.cidr_block)
            .map_err(|m| r.fail("spec.cidrBlock", m))
            .ok();

        let gateway = cidrs.and_then(|(cidr, _)| {
            let gw = if spec.gateway.trim().is_empty() {
                None
            } else {
                match parse_ip_list(&spec.gateway) {
                    Ok(gw) => gw,
                    Err(m) => {
                        r.fail("spec.gateway", m);
                        return None;
                    }
                }
            };
            // A missing IPv4 gateway defaults to the first host (also in dual-stack).
            let gw = gw.unwrap_or_else(|| first_host(&cidr));
            if !cidr.contains(&gw) {
                r.fail("spec.gateway", format!("{gw} is not in {cidr}"));
                None
            } else if let Some(role) = reserved_role(&cidr, gw) {
                r.fail(
                    "spec.gateway",
                    format!("{gw} is the {role} address of {cidr}"),
                );
                None
            } else {
                Some(gw)
            }
        });

        let mut exclude_ips = Vec::new();
        for (i, e) in spec.exclude_ips.iter().enumerate() {
            match parse_exclude(e) {
                Ok(ExcludeEntry::V4(range)) => exclude_ips.push(range),
                Ok(ExcludeEntry::V6) => {}
                Err(m) => r.fail(format!("spec.excludeIps[{i}]"), m),
            }
        }
        exclude_ips.sort();

        if !matches!(
            spec.protocol.as_str(),
            "" | "IPv4" | "IPv6" | "Dual" | "Mac"
        ) {
            r.fail(
                "spec.protocol",
                format!(
                    "{:?} is not a valid protocol type (IPv4, IPv6, Dual)",
                    spec.protocol
                ),
            );
        }

        let gateway_type = match spec.gateway_type.as_str() {
            "" | "distributed" => GatewayType::Distributed,
            "centralized" => GatewayType::Centralized,
            other => {
                r.fail(
                    "spec.gatewayType",
                    format!("{other:?} is not a valid gateway type (distributed, centralized)"),
                );
                GatewayType::Distributed
            }
        };

        let vpc_name = if spec.vpc.is_empty() {
            DEFAULT_VPC
        } else {
            spec.vpc.as_str()
        };
        let vpc = self.state.vpcs.get(vpc_name);
        if vpc.is_none() {
            r.fail("spec.vpc", self.missing(ObjectKind::Vpc, vpc_name));
        }
        if let Some(vpc) = vpc.filter(|v| v.name != DEFAULT_VPC) {
            for (i, ns) in spec.namespaces.iter().enumerate() {
                if !vpc.namespaces.contains(ns) {
                    r.fail(
                        format!("spec.namespaces[{i}]"),
                        format!(
                            "namespace {ns:?} is not in the namespaces of Vpc \"{}\"",
                            vpc.name
                        ),
                    );
                }
            }
        }

        let vlan = if spec.vlan.is_empty() {
            None
        } else {
            match self.state.vlans.get(&spec.vlan) {
                Some(v) => Some(VlanBinding {
                    vlan: v.name.clone(),
                    id: v.id,
                    provider_network: v.provider.clone(),
                }),
                None => {
                    r.fail("spec.vlan", self.missing(ObjectKind::Vlan, &spec.vlan));
                    None
                }
            }
        };

        // As in Kube-OVN's formatSubnet, logicalGateway and u2o only mean something on underlay.
        let underlay = !spec.vlan.is_empty();
        if underlay && spec.logical_gateway && spec.u2o_interconnection {
            r.fail(
                "spec.logicalGateway",
                "logicalGateway and u2oInterconnection can't be enabled at the same time",
            );
        }
        let mode = if !underlay {
            SubnetMode::Overlay
        } else if spec.logical_gateway {
            SubnetMode::LogicalGateway
        } else if spec.u2o_interconnection {
            match (cidrs, gateway) {
                (Some((cidr, _)), Some(gw)) => {
                    SubnetMode::U2o(resolve_u2o(subnet, cidr, gw, &exclude_ips, r)?)
                }
                _ => return None,
            }
        } else {
            SubnetMode::Underlay
        };

        let mut allow_subnets = Vec::new();
        for (i, s) in spec.allow_subnets.iter().enumerate() {
            match s.trim().parse::<IpNet>() {
                Ok(IpNet::V4(net)) => allow_subnets.push(net.trunc()),
                Ok(IpNet::V6(_)) => {}
                Err(_) => r.fail(
                    format!("spec.allowSubnets[{i}]"),
                    format!("{s:?} is not a valid CIDR"),
                ),
            }
        }

        let mtu = match &spec.mtu {
            None => None,
            Some(v) => match v.as_int() {
                None => {
                    r.fail("spec.mtu", format!("{v} is not an integer"));
                    None
                }
                Some(0) => None,
                Some(n @ 68..=65535) => Some(n as u32),
                Some(n) => {
                    r.fail("spec.mtu", format!("{n} is outside 68..65535"));
                    None
                }
            },
        };

        let ((cidr, ipv6_cidr), gateway) = (cidrs?, gateway?);
        if !r.ok() {
            return None;
        }
        Some(ValidSubnet {
            name: subnet.metadata.name.clone(),
            cidr,
            ipv6_cidr,
            gateway,
            exclude_ips,
            provider: provider.to_owned(),
            ovn_managed,
            vpc: vpc_name.to_owned(),
            vlan,
            mode,
            gateway_type,
            nat_outgoing: spec.nat_outgoing,
            private: spec.private,
            allow_subnets,
            mtu,
            default: spec.default,
            namespaces: spec.namespaces.clone(),
            enable_lb: spec.enable_lb,
            enable_dhcp: spec.enable_dhcp,
            disable_gateway_check: spec.disable_gateway_check,
            creation_timestamp: subnet.metadata.creation_timestamp.clone(),
        })
    }
}

/// The u2o IP kovs uses when neither the spec nor the status gives one: the highest usable
/// address of the CIDR that is neither the gateway nor in `excludeIps`. Kube-OVN takes a free
/// address from its IPAM (behaviour doc 5.3: respecting `excludeIps` and the gateway); the
/// highest one is deterministic and stays clear of the low addresses pods get first.
pub fn u2o_default_ip(
    cidr: &Ipv4Net,
    gateway: Ipv4Addr,
    exclude_ips: &[Ipv4Range],
) -> Option<Ipv4Addr> {
    let (first, last) = host_range(cidr);
    let mut candidate = last;
    loop {
        let ip = Ipv4Addr::from(candidate);
        let blocker = exclude_ips.iter().find(|r| r.contains(ip));
        if let Some(r) = blocker {
            candidate = u32::from(r.start).checked_sub(1)?;
        } else if ip == gateway {
            candidate = candidate.checked_sub(1)?;
        } else {
            return Some(ip);
        }
        if candidate < first {
            return None;
        }
    }
}

/// The u2o port of a subnet: spec IP, else status IP (if it still fits), else
/// [`u2o_default_ip`]; status MAC if it belongs to that IP, else [`derive_mac`].
fn resolve_u2o(
    subnet: &Subnet,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    exclude_ips: &[Ipv4Range],
    r: &mut Report<'_>,
) -> Option<U2o> {
    const FIELD: &str = "spec.u2oInterconnectionIP";
    let fits = |ip: Ipv4Addr| -> Result<(), String> {
        if !cidr.contains(&ip) {
            Err(format!("{ip} is not in {cidr}"))
        } else if ip == gateway {
            Err(format!("{ip} conflicts with the gateway {gateway}"))
        } else if let Some(role) = reserved_role(&cidr, ip) {
            Err(format!("{ip} is the {role} address of {cidr}"))
        } else {
            Ok(())
        }
    };
    let spec_ip = &subnet.spec.u2o_interconnection_ip;
    let mut chosen = None;
    if !spec_ip.trim().is_empty() {
        match parse_ip_list(spec_ip) {
            Err(m) => {
                r.fail(FIELD, m);
                return None;
            }
            Ok(Some(ip)) => {
                if let Err(m) = fits(ip) {
                    r.fail(FIELD, m);
                    return None;
                }
                chosen = Some((ip, U2oSource::Spec));
            }
            Ok(None) => {}
        }
    }
    // The status is the controller's record, not user input: a stale or malformed value is
    // treated as not written yet rather than rejecting the subnet.
    let status_ip = parse_ip_list(&subnet.status.u2o_interconnection_ip)
        .ok()
        .flatten()
        .filter(|ip| fits(*ip).is_ok());
    if chosen.is_none() {
        chosen = status_ip.map(|ip| (ip, U2oSource::Status));
    }
    let (ip, ip_source) = match chosen {
        Some(c) => c,
        None => match u2o_default_ip(&cidr, gateway, exclude_ips) {
            Some(ip) => (ip, U2oSource::Derived),
            None => {
                r.fail(
                    FIELD,
                    format!("no free address in {cidr} for the u2o interconnection IP"),
                );
                return None;
            }
        },
    };
    let status_mac = parse_mac(subnet.status.u2o_interconnection_mac.trim())
        .filter(|m| is_unicast_mac(m) && status_ip == Some(ip));
    let (mac, mac_source) = match status_mac {
        Some(m) => (m, U2oSource::Status),
        None => (derive_mac(ip), U2oSource::Derived),
    };
    Some(U2o {
        ip,
        mac,
        ip_source,
        mac_source,
    })
}

/// Parses a `cidrBlock`: one IPv4 CIDR and at most one IPv6 CIDR, comma-separated.
fn parse_cidr_block(s: &str) -> Result<(Ipv4Net, Option<Ipv6Net>), String> {
    const RESERVED: [(&str, [u8; 4], u8); 3] = [
        ("loopback", [127, 0, 0, 0], 8),
        ("multicast", [224, 0, 0, 0], 4),
        ("link-local", [169, 254, 0, 0], 16),
    ];
    if s.trim().is_empty() {
        return Err(
            "must not be empty (IPv4 is required; underlay subnets without a CIDR are not supported)"
                .into(),
        );
    }
    let (mut v4, mut v6) = (None, None);
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("{s:?} is not a valid CIDR block (empty entry)"));
        }
        match part.parse::<IpNet>() {
            Err(_) => return Err(format!("{part:?} is not a valid CIDR")),
            Ok(IpNet::V4(net)) => {
                if v4.is_some() {
                    return Err(format!("{s:?} has more than one IPv4 CIDR"));
                }
                let net = net.trunc();
                if net.prefix_len() == 32 {
                    return Err(format!("{net} has an invalid mask /32"));
                }
                if net.network().is_unspecified() {
                    return Err(format!("{net} starts at 0.0.0.0"));
                }
                if net.contains(&Ipv4Addr::BROADCAST) {
                    return Err(format!("{net} contains 255.255.255.255"));
                }
                for (what, addr, len) in RESERVED {
                    let r = Ipv4Net::new(addr.into(), len).expect("valid prefix");
                    if overlaps(&net, &r) {
                        return Err(format!("{net} overlaps the {what} range {r}"));
                    }
                }
                v4 = Some(net);
            }
            Ok(IpNet::V6(net)) => {
                if part.chars().any(|c| c.is_ascii_uppercase()) {
                    return Err(format!("{part:?} must not contain upper case"));
                }
                if v6.is_some() {
                    return Err(format!("{s:?} has more than one IPv6 CIDR"));
                }
                v6 = Some(net.trunc());
            }
        }
    }
    match v4 {
        Some(net) => Ok((net, v6)),
        None => Err(format!("{s:?} has no IPv4 CIDR (IPv4 is required)")),
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn u2o_default_is_highest_free() {
        let gw = Ipv4Addr::new(192, 168, 50, 1);
        assert_eq!(
            u2o_default_ip(&net("192.168.50.0/24"), gw, &[]),
            Some(Ipv4Addr::new(192, 168, 50, 254))
        );
        let ex = [Ipv4Range {
            start: Ipv4Addr::new(192, 168, 50, 200),
            end: Ipv4Addr::new(192, 168, 50, 254),
        }];
        assert_eq!(
            u2o_default_ip(&net("192.168.50.0/24"), gw, &ex),
            Some(Ipv4Addr::new(192, 168, 50, 199))
        );
        let gw = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            u2o_default_ip(&net("10.0.0.0/30"), gw, &[]),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        let ex = [Ipv4Range {
            start: Ipv4Addr::new(10, 0, 0, 1),
            end: Ipv4Addr::new(10, 0, 0, 1),
        }];
        assert_eq!(u2o_default_ip(&net("10.0.0.0/30"), gw, &ex), None);
        // /31: both addresses are hosts.
        assert_eq!(
            u2o_default_ip(&net("10.0.0.4/31"), Ipv4Addr::new(10, 0, 0, 4), &[]),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        // Exclusions reaching down to 0.0.0.0 must not underflow.
        let all = [Ipv4Range {
            start: Ipv4Addr::new(0, 0, 0, 0),
            end: Ipv4Addr::new(10, 0, 0, 255),
        }];
        assert_eq!(
            u2o_default_ip(&net("10.0.0.0/24"), Ipv4Addr::new(10, 0, 0, 1), &all),
            None
        );
    }

    #[test]
    fn cidr_blocks() {
        assert_eq!(
            parse_cidr_block("10.16.0.5/16"),
            Ok((net("10.16.0.0/16"), None))
        );
        let (v4, v6) = parse_cidr_block("10.16.0.0/16, fd00:10:16::/64").unwrap();
        assert_eq!(v4, net("10.16.0.0/16"));
        assert_eq!(v6, Some("fd00:10:16::/64".parse().unwrap()));
        let err = |s: &str| parse_cidr_block(s).unwrap_err();
        assert_eq!(
            err("10.1.1.32/24,"),
            "\"10.1.1.32/24,\" is not a valid CIDR block (empty entry)"
        );
        assert_eq!(err("10.1.1.0/33"), "\"10.1.1.0/33\" is not a valid CIDR");
        assert_eq!(
            err("fd00::/64"),
            "\"fd00::/64\" has no IPv4 CIDR (IPv4 is required)"
        );
        assert_eq!(
            err("10.0.0.0/8,11.0.0.0/8"),
            "\"10.0.0.0/8,11.0.0.0/8\" has more than one IPv4 CIDR"
        );
        assert_eq!(err("10.0.0.1/32"), "10.0.0.1/32 has an invalid mask /32");
        assert_eq!(err("0.0.0.0/8"), "0.0.0.0/8 starts at 0.0.0.0");
        assert_eq!(
            err("255.255.255.0/24"),
            "255.255.255.0/24 contains 255.255.255.255"
        );
        assert_eq!(
            err("127.0.0.0/16"),
            "127.0.0.0/16 overlaps the loopback range 127.0.0.0/8"
        );
        assert_eq!(
            err("169.254.1.0/24"),
            "169.254.1.0/24 overlaps the link-local range 169.254.0.0/16"
        );
        assert_eq!(
            err("10.0.0.0/8,FD00::/64"),
            "\"FD00::/64\" must not contain upper case"
        );
    }
}
