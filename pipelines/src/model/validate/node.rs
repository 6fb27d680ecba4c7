//! Nodes: an IPv4 InternalIP (unique across nodes) and the node port's join address from the
//! Kube-OVN annotations.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use super::super::addr::{parse_mac, MacAddr};
use super::super::objects::{Node, Object, ObjectKind, StringMap};
use super::{
    annotation_field, parse_ip_list, Report, Validator, ANNOTATION_IP_ADDRESS,
    ANNOTATION_MAC_ADDRESS,
};

/// A validated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidNode {
    pub name: String,
    /// The first IPv4 `InternalIP`: the tunnel endpoint.
    pub internal_ip: Ipv4Addr,
    /// For ProviderNetwork `nodeSelector`s.
    pub labels: StringMap,
    /// IPv4 of the node's `ovn0` join port (node annotation `ovn.kubernetes.io/ip_address`).
    pub join_ip: Option<Ipv4Addr>,
    /// MAC of `ovn0` (node annotation `ovn.kubernetes.io/mac_address`).
    pub join_mac: Option<MacAddr>,
}

impl<'a> Validator<'a> {
    pub(super) fn nodes(&mut self) {
        let mut by_ip: HashMap<Ipv4Addr, &'a str> = HashMap::new();
        for (key, obj) in self.objects.of_kind(ObjectKind::Node) {
            let Object::Node(node) = obj else { continue };
            let mut r = Report::new(key);
            let Some(valid) = check_node(node, &mut r) else {
                self.finish(r);
                continue;
            };
            if let Some(other) = by_ip.get(&valid.internal_ip) {
                r.fail(
                    "status.addresses",
                    format!(
                        "InternalIP {} is already used by Node \"{other}\"",
                        valid.internal_ip
                    ),
                );
            }
            if self.finish(r) {
                by_ip.insert(valid.internal_ip, key.name.as_str());
                self.state.nodes.insert(key.name.clone(), valid);
            }
        }
    }
}

fn check_node(node: &Node, r: &mut Report<'_>) -> Option<ValidNode> {
    let mut v4 = None;
    let mut v6 = None;
    for (i, a) in node.status.addresses.iter().enumerate() {
        if a.type_ != "InternalIP" {
            continue;
        }
        match a.address.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                v4.get_or_insert(ip);
            }
            Ok(IpAddr::V6(ip)) => {
                v6.get_or_insert(ip);
            }
            Err(_) => r.fail(
                format!("status.addresses[{i}].address"),
                format!("{:?} is not a valid IP address", a.address),
            ),
        }
    }
    if v4.is_none() && r.ok() {
        match v6 {
            None => r.fail("status.addresses", "no InternalIP address"),
            Some(v6) => r.fail(
                "status.addresses",
                format!("no IPv4 InternalIP address (IPv4 is required; found {v6})"),
            ),
        }
    }
    let ann = &node.metadata.annotations;
    let join_ip = ann.get(ANNOTATION_IP_ADDRESS).and_then(|s| {
        parse_ip_list(s)
            .map_err(|m| r.fail(annotation_field(ANNOTATION_IP_ADDRESS), m))
            .ok()
            .flatten()
    });
    let join_mac = ann.get(ANNOTATION_MAC_ADDRESS).and_then(|s| {
        let m = parse_mac(s.trim());
        if m.is_none() {
            r.fail(
                annotation_field(ANNOTATION_MAC_ADDRESS),
                format!("{s:?} is not a valid MAC address"),
            );
        }
        m
    });
    let internal_ip = v4?;
    r.ok().then(|| ValidNode {
        name: node.metadata.name.clone(),
        internal_ip,
        labels: node.metadata.labels.clone(),
        join_ip,
        join_mac,
    })
}
