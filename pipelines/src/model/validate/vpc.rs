//! Vpcs: namespaces and IPv4 static routes; the default VPC exists without an object.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use super::super::objects::{Object, ObjectKey, ObjectKind, Vpc};
use super::{Report, Validator, DEFAULT_VPC};

/// Static route policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutePolicy {
    /// Match on destination (`policyDst`, the default).
    Destination,
    /// Match on source (`policySrc`).
    Source,
}

/// A validated IPv4 Vpc static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidStaticRoute {
    pub policy: RoutePolicy,
    pub cidr: Ipv4Net,
    pub next_hop: Ipv4Addr,
}

/// A validated Vpc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidVpc {
    pub name: String,
    pub namespaces: BTreeSet<String>,
    /// IPv4 routes; IPv6 ones are dropped.
    pub static_routes: Vec<ValidStaticRoute>,
    pub enable_external: bool,
    /// True for the default VPC when no Vpc object named `ovn-cluster` was given.
    pub implicit: bool,
    /// `metadata.creationTimestamp` as written (RFC 3339); `None` when absent and for the
    /// implicit default VPC.
    pub creation_timestamp: Option<String>,
}

impl<'a> Validator<'a> {
    pub(super) fn vpcs(&mut self) {
        for (key, obj) in self.objects.of_kind(ObjectKind::Vpc) {
            let Object::Vpc(vpc) = obj else { continue };
            let mut r = Report::new(key);
            let valid = check_vpc(vpc, &mut r);
            if self.finish(r) {
                self.state.vpcs.insert(key.name.clone(), valid);
            }
        }
        if !self
            .objects
            .contains(&ObjectKey::cluster(ObjectKind::Vpc, DEFAULT_VPC))
        {
            self.state.vpcs.insert(
                DEFAULT_VPC.to_owned(),
                ValidVpc {
                    name: DEFAULT_VPC.to_owned(),
                    namespaces: BTreeSet::new(),
                    static_routes: Vec::new(),
                    enable_external: false,
                    implicit: true,
                    creation_timestamp: None,
                },
            );
        }
    }
}

fn check_vpc(vpc: &Vpc, r: &mut Report<'_>) -> ValidVpc {
    let mut static_routes = Vec::new();
    for (i, route) in vpc.spec.static_routes.iter().enumerate() {
        let field = format!("spec.staticRoutes[{i}]");
        let policy = match route.policy.as_str() {
            "" | "policyDst" => RoutePolicy::Destination,
            "policySrc" => RoutePolicy::Source,
            other => {
                r.fail(
                    format!("{field}.policy"),
                    format!("{other:?} is not a valid policy (policyDst, policySrc)"),
                );
                continue;
            }
        };
        let cidr = match route.cidr.trim().parse::<IpNet>() {
            Ok(n) => n,
            Err(_) => {
                r.fail(
                    format!("{field}.cidr"),
                    format!("{:?} is not a valid CIDR", route.cidr),
                );
                continue;
            }
        };
        let hop = match route.next_hop_ip.trim().parse::<IpAddr>() {
            Ok(h) => h,
            Err(_) => {
                r.fail(
                    format!("{field}.nextHopIP"),
                    format!("{:?} is not a valid IP address", route.next_hop_ip),
                );
                continue;
            }
        };
        match (cidr, hop) {
            (IpNet::V4(cidr), IpAddr::V4(next_hop)) => static_routes.push(ValidStaticRoute {
                policy,
                cidr: cidr.trunc(),
                next_hop,
            }),
            (IpNet::V6(_), IpAddr::V6(_)) => {}
            _ => r.fail(
                format!("{field}.nextHopIP"),
                format!("{hop} is not of the family of {cidr}"),
            ),
        }
    }
    ValidVpc {
        name: vpc.metadata.name.clone(),
        namespaces: vpc.spec.namespaces.iter().cloned().collect(),
        static_routes,
        enable_external: vpc.spec.enable_external,
        implicit: false,
        creation_timestamp: vpc.metadata.creation_timestamp.clone(),
    }
}
