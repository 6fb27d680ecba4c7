//! Pods as the controller reads them (Kube-OVN's annotations, node, owner), what a pod asks
//! for (a static address, an `ip_pool`, a MAC), and what the controller writes for it: Kube-OVN's
//! annotation set and the `kubeovn.io/v1` IP object `<pod>.<namespace>`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use pipelines::model::ipam::Lease;
use pipelines::model::{format_mac, parse_mac, MacAddr, SubnetMode, ValidSubnet};
use serde_json::{json, Value};

/// Kube-OVN's annotation prefix.
pub const PREFIX: &str = "ovn.kubernetes.io/";
pub const ALLOCATED: &str = "ovn.kubernetes.io/allocated";
pub const IP_ADDRESS: &str = "ovn.kubernetes.io/ip_address";
pub const MAC_ADDRESS: &str = "ovn.kubernetes.io/mac_address";
pub const CIDR: &str = "ovn.kubernetes.io/cidr";
pub const GATEWAY: &str = "ovn.kubernetes.io/gateway";
pub const LOGICAL_SWITCH: &str = "ovn.kubernetes.io/logical_switch";
pub const LOGICAL_ROUTER: &str = "ovn.kubernetes.io/logical_router";
pub const VLAN_ID: &str = "ovn.kubernetes.io/vlan_id";
pub const PROVIDER_NETWORK: &str = "ovn.kubernetes.io/provider_network";
pub const ROUTED: &str = "ovn.kubernetes.io/routed";
pub const IP_POOL: &str = "ovn.kubernetes.io/ip_pool";
pub const EXCLUDE_IPS: &str = "ovn.kubernetes.io/exclude_ips";
pub const PORT_NAME: &str = "ovn.kubernetes.io/port_name";
/// The IP object's labels (Kube-OVN's `util.SubnetNameLabel`, `util.NodeNameLabel`).
pub const SUBNET_LABEL: &str = "ovn.kubernetes.io/subnet";
pub const NODE_LABEL: &str = "ovn.kubernetes.io/node-name";

/// `metadata.annotations` with Kube-OVN's prefix.
pub fn ovn_annotations(o: &Value) -> BTreeMap<String, String> {
    o.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with(PREFIX))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// What the controller keeps of a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub host_network: bool,
    /// Owned by a StatefulSet (its name ends in the ordinal).
    pub statefulset: bool,
    /// Not Succeeded or Failed: a finished pod's address is given back (Kube-OVN's
    /// `isPodAlive`).
    pub alive: bool,
    pub annotations: BTreeMap<String, String>,
}

impl PodView {
    pub fn from_json(o: &Value) -> PodView {
        let owners = o
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array);
        PodView {
            namespace: match str_at(o, "/metadata/namespace") {
                "" => "default".into(),
                ns => ns.into(),
            },
            name: str_at(o, "/metadata/name").into(),
            uid: str_at(o, "/metadata/uid").into(),
            node: str_at(o, "/spec/nodeName").into(),
            host_network: o
                .pointer("/spec/hostNetwork")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            statefulset: owners
                .is_some_and(|a| a.iter().any(|r| str_at(r, "/kind") == "StatefulSet")),
            alive: !matches!(str_at(o, "/status/phase"), "Succeeded" | "Failed"),
            annotations: ovn_annotations(o),
        }
    }

    /// Kube-OVN's name of its address: the IP object's and the allocator's owner.
    pub fn owner(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.annotations
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// What the pod holds already (`allocated=true` with an address): subnet, IP, MAC.
    pub fn allocated(&self) -> Option<(String, Ipv4Addr, Option<MacAddr>)> {
        if self.get(ALLOCATED) != Some("true") {
            return None;
        }
        let ip = v4_of(self.get(IP_ADDRESS)?).ok()?;
        let subnet = self.get(LOGICAL_SWITCH)?.to_string();
        Some((subnet, ip, self.get(MAC_ADDRESS).and_then(parse_mac)))
    }

    /// The subnet the pod names (`logical_switch`).
    pub fn named_subnet(&self) -> Option<&str> {
        self.get(LOGICAL_SWITCH)
    }

    /// What the pod asks for; `Err` names the annotation and the problem.
    pub fn request(&self) -> Result<Request, String> {
        let mac = match self.get(MAC_ADDRESS) {
            None => None,
            Some(m) => {
                Some(parse_mac(m).ok_or_else(|| format!("{MAC_ADDRESS} {m} is not a valid MAC"))?)
            }
        };
        let what = if let Some(ip) = self.get(IP_ADDRESS) {
            Want::Static(v4_of(ip).map_err(|e| format!("{IP_ADDRESS} {e}"))?)
        } else if let Some(pool) = self.get(IP_POOL) {
            let mut ips = parse_pool(pool)?;
            if self.statefulset {
                if let Some(i) = ordinal(&self.name).filter(|i| *i < ips.len()) {
                    let own = ips.remove(i);
                    ips.insert(0, own);
                }
            }
            Want::Pool(ips)
        } else {
            Want::Any
        };
        Ok(Request { what, mac })
    }
}

/// A pod's ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub what: Want,
    pub mac: Option<MacAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `ip_address`.
    Static(Ipv4Addr),
    /// `ip_pool` (a StatefulSet pod's own entry first).
    Pool(Vec<Ipv4Addr>),
    /// The lowest free address.
    Any,
}

/// The IPv4 part of `v4`, `v6`, `v4,v6`.
fn v4_of(s: &str) -> Result<Ipv4Addr, String> {
    let mut v4 = None;
    for part in s.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if v4.is_none() => v4 = Some(a),
            Ok(_) => {}
            Err(_) => return Err(format!("{part} is not a valid address")),
        }
    }
    v4.ok_or_else(|| format!("{s} has no IPv4 address"))
}

/// An `ip_pool`: addresses separated by `,` (and `;` between dual-stack entries); the IPv4 ones.
pub fn parse_pool(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut out = Vec::new();
    for part in s.split([',', ';']).map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => out.push(a),
            Ok(IpAddr::V6(_)) => {}
            Err(_) => return Err(format!("{IP_POOL} {s}: {part} is not a valid IP address")),
        }
    }
    if out.is_empty() {
        return Err(format!("{IP_POOL} {s}: no IPv4 address"));
    }
    Ok(out)
}

/// A StatefulSet pod's ordinal: the number after the name's last `-`.
pub fn ordinal(name: &str) -> Option<usize> {
    name.rsplit_once('-')?.1.parse().ok()
}

/// Kube-OVN's annotations of a pod with `lease` in `subnet` (`pkg/controller/pod.go`).
pub fn annotations(subnet: &ValidSubnet, lease: &Lease) -> BTreeMap<&'static str, String> {
    let mut a = BTreeMap::new();
    a.insert(ALLOCATED, "true".to_string());
    a.insert(IP_ADDRESS, lease.ip.to_string());
    a.insert(MAC_ADDRESS, format_mac(&lease.mac));
    a.insert(CIDR, subnet.cidr.to_string());
    a.insert(GATEWAY, subnet.gateway.to_string());
    a.insert(LOGICAL_SWITCH, subnet.name.clone());
    if !matches!(subnet.mode, SubnetMode::Underlay) {
        a.insert(LOGICAL_ROUTER, subnet.vpc.clone());
    }
    if let Some(v) = &subnet.vlan {
        a.insert(VLAN_ID, v.id.to_string());
        a.insert(PROVIDER_NETWORK, v.provider_network.clone());
    }
    a.insert(ROUTED, "true".to_string());
    a
}

/// Whether the pod's annotations carry `want` already.
pub fn has_annotations(pod: &PodView, want: &BTreeMap<&'static str, String>) -> bool {
    want.iter()
        .all(|(k, v)| pod.annotations.get(*k).map(String::as_str) == Some(v.as_str()))
}

/// The IP object of a pod's address (Kube-OVN's `createOrUpdateIPCR`).
pub fn ip_object(pod: &PodView, subnet: &str, lease: &Lease) -> Value {
    let ip = lease.ip.to_string();
    json!({
        "apiVersion": "kubeovn.io/v1",
        "kind": "IP",
        "metadata": {
            "name": pod.owner(),
            "labels": {SUBNET_LABEL: subnet, NODE_LABEL: pod.node, subnet: ""},
        },
        "spec": {
            "podName": pod.name, "namespace": pod.namespace, "subnet": subnet,
            "attachSubnets": [], "nodeName": pod.node, "ipAddress": ip, "v4IpAddress": ip,
            "v6IpAddress": "", "attachIps": [], "macAddress": format_mac(&lease.mac),
            "attachMacs": [], "containerID": "", "podType": "",
        },
    })
}

/// What the controller keeps of an IP object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpView {
    pub name: String,
    pub pod: String,
    pub namespace: String,
    pub subnet: String,
    pub node: String,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<MacAddr>,
}

impl IpView {
    pub fn from_json(o: &Value) -> IpView {
        let spec = |k: &str| str_at(o, &format!("/spec/{k}")).to_string();
        let ip = match str_at(o, "/spec/v4IpAddress") {
            "" => str_at(o, "/spec/ipAddress"),
            v4 => v4,
        };
        IpView {
            name: str_at(o, "/metadata/name").into(),
            pod: spec("podName"),
            namespace: spec("namespace"),
            subnet: spec("subnet"),
            node: spec("nodeName"),
            ip: v4_of(ip).ok(),
            mac: parse_mac(str_at(o, "/spec/macAddress")),
        }
    }

    /// Whether it stands for a pod's primary address (`<pod>.<namespace>`).
    pub fn is_pods(&self) -> bool {
        !self.pod.is_empty() && self.name == format!("{}.{}", self.pod, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: Value, sts: bool) -> PodView {
        let owners = if sts {
            json!([{"kind": "StatefulSet", "name": "web"}])
        } else {
            json!([])
        };
        PodView::from_json(&json!({
            "metadata": {"name": "web-2", "namespace": "ns", "uid": "u1",
                         "annotations": annotations, "ownerReferences": owners},
            "spec": {"nodeName": "n1"},
        }))
    }

    #[test]
    fn requests_read_the_static_address_the_pool_and_the_mac() {
        let p = pod(
            json!({IP_ADDRESS: "10.16.0.9", MAC_ADDRESS: "00:00:00:aa:bb:cc"}),
            false,
        );
        assert_eq!(
            p.request().unwrap(),
            Request {
                what: Want::Static("10.16.0.9".parse().unwrap()),
                mac: parse_mac("00:00:00:aa:bb:cc"),
            }
        );
        let pool = json!({IP_POOL: "10.16.0.20,10.16.0.21,10.16.0.22,10.16.0.23"});
        let ips = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>();
        // A StatefulSet's pod web-2 takes entry 2 first.
        assert_eq!(
            pod(pool.clone(), true).request().unwrap().what,
            Want::Pool(ips(&[
                "10.16.0.22",
                "10.16.0.20",
                "10.16.0.21",
                "10.16.0.23"
            ]))
        );
        assert_eq!(
            pod(pool, false).request().unwrap().what,
            Want::Pool(ips(&[
                "10.16.0.20",
                "10.16.0.21",
                "10.16.0.22",
                "10.16.0.23"
            ]))
        );
        assert_eq!(
            pod(json!({IP_POOL: "10.16.0.20,bogus"}), false)
                .request()
                .unwrap_err(),
            "ovn.kubernetes.io/ip_pool 10.16.0.20,bogus: bogus is not a valid IP address"
        );
        assert_eq!(
            pod(json!({IP_ADDRESS: "10.16.0.300"}), false)
                .request()
                .unwrap_err(),
            "ovn.kubernetes.io/ip_address 10.16.0.300 is not a valid address"
        );
        assert!(pod(json!({MAC_ADDRESS: "zz"}), false).request().is_err());
        assert_eq!(pod(json!({}), false).request().unwrap().what, Want::Any);
    }

    #[test]
    fn an_allocated_pod_says_what_it_holds() {
        let p = pod(
            json!({ALLOCATED: "true", IP_ADDRESS: "10.16.0.9", LOGICAL_SWITCH: "ovn-default",
                   MAC_ADDRESS: "00:00:00:aa:bb:cc", "other/x": "y"}),
            false,
        );
        assert_eq!(
            p.allocated(),
            Some((
                "ovn-default".into(),
                "10.16.0.9".parse().unwrap(),
                parse_mac("00:00:00:aa:bb:cc")
            ))
        );
        assert!(!p.annotations.contains_key("other/x"));
        assert_eq!(p.owner(), "web-2.ns");
        assert_eq!(
            pod(json!({IP_ADDRESS: "10.16.0.9"}), false).allocated(),
            None
        );
        assert_eq!(ordinal("web-12"), Some(12));
        assert_eq!(ordinal("web"), None);
    }
}
