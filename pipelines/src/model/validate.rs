//! Validation: raw objects in, a consistent [`ClusterState`] out.
//!
//! Every rule rejects only the object that breaks it; objects that depend on a rejected one are
//! rejected too, with a message saying so, and everything else is kept. Where two objects clash
//! (same IP, same MAC, overlapping CIDRs, same VLAN id), the first in key order wins, so the
//! result does not depend on the order objects arrived in.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::addr::{
    derive_mac, first_host, host_range, is_unicast_mac, parse_exclude, parse_mac, reserved_role,
    ExcludeEntry, Ipv4Range, MacAddr, MacDisplay,
};
use super::incremental::PodIndex;
use super::objects::{
    LabelSelector, Node, Object, ObjectKey, ObjectKind, ObjectSet, Pod, ProviderNetwork, StringMap,
    Subnet, Vlan, Vpc,
};

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
/// Longest ProviderNetwork name: `br-<name>` must fit IFNAMSIZ-1 = 15.
pub const MAX_PROVIDER_NETWORK_NAME: usize = 12;
/// Longest interface name (IFNAMSIZ-1).
pub const MAX_INTERFACE_NAME: usize = 15;

/// Why an object was rejected. Displays as `Subnet "foo": spec.gateway: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A validated `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: BTreeSet<String>,
}

/// A validated label selector (Kubernetes semantics: all terms must hold; empty matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelector {
    pub match_labels: StringMap,
    pub match_expressions: Vec<SelectorRequirement>,
}

impl NodeSelector {
    /// Whether a node with these labels is selected.
    pub fn matches(&self, labels: &StringMap) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    SelectorOperator::NotIn => {
                        !value.is_some_and(|v| r.values.iter().any(|x| x == v))
                    }
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// A `customInterfaces` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInterface {
    pub interface: String,
    pub nodes: BTreeSet<String>,
}

/// A validated ProviderNetwork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProviderNetwork {
    pub name: String,
    /// `br-<name>`.
    pub bridge: String,
    pub default_interface: String,
    pub custom_interfaces: Vec<NodeInterface>,
    pub exclude_nodes: BTreeSet<String>,
    pub node_selector: Option<NodeSelector>,
    pub exchange_link_name: bool,
}

impl ValidProviderNetwork {
    /// Whether the network is set up on this node: with a `nodeSelector`, iff it matches
    /// (`excludeNodes` is then ignored, as in Kube-OVN); otherwise iff not excluded.
    pub fn includes_node(&self, node: &str, labels: &StringMap) -> bool {
        match &self.node_selector {
            Some(sel) => sel.matches(labels),
            None => !self.exclude_nodes.contains(node),
        }
    }

    /// The NIC to bridge on this node (first `customInterfaces` entry naming the node, else
    /// `defaultInterface`), or `None` when the node is not included.
    pub fn interface_for(&self, node: &str, labels: &StringMap) -> Option<&str> {
        if !self.includes_node(node, labels) {
            return None;
        }
        let custom = self
            .custom_interfaces
            .iter()
            .find(|c| c.nodes.contains(node));
        Some(custom.map_or(self.default_interface.as_str(), |c| c.interface.as_str()))
    }
}

/// A validated Vlan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidVlan {
    pub name: String,
    /// 0 = untagged.
    pub id: u16,
    /// The ProviderNetwork (defaulted, known and valid).
    pub provider: String,
}

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

/// Checks an interface name the way Kube-OVN's CRD schema does (`maxLength: 15`, `^[^/\s]+$`).
fn check_interface_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.chars().count() > MAX_INTERFACE_NAME {
        Err(format!(
            "{s:?} is longer than {MAX_INTERFACE_NAME} characters"
        ))
    } else if s.chars().any(|c| c == '/' || c.is_whitespace()) {
        Err(format!("{s:?} must not contain '/' or whitespace"))
    } else {
        Ok(())
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| ok(c) || *c == b'-')
        && ok(&b[0])
        && ok(&b[b.len() - 1])
}

fn check_selector(sel: &LabelSelector, r: &mut Report<'_>) -> NodeSelector {
    let mut out = NodeSelector {
        match_labels: sel.match_labels.clone(),
        match_expressions: Vec::new(),
    };
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let field = format!("spec.nodeSelector.matchExpressions[{i}]");
        let operator = match e.operator.as_str() {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                r.fail(
                    format!("{field}.operator"),
                    format!("{other:?} is not a valid operator (In, NotIn, Exists, DoesNotExist)"),
                );
                continue;
            }
        };
        if e.key.is_empty() {
            r.fail(format!("{field}.key"), "must not be empty");
        }
        let needs_values = matches!(operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values == e.values.is_empty() {
            let msg = if needs_values {
                format!("must not be empty for operator {}", e.operator)
            } else {
                format!("must be empty for operator {}", e.operator)
            };
            r.fail(format!("{field}.values"), msg);
        }
        out.match_expressions.push(SelectorRequirement {
            key: e.key.clone(),
            operator,
            values: e.values.iter().cloned().collect(),
        });
    }
    out
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

    fn nodes(&mut self) {
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

    fn provider_networks(&mut self) {
        for (key, obj) in self.objects.of_kind(ObjectKind::ProviderNetwork) {
            let Object::ProviderNetwork(pn) = obj else {
                continue;
            };
            let mut r = Report::new(key);
            let valid = check_provider_network(pn, &mut r);
            if self.finish(r) {
                self.state.provider_networks.insert(key.name.clone(), valid);
            }
        }
    }

    fn vlans(&mut self) {
        let mut ids: HashMap<(&'a str, u16), &'a str> = HashMap::new();
        for (key, obj) in self.objects.of_kind(ObjectKind::Vlan) {
            let Object::Vlan(vlan) = obj else { continue };
            let mut r = Report::new(key);
            let id = vlan_id(vlan, &mut r);
            let defaulted = vlan.spec.provider.is_empty();
            let provider: &'a str = if defaulted {
                DEFAULT_VLAN_PROVIDER
            } else {
                &vlan.spec.provider
            };
            if !self.state.provider_networks.contains_key(provider) {
                let mut msg = self.missing(ObjectKind::ProviderNetwork, provider);
                if defaulted {
                    msg.push_str(" (the default when spec.provider is empty)");
                }
                r.fail("spec.provider", msg);
            }
            if let (Some(id @ 1..), true) = (id, r.ok()) {
                if let Some(other) = ids.get(&(provider, id)) {
                    r.fail(
                        "spec.id",
                        format!(
                            "id {id} on ProviderNetwork \"{provider}\" is already used by Vlan \"{other}\""
                        ),
                    );
                }
            }
            if self.finish(r) {
                let id = id.expect("checked");
                if id != 0 {
                    ids.insert((provider, id), key.name.as_str());
                }
                self.state.vlans.insert(
                    key.name.clone(),
                    ValidVlan {
                        name: key.name.clone(),
                        id,
                        provider: provider.to_owned(),
                    },
                );
            }
        }
    }

    fn vpcs(&mut self) {
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

    fn subnets(&mut self) {
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

    fn pods(&mut self) {
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

/// "unknown X" or "X was rejected": why a reference to a valid object failed.
fn missing_message(kind: ObjectKind, name: &str, exists: bool) -> String {
    if exists {
        format!("{kind} \"{name}\" was rejected")
    } else {
        format!("unknown {kind} \"{name}\"")
    }
}

/// What a pod's own rules need to know about the rest of the cluster: the valid nodes and
/// subnets, and which names belong to objects that exist but were rejected (for messages).
/// Pod changes never change any of it, which is what makes them incremental.
pub(super) struct PodContext<'s> {
    pub nodes: &'s BTreeMap<String, ValidNode>,
    pub subnets: &'s BTreeMap<String, ValidSubnet>,
    pub rejected_nodes: &'s HashSet<String>,
    pub rejected_subnets: &'s HashSet<String>,
}

/// What the pod-local rules decide about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PodVerdict {
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
pub(super) fn check_pod(key: &ObjectKey, pod: &Pod, ctx: &PodContext<'_>) -> PodVerdict {
    let Some(bound) = bound_annotations(pod) else {
        return PodVerdict::Unbound;
    };
    let inputs = PodInputs {
        subnet: bound.subnet,
        node: pod.spec.node_name.as_str(),
        ip: bound.ip.map(|s| (s, parse_ip_list(s))),
        mac: bound.mac.map(|s| (s, parse_mac(s.trim()))),
    };
    check_inputs(key, inputs, ctx)
}

/// [`check_pod`] for a pod known by its parsed values (one whose own fields parsed before):
/// the verdict its raw object would get.
pub(super) fn check_parsed(p: &ValidPod, ctx: &PodContext<'_>) -> PodVerdict {
    let key = ObjectKey::pod(p.namespace(), p.name());
    let inputs = PodInputs {
        subnet: Some(&*p.subnet),
        node: &p.node,
        ip: Some(("", Ok(Some(p.ip)))),
        mac: Some(("", Some(p.mac))),
    };
    check_inputs(&key, inputs, ctx)
}

/// A pod's own fields, with their parse results: (annotation text, parsed).
struct PodInputs<'a> {
    subnet: Option<&'a str>,
    node: &'a str,
    ip: Option<(&'a str, Result<Option<Ipv4Addr>, String>)>,
    mac: Option<(&'a str, Option<MacAddr>)>,
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
pub(super) struct Claims<'a> {
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

fn check_provider_network(pn: &ProviderNetwork, r: &mut Report<'_>) -> ValidProviderNetwork {
    let name = pn.metadata.name.as_str();
    if name.chars().count() > MAX_PROVIDER_NETWORK_NAME {
        r.fail(
            "metadata.name",
            format!(
                "{name:?} is longer than {MAX_PROVIDER_NETWORK_NAME} characters (bridge br-{name} must fit in {MAX_INTERFACE_NAME})"
            ),
        );
    } else if name == "int" {
        r.fail(
            "metadata.name",
            "\"int\" is reserved (bridge br-int is OVN's integration bridge)",
        );
    } else if !name.is_empty() && !is_dns1123_label(name) {
        r.fail(
            "metadata.name",
            format!("{name:?} is not a valid DNS-1123 label"),
        );
    }
    let spec = &pn.spec;
    if let Err(m) = check_interface_name(&spec.default_interface) {
        r.fail("spec.defaultInterface", m);
    }
    let mut custom_interfaces = Vec::new();
    for (i, c) in spec.custom_interfaces.iter().enumerate() {
        if let Err(m) = check_interface_name(&c.interface) {
            r.fail(format!("spec.customInterfaces[{i}].interface"), m);
        }
        custom_interfaces.push(NodeInterface {
            interface: c.interface.clone(),
            nodes: c.nodes.iter().cloned().collect(),
        });
    }
    let node_selector = spec.node_selector.as_ref().map(|s| check_selector(s, r));
    ValidProviderNetwork {
        name: name.to_owned(),
        bridge: format!("br-{name}"),
        default_interface: spec.default_interface.clone(),
        custom_interfaces,
        exclude_nodes: spec.exclude_nodes.iter().cloned().collect(),
        node_selector,
        exchange_link_name: spec.exchange_link_name,
    }
}

fn vlan_id(vlan: &Vlan, r: &mut Report<'_>) -> Option<u16> {
    let (field, value) = match (&vlan.spec.id, &vlan.spec.vlan_id) {
        (Some(id), _) => ("spec.id", id),
        (None, Some(id)) => ("spec.vlanId", id),
        (None, None) => return Some(0),
    };
    match value.as_int() {
        None => {
            r.fail(field, format!("{value} is not an integer"));
            None
        }
        Some(n @ 0..=4095) => Some(n as u16),
        Some(n) => {
            r.fail(field, format!("{n} is outside 0..4095"));
            None
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
    fn interface_names() {
        assert_eq!(check_interface_name("eth0.341"), Ok(()));
        assert_eq!(check_interface_name(""), Err("must not be empty".into()));
        assert_eq!(
            check_interface_name("a234567890123456"),
            Err("\"a234567890123456\" is longer than 15 characters".into())
        );
        assert_eq!(
            check_interface_name("eth 0"),
            Err("\"eth 0\" must not contain '/' or whitespace".into())
        );
        assert_eq!(
            check_interface_name("a/b"),
            Err("\"a/b\" must not contain '/' or whitespace".into())
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("phys-1"));
        assert!(!is_dns1123_label("Phys"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a_b"));
    }

    #[test]
    fn selector_semantics() {
        let labels: StringMap = [("zone", "a"), ("gw", "")].into_iter().collect();
        let req = |key: &str, operator, values: &[&str]| SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        let sel = |e: Vec<SelectorRequirement>| NodeSelector {
            match_labels: StringMap::new(),
            match_expressions: e,
        };
        assert!(sel(vec![]).matches(&labels));
        assert!(sel(vec![req("zone", SelectorOperator::In, &["a", "b"])]).matches(&labels));
        assert!(!sel(vec![req("zone", SelectorOperator::NotIn, &["a"])]).matches(&labels));
        assert!(sel(vec![req("rack", SelectorOperator::NotIn, &["a"])]).matches(&labels));
        assert!(sel(vec![req("gw", SelectorOperator::Exists, &[])]).matches(&labels));
        assert!(!sel(vec![req("gw", SelectorOperator::DoesNotExist, &[])]).matches(&labels));
        let ml = NodeSelector {
            match_labels: [("zone", "b")].into_iter().collect(),
            match_expressions: vec![],
        };
        assert!(!ml.matches(&labels));
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
