//! Pods: their own rules ([`check_pod`]: bound annotations, subnet, node, addresses) and the
//! address rule between them ([`Claims`]: the first pod in key order asking for an IP or MAC in a
//! subnet gets it). Both are shared with incremental pod changes (`super::super::incremental`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::super::addr::{is_unicast_mac, parse_mac, reserved_role, MacAddr, MacDisplay};
use super::super::objects::{Object, ObjectKey, ObjectKind, Pod};
use super::pod_index::PodIndex;
use super::{
    annotation_field, missing_message, parse_ip_list, ClusterState, Report, ValidNode, ValidSubnet,
    ValidationError, Validator, ANNOTATION_IP_ADDRESS, ANNOTATION_LOGICAL_SWITCH,
    ANNOTATION_MAC_ADDRESS, ANNOTATION_POD_NIC_TYPE, ANNOTATION_ROUTES,
};

/// A shared, immutable name. Pods are most of a cluster and each is indexed several times (by
/// key, by address); sharing one allocation per name, and one per namespace, node and subnet
/// across all their pods, is most of what keeps the validated state small.
pub type Name = std::sync::Arc<str>;

/// A pod's identity, ordered as the tuple (namespace, name). One allocation per pod, shared by
/// every index that names the pod (the valid pods' map, the claimant indexes, the pod's own
/// [`ValidPod`]), each holding 8 bytes: pods are most of a cluster, so the size of this handle
/// is most of the validated state's.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodName(std::sync::Arc<PodNameParts>);

/// Field order is the order of [`PodName`]s.
#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PodNameParts {
    namespace: Name,
    name: Box<str>,
}

impl PodName {
    pub fn new(namespace: impl Into<Name>, name: &str) -> PodName {
        PodName(std::sync::Arc::new(PodNameParts {
            namespace: namespace.into(),
            name: name.into(),
        }))
    }

    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The namespace's shared allocation (one per namespace while validating).
    fn namespace_name(&self) -> &Name {
        &self.0.namespace
    }
}

impl From<&ObjectKey> for PodName {
    /// The pod named by a pod's key.
    fn from(key: &ObjectKey) -> PodName {
        PodName::new(key.namespace.as_str(), &key.name)
    }
}

impl fmt::Display for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace(), self.name())
    }
}

impl fmt::Debug for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PodName({self})")
    }
}

/// A pod bound to the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPod {
    /// Its namespace and name (the same allocation as its key in [`ClusterState::pods`]).
    pub id: PodName,
    /// `spec.nodeName`, a valid node.
    pub node: Name,
    /// The valid subnet named by `ovn.kubernetes.io/logical_switch`.
    pub subnet: Name,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    /// What its annotations ask of the CNI ADD beyond the address; `None` (one word) for
    /// nearly every pod.
    pub cni: Option<Box<PodCniAnnotations>>,
}

/// A pod's `pod_nic_type` and `routes` annotations, as written: the flows never depend on
/// them; the CNI server parses and judges them when the pod's NIC is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodCniAnnotations {
    pub nic_type: Option<Box<str>>,
    pub routes: Option<Box<str>>,
}

impl PodCniAnnotations {
    fn of(pod: &Pod) -> Option<Box<PodCniAnnotations>> {
        let get = |k: &str| pod.metadata.annotations.get(k).map(Box::from);
        let a = PodCniAnnotations {
            nic_type: get(ANNOTATION_POD_NIC_TYPE),
            routes: get(ANNOTATION_ROUTES),
        };
        (a != PodCniAnnotations::default()).then(|| Box::new(a))
    }
}

/// Hands out one [`Name`] per distinct namespace, node and subnet name while validating.
#[derive(Default)]
struct SharedNames(HashSet<Name>);

impl SharedNames {
    fn get(&mut self, n: &Name) -> Name {
        if let Some(s) = self.0.get(n) {
            return s.clone();
        }
        self.0.insert(n.clone());
        n.clone()
    }
    /// Points the pod's namespace, node and subnet at the shared copies.
    fn share(&mut self, p: &mut ValidPod) {
        let ns = self.get(p.id.namespace_name());
        if !std::sync::Arc::ptr_eq(&ns, p.id.namespace_name()) {
            p.id = PodName::new(ns, p.id.name());
        }
        p.node = self.get(&p.node);
        p.subnet = self.get(&p.subnet);
    }
}

impl ValidPod {
    pub fn namespace(&self) -> &str {
        self.id.namespace()
    }

    pub fn name(&self) -> &str {
        self.id.name()
    }

    /// The OVS `external_ids:iface-id` of the pod's port: `<pod>.<namespace>`, as Kube-OVN's
    /// CNI sets it for the primary (`ovn`) provider.
    pub fn iface_id(&self) -> String {
        format!("{}.{}", self.name(), self.namespace())
    }
}

impl<'a> Validator<'a> {
    pub(super) fn pods(&mut self) {
        let objects = self.objects;
        let ClusterState {
            nodes,
            subnets,
            pods,
            errors,
            index,
            ..
        } = &mut self.state;
        index.rejected_nodes = objects
            .of_kind(ObjectKind::Node)
            .filter(|(k, _)| !nodes.contains_key(&k.name))
            .map(|(k, _)| k.name.clone())
            .collect();
        index.rejected_subnets = objects
            .of_kind(ObjectKind::Subnet)
            .filter(|(k, _)| !subnets.contains_key(&k.name))
            .map(|(k, _)| k.name.clone())
            .collect();
        let PodIndex {
            rejected_nodes,
            rejected_subnets,
            claimants,
            duplicates,
            parked,
            odd_namespaces,
        } = index;
        let ctx = PodContext {
            nodes,
            subnets,
            rejected_nodes,
            rejected_subnets,
        };
        let mut claims = Claims::default();
        let mut names = SharedNames::default();
        // Built at the end from key order: a B-tree bulk-built from sorted entries has full
        // nodes, where inserting in order leaves them half empty (~2 MB at 33k pods).
        let mut accepted = Vec::new();
        // Raw and parsed pods, merged in key order (the address rule is decided in that order).
        let mut raw = objects
            .of_kind(ObjectKind::Pod)
            .filter_map(|(k, o)| match o {
                Object::Pod(p) => Some((k, p)),
                _ => None,
            })
            .peekable();
        let mut parsed = self.parsed.iter().peekable();
        loop {
            let take_raw = match (raw.peek(), parsed.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some((n, _))) => {
                    let ord =
                        (k.namespace.as_str(), k.name.as_str()).cmp(&(n.namespace(), n.name()));
                    if ord == std::cmp::Ordering::Equal {
                        parsed.next(); // the raw object wins
                    }
                    ord != std::cmp::Ordering::Greater
                }
            };
            let verdict = if take_raw {
                let (key, pod) = raw.next().expect("peeked");
                *odd_namespaces |= key.namespace.contains('/');
                check_pod(key, pod, &ctx)
            } else {
                let (n, p) = parsed.next().expect("peeked");
                *odd_namespaces |= n.namespace().contains('/');
                check_parsed(p, &ctx)
            };
            let mut valid = match verdict {
                PodVerdict::Unbound => continue,
                PodVerdict::Invalid(e, values) => {
                    errors.extend(e);
                    if let Some(mut p) = values {
                        names.share(&mut p);
                        parked.insert(p.id.clone(), p);
                    }
                    continue;
                }
                PodVerdict::Candidate(valid) => valid,
            };
            names.share(&mut valid);
            // Borrow the subnet name from the state, which outlives `claims`.
            let (subnet, _) = ctx
                .subnets
                .get_key_value(&*valid.subnet)
                .expect("a candidate's subnet is valid");
            let name = valid.id.clone();
            let dup = claims.decide(&name, subnet, valid.ip, valid.mac);
            claimants.add(&valid);
            if dup.is_empty() {
                accepted.push((name, valid));
            } else {
                errors.extend(dup);
                duplicates.insert(name, valid);
            }
        }
        *pods = accepted.into_iter().collect();
    }
}

/// What a pod's own rules need to know about the rest of the cluster: the valid nodes and
/// subnets, and which names belong to objects that exist but were rejected (for messages).
/// Pod changes never change any of it, which is what makes them incremental.
pub(in crate::model) struct PodContext<'s> {
    pub nodes: &'s BTreeMap<String, ValidNode>,
    pub subnets: &'s BTreeMap<String, ValidSubnet>,
    pub rejected_nodes: &'s HashSet<String>,
    pub rejected_subnets: &'s HashSet<String>,
}

/// What the pod-local rules decide about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::model) enum PodVerdict {
    /// Not on the dataplane (see [`bound_annotations`]): no error, claims nothing.
    Unbound,
    /// Rejected by its own rules (these errors, in order): claims nothing. With the pod's
    /// values when its own fields parse (only the rest of the cluster rejects it), so that it
    /// can be decided again from them alone.
    Invalid(Vec<ValidationError>, Option<ValidPod>),
    /// Passes its own rules: valid unless an earlier pod (in key order) already holds its IP or
    /// MAC in the subnet; see [`Claims`].
    Candidate(ValidPod),
}

/// The pod-local rules: everything about a pod except address clashes with other pods.
/// [`validate`] and the incremental pod updates both decide pods with this function.
pub(in crate::model) fn check_pod(key: &ObjectKey, pod: &Pod, ctx: &PodContext<'_>) -> PodVerdict {
    let Some(bound) = bound_annotations(pod) else {
        return PodVerdict::Unbound;
    };
    let inputs = PodInputs {
        subnet: bound.subnet,
        node: pod.spec.node_name.as_str(),
        ip: bound.ip.map(|s| (s, parse_ip_list(s))),
        mac: bound.mac.map(|s| (s, parse_mac(s.trim()))),
        cni: PodCniAnnotations::of(pod),
    };
    check_inputs(key, inputs, ctx)
}

/// [`check_pod`] for a pod known by its parsed values (one whose own fields parsed before):
/// the verdict its raw object would get.
pub(in crate::model) fn check_parsed(p: &ValidPod, ctx: &PodContext<'_>) -> PodVerdict {
    let key = ObjectKey::pod(p.namespace(), p.name());
    let inputs = PodInputs {
        subnet: Some(&*p.subnet),
        node: &p.node,
        ip: Some(("", Ok(Some(p.ip)))),
        mac: Some(("", Some(p.mac))),
        cni: p.cni.clone(),
    };
    check_inputs(&key, inputs, ctx)
}

/// A pod's own fields, with their parse results: (annotation text, parsed).
struct PodInputs<'a> {
    subnet: Option<&'a str>,
    node: &'a str,
    ip: Option<(&'a str, Result<Option<Ipv4Addr>, String>)>,
    mac: Option<(&'a str, Option<MacAddr>)>,
    cni: Option<Box<PodCniAnnotations>>,
}

/// A bound pod's values from its own fields alone: everything [`check_pod`] reads of the pod.
/// `None` when the pod is not bound or its own fields are malformed (then only its raw object
/// can be judged again).
pub fn pod_values(key: &ObjectKey, pod: &Pod) -> Option<ValidPod> {
    let bound = bound_annotations(pod)?;
    let ip = parse_ip_list(bound.ip?).ok()??;
    let mac = parse_mac(bound.mac?.trim()).filter(is_unicast_mac)?;
    Some(ValidPod {
        id: PodName::new(key.namespace.as_str(), &key.name),
        node: pod.spec.node_name.as_str().into(),
        subnet: bound.subnet?.into(),
        ip,
        mac,
        cni: PodCniAnnotations::of(pod),
    })
}

/// Whether a pod is on the dataplane at all, by its own fields (see [`bound_annotations`]).
pub fn pod_is_bound(pod: &Pod) -> bool {
    bound_annotations(pod).is_some()
}

fn check_inputs(key: &ObjectKey, bound: PodInputs<'_>, ctx: &PodContext<'_>) -> PodVerdict {
    let mut r = Report::new(key);
    let (ip_field, mac_field, ls_field) = (
        || annotation_field(ANNOTATION_IP_ADDRESS),
        || annotation_field(ANNOTATION_MAC_ADDRESS),
        || annotation_field(ANNOTATION_LOGICAL_SWITCH),
    );

    let subnet = match bound.subnet {
        None => {
            r.fail(
                ls_field(),
                format!(
                    "is required when {ANNOTATION_IP_ADDRESS} or {ANNOTATION_MAC_ADDRESS} is set"
                ),
            );
            None
        }
        Some(name) => match ctx.subnets.get(name) {
            None => {
                let exists = ctx.rejected_subnets.contains(name);
                r.fail(
                    ls_field(),
                    missing_message(ObjectKind::Subnet, name, exists),
                );
                None
            }
            // IPAM-only subnets (another CNI's provider) have no OVS dataplane.
            Some(s) if !s.ovn_managed => {
                r.fail(
                    ls_field(),
                    format!(
                        "Subnet \"{name}\" has provider {:?}, which kovs does not wire",
                        s.provider
                    ),
                );
                None
            }
            Some(s) => Some(s),
        },
    };
    let node = bound.node;
    if !ctx.nodes.contains_key(node) {
        let exists = ctx.rejected_nodes.contains(node);
        r.fail(
            "spec.nodeName",
            missing_message(ObjectKind::Node, node, exists),
        );
    }

    let ip = match bound.ip {
        None => {
            r.fail(
                ip_field(),
                format!("is required when {ANNOTATION_MAC_ADDRESS} is set"),
            );
            None
        }
        Some((s, parsed)) => match parsed {
            Ok(Some(ip)) => Some(ip),
            Ok(None) => {
                r.fail(
                    ip_field(),
                    format!("{s:?} has no IPv4 address (IPv4 is required)"),
                );
                None
            }
            Err(m) => {
                r.fail(ip_field(), m);
                None
            }
        },
    };
    let mac = match bound.mac {
        None => {
            r.fail(
                mac_field(),
                format!("is required when {ANNOTATION_IP_ADDRESS} is set"),
            );
            None
        }
        Some((s, parsed)) => match parsed {
            None => {
                r.fail(mac_field(), format!("{s:?} is not a valid MAC address"));
                None
            }
            Some(m) if !is_unicast_mac(&m) => {
                r.fail(
                    mac_field(),
                    format!("{} is not a unicast MAC address", MacDisplay(&m)),
                );
                None
            }
            Some(m) => Some(m),
        },
    };

    if let (Some(s), Some(ip)) = (subnet, ip) {
        if !s.cidr.contains(&ip) {
            r.fail(
                ip_field(),
                format!("{ip} is not in {} of Subnet \"{}\"", s.cidr, s.name),
            );
        } else if ip == s.gateway {
            r.fail(
                ip_field(),
                format!("{ip} is the gateway of Subnet \"{}\"", s.name),
            );
        } else if let Some(role) = reserved_role(&s.cidr, ip) {
            r.fail(
                ip_field(),
                format!("{ip} is the {role} address of {}", s.cidr),
            );
        } else if s.u2o().is_some_and(|u| u.ip == ip) {
            r.fail(
                ip_field(),
                format!(
                    "{ip} is the u2o interconnection IP of Subnet \"{}\"",
                    s.name
                ),
            );
        }
    }
    if let (Some(s), Some(mac)) = (subnet, mac) {
        if s.u2o().is_some_and(|u| u.mac == mac) {
            r.fail(
                mac_field(),
                format!(
                    "{} is the u2o interconnection MAC of Subnet \"{}\"",
                    MacDisplay(&mac),
                    s.name
                ),
            );
        }
    }
    // Its own fields parsed: the values decide it from now on (see `check_parsed`).
    let values = match (bound.subnet, ip, mac) {
        (Some(subnet), Some(ip), Some(mac)) => Some(ValidPod {
            id: PodName::new(key.namespace.as_str(), &key.name),
            node: node.into(),
            subnet: subnet.into(),
            ip,
            mac,
            cni: bound.cni,
        }),
        _ => None,
    };
    match values {
        Some(v) if r.ok() => PodVerdict::Candidate(v),
        v => PodVerdict::Invalid(r.errors, v),
    }
}

/// The address rule between pods: within a subnet, the first candidate in key order that asks
/// for an IP or MAC gets it, and a pod that loses either is rejected and claims nothing.
/// Feed it candidates ([`PodVerdict::Candidate`]) in key order.
#[derive(Default)]
pub(in crate::model) struct Claims<'a> {
    /// (subnet, IP) -> accepted holder.
    ips: HashMap<(&'a str, Ipv4Addr), PodName>,
    /// (subnet, MAC) -> accepted holder.
    macs: HashMap<(&'a str, MacAddr), PodName>,
}

impl<'a> Claims<'a> {
    /// Decides the candidate `who` (namespace, name) asking for `ip` and `mac` in `subnet`:
    /// returns its errors, none when it is accepted (it then holds both addresses).
    pub fn decide(
        &mut self,
        who: &PodName,
        subnet: &'a str,
        ip: Ipv4Addr,
        mac: MacAddr,
    ) -> Vec<ValidationError> {
        let error = |field: &str, message: String| ValidationError {
            kind: ObjectKind::Pod,
            name: who.to_string(),
            field: annotation_field(field),
            message,
        };
        let mut errors = Vec::new();
        if let Some(holder) = self.ips.get(&(subnet, ip)) {
            errors.push(error(
                ANNOTATION_IP_ADDRESS,
                format!("{ip} is already used by Pod \"{holder}\" in Subnet \"{subnet}\""),
            ));
        }
        if let Some(holder) = self.macs.get(&(subnet, mac)) {
            errors.push(error(
                ANNOTATION_MAC_ADDRESS,
                format!(
                    "{} is already used by Pod \"{holder}\" in Subnet \"{subnet}\"",
                    MacDisplay(&mac)
                ),
            ));
        }
        if errors.is_empty() {
            self.ips.insert((subnet, ip), who.clone());
            self.macs.insert((subnet, mac), who.clone());
        }
        errors
    }
}

/// The binding annotations of a pod on the dataplane, `None` when the pod is not bound:
/// host-network, not scheduled, finished (`Succeeded`/`Failed`: Kube-OVN released its address),
/// or no address allocated yet (neither IP nor MAC annotation; a preset `logical_switch` alone
/// only asks the controller for an address).
struct Bound<'a> {
    ip: Option<&'a str>,
    mac: Option<&'a str>,
    subnet: Option<&'a str>,
}

fn bound_annotations(pod: &Pod) -> Option<Bound<'_>> {
    if pod.spec.host_network
        || pod.spec.node_name.is_empty()
        || matches!(pod.status.phase.as_str(), "Succeeded" | "Failed")
    {
        return None;
    }
    let get = |k: &str| {
        pod.metadata
            .annotations
            .get(k)
            .filter(|v| !v.trim().is_empty())
    };
    let b = Bound {
        ip: get(ANNOTATION_IP_ADDRESS),
        mac: get(ANNOTATION_MAC_ADDRESS),
        subnet: get(ANNOTATION_LOGICAL_SWITCH),
    };
    (b.ip.is_some() || b.mac.is_some()).then_some(b)
}
