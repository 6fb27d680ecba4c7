//! Validation: raw objects in, a consistent [`ClusterState`] out.
//!
//! Every rule rejects only the object that breaks it; objects that depend on a rejected one are
//! rejected too, with a message saying so, and everything else is kept. Where two objects clash
//! (same IP, same MAC, overlapping CIDRs, same VLAN id), the first in key order wins, so the
//! result does not depend on the order objects arrived in.
//!
//! One module per object kind, in the order [`validate_with`] checks them (each kind may refer
//! only to kinds checked before it): [`node`], [`provider_network`], [`vlan`], [`vpc`],
//! [`subnet`], [`pod`]. Pods are decided by their own rules ([`pod::check_pod`]) and the address
//! rule between them ([`pod::Claims`]); [`pod_index`] holds the indexes validation builds so
//! that `super::incremental` can apply one pod change without validating again.

mod node;
mod pod;
mod pod_index;
mod provider_network;
mod subnet;
mod vlan;
mod vpc;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::objects::{ObjectKey, ObjectKind, ObjectSet};

pub use node::ValidNode;
pub(super) use pod::{check_pod, Claims, PodContext, PodVerdict};
pub use pod::{pod_is_bound, pod_values, Name, PodCniAnnotations, PodName, ValidPod};
pub(super) use pod_index::{PodIndex, Slot};
pub use provider_network::{
    NodeInterface, NodeSelector, SelectorOperator, SelectorRequirement, ValidProviderNetwork,
};
pub use subnet::{
    u2o_default_ip, GatewayType, SubnetMode, U2o, U2oSource, ValidSubnet, VlanBinding,
};
pub use vlan::ValidVlan;
pub use vpc::{RoutePolicy, ValidStaticRoute, ValidVpc};

/// The VPC of subnets whose `spec.vpc` is empty; it exists without a Vpc object.
pub const DEFAULT_VPC: &str = "ovn-cluster";
/// The subnet provider when `spec.provider` is empty: subnets Kube-OVN (and so kovs) wires.
pub const DEFAULT_SUBNET_PROVIDER: &str = "ovn";
/// The ProviderNetwork a Vlan with an empty `spec.provider` uses (`--default-provider-name`).
pub const DEFAULT_VLAN_PROVIDER: &str = "provider";
/// Pod (and node `ovn0`) IP annotation: `v4`, `v6` or `v4,v6`.
pub const ANNOTATION_IP_ADDRESS: &str = "ovn.kubernetes.io/ip_address";
/// Pod (and node `ovn0`) MAC annotation.
pub const ANNOTATION_MAC_ADDRESS: &str = "ovn.kubernetes.io/mac_address";
/// Pod annotation naming its Subnet.
pub const ANNOTATION_LOGICAL_SWITCH: &str = "ovn.kubernetes.io/logical_switch";
/// How the pod's NIC is made: `veth-pair` (the default) or `internal-port` (CNI only).
pub const ANNOTATION_POD_NIC_TYPE: &str = "ovn.kubernetes.io/pod_nic_type";
/// Extra routes of the pod, JSON `[{"dst":"CIDR","gw":"IP"}]` (CNI only).
pub const ANNOTATION_ROUTES: &str = "ovn.kubernetes.io/routes";
/// Longest ProviderNetwork name: `br-<name>` must fit IFNAMSIZ-1 = 15.
pub const MAX_PROVIDER_NETWORK_NAME: usize = 12;
/// Longest interface name (IFNAMSIZ-1).
pub const MAX_INTERFACE_NAME: usize = 15;

/// Why an object was rejected. Displays as `Subnet "foo": spec.gateway: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind} \"{name}\": {field}: {message}")]
pub struct ValidationError {
    /// Kind of the rejected object.
    pub kind: ObjectKind,
    /// Its name; `namespace/name` for pods.
    pub name: String,
    /// The offending field, as a path (`spec.excludeIps[2]`,
    /// `metadata.annotations[ovn.kubernetes.io/ip_address]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// The key of the rejected object.
    pub fn key(&self) -> ObjectKey {
        match self.name.split_once('/') {
            Some((ns, name)) if self.kind.is_namespaced() => ObjectKey::pod(ns, name),
            _ => ObjectKey::cluster(self.kind, self.name.clone()),
        }
    }
}

/// The validated cluster: what the flow compiler reads. Collections are ordered by name, so
/// anything generated from them is deterministic.
///
/// Besides the public fields it carries private indexes (who claims each pod address, which
/// referenced objects exist but were rejected) that [`ClusterState::upsert_pod`] and
/// [`ClusterState::delete_pod`] use to apply pod changes without revalidating. `==` and `Debug`
/// only look at the public fields. The indexes are built by [`validate`] and kept up to date by
/// those two methods: editing `pods` or `errors` by hand makes their later answers wrong.
#[derive(Clone, Default)]
pub struct ClusterState {
    pub nodes: BTreeMap<String, ValidNode>,
    pub provider_networks: BTreeMap<String, ValidProviderNetwork>,
    pub vlans: BTreeMap<String, ValidVlan>,
    /// Always holds `ovn-cluster` (implicit if no Vpc object names it, unless that one is invalid).
    pub vpcs: BTreeMap<String, ValidVpc>,
    pub subnets: BTreeMap<String, ValidSubnet>,
    pub pods: BTreeMap<PodName, ValidPod>,
    /// The rejected objects, in validation order (by kind in dependency order, then name).
    pub errors: Vec<ValidationError>,
    /// For incremental pod changes.
    pub(super) index: PodIndex,
}

impl PartialEq for ClusterState {
    /// Compares the validated content; the private indexes are derived from it and the objects.
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
            && self.provider_networks == other.provider_networks
            && self.vlans == other.vlans
            && self.vpcs == other.vpcs
            && self.subnets == other.subnets
            && self.pods == other.pods
            && self.errors == other.errors
    }
}

impl Eq for ClusterState {}

impl fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterState")
            .field("nodes", &self.nodes)
            .field("provider_networks", &self.provider_networks)
            .field("vlans", &self.vlans)
            .field("vpcs", &self.vpcs)
            .field("subnets", &self.subnets)
            .field("pods", &self.pods)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl ClusterState {
    /// Validates a set of raw objects (same as [`validate`]).
    pub fn from_objects(objects: &ObjectSet) -> ClusterState {
        validate(objects)
    }

    /// The errors reported for one object.
    pub fn errors_for<'a>(
        &'a self,
        key: &'a ObjectKey,
    ) -> impl Iterator<Item = &'a ValidationError> + 'a {
        self.errors.iter().filter(move |e| {
            e.kind == key.kind
                && if key.kind.is_namespaced() {
                    e.name.split_once('/') == Some((key.namespace.as_str(), key.name.as_str()))
                } else {
                    e.name == key.name
                }
        })
    }

    /// The subnets of a VPC, by name.
    pub fn subnets_in_vpc<'a>(
        &'a self,
        vpc: &'a str,
    ) -> impl Iterator<Item = &'a ValidSubnet> + 'a {
        self.subnets.values().filter(move |s| s.vpc == vpc)
    }

    /// A pod whose own fields parse, by key: valid, holding no address (a duplicate), or
    /// rejected by the rest of the cluster. What [`validate_with`] takes instead of its object.
    pub fn parsed_pod(&self, name: &PodName) -> Option<&ValidPod> {
        self.pods
            .get(name)
            .or_else(|| self.index.duplicates.get(name))
            .or_else(|| self.index.parked.get(name))
    }

    /// Every pod [`ClusterState::parsed_pod`] knows, unordered.
    pub fn parsed_pods(&self) -> impl Iterator<Item = (&PodName, &ValidPod)> {
        self.pods
            .iter()
            .chain(&self.index.duplicates)
            .chain(&self.index.parked)
    }

    /// The pods on a node, by namespace/name.
    pub fn pods_on_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ValidPod> + 'a {
        self.pods.values().filter(move |p| *p.node == *node)
    }
}

/// Validates a set of raw objects into a [`ClusterState`].
///
/// Pure and cheap enough to rerun on every change: one pass per kind, hash maps for the
/// uniqueness checks. Also builds the indexes that let [`ClusterState::upsert_pod`] and
/// [`ClusterState::delete_pod`] apply pod changes without rerunning it.
pub fn validate(objects: &ObjectSet) -> ClusterState {
    validate_with(objects, &BTreeMap::new())
}

/// [`validate`] of `objects` plus pods given already parsed: the pods a [`ClusterState`] holds
/// ([`ClusterState::parsed_pods`]) stand for their raw objects, which a consumer then need not
/// keep (a pod's verdict depends only on these values and the rest of the cluster). A pod in
/// both is taken from `objects`.
pub fn validate_with(objects: &ObjectSet, parsed: &BTreeMap<PodName, ValidPod>) -> ClusterState {
    let mut v = Validator {
        objects,
        parsed,
        state: ClusterState::default(),
    };
    v.nodes();
    v.provider_networks();
    v.vlans();
    v.vpcs();
    v.subnets();
    v.pods();
    v.state
}

/// Collects the errors of one object.
struct Report<'k> {
    key: &'k ObjectKey,
    errors: Vec<ValidationError>,
}

impl<'k> Report<'k> {
    fn new(key: &'k ObjectKey) -> Self {
        let mut r = Report {
            key,
            errors: Vec::new(),
        };
        if key.name.is_empty() {
            r.fail("metadata.name", "must not be empty");
        }
        r
    }

    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError {
            kind: self.key.kind,
            name: self.key.display_name(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

/// Parses `v4`, `v6` or `v4,v6`; returns the IPv4 part (`None` when only IPv6 is given).
fn parse_ip_list(s: &str) -> Result<Option<Ipv4Addr>, String> {
    let mut v4 = None;
    for part in s.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if v4.is_none() => v4 = Some(a),
            Ok(IpAddr::V4(_)) => return Err(format!("{s:?} has more than one IPv4 address")),
            Ok(IpAddr::V6(_)) => {}
            Err(_) => return Err(format!("{:?} is not a valid IP address", part.trim())),
        }
    }
    Ok(v4)
}

struct Validator<'a> {
    objects: &'a ObjectSet,
    parsed: &'a BTreeMap<PodName, ValidPod>,
    state: ClusterState,
}

impl<'a> Validator<'a> {
    fn finish(&mut self, r: Report<'_>) -> bool {
        let ok = r.ok();
        self.state.errors.extend(r.errors);
        ok
    }

    /// "unknown X" or "X was rejected", for a reference to a missing valid object.
    fn missing(&self, kind: ObjectKind, name: &str) -> String {
        let exists = self.objects.contains(&ObjectKey::cluster(kind, name));
        missing_message(kind, name, exists)
    }
}

/// "unknown X" or "X was rejected": why a reference to a valid object failed.
fn missing_message(kind: ObjectKind, name: &str, exists: bool) -> String {
    if exists {
        format!("{kind} \"{name}\" was rejected")
    } else {
        format!("unknown {kind} \"{name}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_lists() {
        assert_eq!(
            parse_ip_list("10.0.0.1,fd00::1"),
            Ok(Some(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(parse_ip_list("fd00::1"), Ok(None));
        assert_eq!(
            parse_ip_list("10.0.0.1,10.0.0.2"),
            Err("\"10.0.0.1,10.0.0.2\" has more than one IPv4 address".into())
        );
        assert_eq!(
            parse_ip_list("10.0.0"),
            Err("\"10.0.0\" is not a valid IP address".into())
        );
    }

    #[test]
    fn error_key_round_trip() {
        let e = ValidationError {
            kind: ObjectKind::Pod,
            name: "default/pod-a".into(),
            field: "spec.nodeName".into(),
            message: "unknown Node \"x\"".into(),
        };
        assert_eq!(e.key(), ObjectKey::pod("default", "pod-a"));
        assert_eq!(
            e.to_string(),
            "Pod \"default/pod-a\": spec.nodeName: unknown Node \"x\""
        );
    }
}
