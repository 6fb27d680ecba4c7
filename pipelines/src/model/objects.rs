//! Raw Kubernetes objects, as they appear in YAML/JSON.
//!
//! Field names follow Kube-OVN's Go types (camelCase on the wire). Unknown fields are ignored and
//! every field is optional, so the loader never rejects an object for what it leaves out: what a
//! missing or bad value means is decided by validation, which can name the field.
//! Scalars are read leniently (`vlan: 100` is the string "100", `id: "100"` the integer 100):
//! hand-written YAML gets a field-level validation error instead of an opaque parse error.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The kinds kovs reads. The order is the dependency order validation follows
/// (a Vlan needs its ProviderNetwork, a Subnet its Vlan and Vpc, a Pod its Subnet and Node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// core `v1` Node.
    Node,
    /// `kubeovn.io/v1` ProviderNetwork.
    ProviderNetwork,
    /// `kubeovn.io/v1` Vlan.
    Vlan,
    /// `kubeovn.io/v1` Vpc.
    Vpc,
    /// `kubeovn.io/v1` Subnet.
    Subnet,
    /// core `v1` Pod (the only namespaced kind).
    Pod,
}

impl ObjectKind {
    /// Every kind, in dependency order.
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Node,
        ObjectKind::ProviderNetwork,
        ObjectKind::Vlan,
        ObjectKind::Vpc,
        ObjectKind::Subnet,
        ObjectKind::Pod,
    ];

    /// The `kind:` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Node => "Node",
            ObjectKind::ProviderNetwork => "ProviderNetwork",
            ObjectKind::Vlan => "Vlan",
            ObjectKind::Vpc => "Vpc",
            ObjectKind::Subnet => "Subnet",
            ObjectKind::Pod => "Pod",
        }
    }

    /// The `apiVersion:` this kind is read from.
    pub fn api_version(self) -> &'static str {
        match self {
            ObjectKind::Node | ObjectKind::Pod => "v1",
            _ => "kubeovn.io/v1",
        }
    }

    /// Whether objects of this kind live in a namespace (Kube-OVN's CRDs are cluster-scoped).
    pub fn is_namespaced(self) -> bool {
        self == ObjectKind::Pod
    }

    /// The kind for an `apiVersion`/`kind` pair, `None` for kinds kovs ignores.
    pub fn from_type(api_version: &str, kind: &str) -> Option<ObjectKind> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object: what an incremental consumer keys its caches and changes by.
/// `namespace` is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind.
    pub kind: ObjectKind,
    /// The namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// Key of a cluster-scoped object.
    pub fn cluster(kind: ObjectKind, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: String::new(),
            name: name.into(),
        }
    }

    /// Key of a pod.
    pub fn pod(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind: ObjectKind::Pod,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// `name`, or `namespace/name` for namespaced kinds: how errors name the object.
    pub fn display_name(&self) -> String {
        if self.kind.is_namespaced() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            self.name.clone()
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.kind, self.display_name())
    }
}

/// The part of `metadata` kovs uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// Empty means `default` for pods (as kubectl applies it) and nothing for cluster-scoped kinds.
    #[serde(deserialize_with = "lenient::string")]
    pub namespace: String,
    #[serde(deserialize_with = "lenient::string_map")]
    pub labels: StringMap,
    #[serde(deserialize_with = "lenient::string_map")]
    pub annotations: StringMap,
    /// `metadata.creationTimestamp` as written (RFC 3339, e.g. `2024-05-01T12:00:00Z`); `None`
    /// when absent, null or empty. Not parsed: RFC 3339 UTC timestamps of one format sort in
    /// time order as strings.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub creation_timestamp: Option<String>,
}

/// Labels or annotations: a few entries per object, tens of thousands of objects. A sorted
/// vector of boxed strings holds three annotations in ~100 bytes plus the text, where a
/// `BTreeMap<String, String>` spends a 0.5 KB node on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringMap(Vec<(Box<str>, Box<str>)>);

impl StringMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| &*self.0[i].1)
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(
        &mut self,
        key: impl Into<Box<str>>,
        value: impl Into<Box<str>>,
    ) -> Option<Box<str>> {
        let key = key.into();
        let value = value.into();
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Box<str>> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = StringMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m.0.shrink_to_fit();
        m
    }
}

/// An integer field as written: validation reports non-integers with the field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    /// The integer, if the value is one (numeric strings included).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::String(s) => s.trim().parse().ok(),
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for IntOrString {
    fn from(v: i64) -> Self {
        IntOrString::Int(v)
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                Ok(i64::try_from(v)
                    .map(IntOrString::Int)
                    .unwrap_or_else(|_| IntOrString::String(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `kubeovn.io/v1` Subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Subnet {
    pub metadata: ObjectMeta,
    pub spec: SubnetSpec,
    pub status: SubnetStatus,
}

/// Subnet `spec` (Kube-OVN `SubnetSpec`, the fields with node-dataplane meaning).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubnetSpec {
    /// `v4`, `v6` or `v4,v6`.
    #[serde(deserialize_with = "lenient::string")]
    pub cidr_block: String,
    /// One address per family, comma-separated; empty = first host address.
    #[serde(deserialize_with = "lenient::string")]
    pub gateway: String,
    /// Entries are addresses or `a..b` ranges.
    #[serde(deserialize_with = "lenient::string_list")]
    pub exclude_ips: Vec<String>,
    /// Empty = `ovn`.
    #[serde(deserialize_with = "lenient::string")]
    pub provider: String,
    /// Empty = `ovn-cluster`.
    #[serde(deserialize_with = "lenient::string")]
    pub vpc: String,
    /// Name of a Vlan object (not an id); empty = overlay.
    #[serde(deserialize_with = "lenient::string")]
    pub vlan: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub logical_gateway: bool,
    #[serde(deserialize_with = "lenient::boolean")]
    pub u2o_interconnection: bool,
    #[serde(rename = "u2oInterconnectionIP", deserialize_with = "lenient::string")]
    pub u2o_interconnection_ip: String,
    #[serde(deserialize_with = "lenient::string")]
    pub protocol: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub default: bool,
    /// `distributed` (default) or `centralized`.
    #[serde(deserialize_with = "lenient::string")]
    pub gateway_type: String,
    #[serde(deserialize_with = "lenient::string")]
    pub gateway_node: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub nat_outgoing: bool,
    #[serde(deserialize_with = "lenient::boolean")]
    pub private: bool,
    #[serde(deserialize_with = "lenient::string_list")]
    pub allow_subnets: Vec<String>,
    pub mtu: Option<IntOrString>,
    #[serde(deserialize_with = "lenient::string_list")]
    pub namespaces: Vec<String>,
    #[serde(deserialize_with = "lenient::opt_boolean")]
    pub enable_lb: Option<bool>,
    #[serde(rename = "enableDHCP", deserialize_with = "lenient::boolean")]
    pub enable_dhcp: bool,
    #[serde(deserialize_with = "lenient::boolean")]
    pub disable_gateway_check: bool,
}

/// Subnet `status`: where Kube-OVN's controller records the u2o router port it allocated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SubnetStatus {
    /// `v4`, `v6` or `v4,v6`.
    #[serde(rename = "u2oInterconnectionIP", deserialize_with = "lenient::string")]
    pub u2o_interconnection_ip: String,
    #[serde(rename = "u2oInterconnectionMAC", deserialize_with = "lenient::string")]
    pub u2o_interconnection_mac: String,
    #[serde(rename = "u2oInterconnectionVPC", deserialize_with = "lenient::string")]
    pub u2o_interconnection_vpc: String,
}

/// `kubeovn.io/v1` Vlan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Vlan {
    pub metadata: ObjectMeta,
    pub spec: VlanSpec,
}

/// Vlan `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VlanSpec {
    /// 0..4095; 0 = untagged.
    pub id: Option<IntOrString>,
    /// Name of a ProviderNetwork; empty = `provider` (Kube-OVN's `--default-provider-name`).
    #[serde(deserialize_with = "lenient::string")]
    pub provider: String,
    /// Deprecated spelling of `id`, used only when `id` is absent.
    pub vlan_id: Option<IntOrString>,
}

/// `kubeovn.io/v1` ProviderNetwork.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ProviderNetwork {
    pub metadata: ObjectMeta,
    pub spec: ProviderNetworkSpec,
}

/// ProviderNetwork `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderNetworkSpec {
    #[serde(deserialize_with = "lenient::string")]
    pub default_interface: String,
    pub custom_interfaces: Vec<CustomInterface>,
    /// Ignored when `nodeSelector` is set (Kube-OVN `IsNodeExcludedFromProviderNetwork`).
    #[serde(deserialize_with = "lenient::string_list")]
    pub exclude_nodes: Vec<String>,
    pub node_selector: Option<LabelSelector>,
    #[serde(deserialize_with = "lenient::boolean")]
    pub exchange_link_name: bool,
}

/// A per-node NIC override of a ProviderNetwork.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CustomInterface {
    #[serde(deserialize_with = "lenient::string")]
    pub interface: String,
    #[serde(deserialize_with = "lenient::string_list")]
    pub nodes: Vec<String>,
}

/// Kubernetes `LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    #[serde(deserialize_with = "lenient::string_map")]
    pub match_labels: StringMap,
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LabelSelectorRequirement {
    #[serde(deserialize_with = "lenient::string")]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(deserialize_with = "lenient::string")]
    pub operator: String,
    #[serde(deserialize_with = "lenient::string_list")]
    pub values: Vec<String>,
}

/// `kubeovn.io/v1` Vpc.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Vpc {
    pub metadata: ObjectMeta,
    pub spec: VpcSpec,
}

/// Vpc `spec` (policy routes and NAT gateways are not node-dataplane business and not read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VpcSpec {
    #[serde(deserialize_with = "lenient::string_list")]
    pub namespaces: Vec<String>,
    pub static_routes: Vec<StaticRoute>,
    #[serde(deserialize_with = "lenient::boolean")]
    pub enable_external: bool,
}

/// A Vpc static route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StaticRoute {
    /// `policyDst` (default) or `policySrc`.
    #[serde(deserialize_with = "lenient::string")]
    pub policy: String,
    #[serde(deserialize_with = "lenient::string")]
    pub cidr: String,
    #[serde(rename = "nextHopIP", deserialize_with = "lenient::string")]
    pub next_hop_ip: String,
}

/// core `v1` Pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

impl Pod {
    /// The key: a pod without a namespace is in `default` (as kubectl applies it).
    pub fn key(&self) -> ObjectKey {
        let namespace = if self.metadata.namespace.is_empty() {
            "default"
        } else {
            &self.metadata.namespace
        };
        ObjectKey::pod(namespace, self.metadata.name.clone())
    }
}

/// Pod `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// Empty = not scheduled yet, so not on any node's dataplane.
    #[serde(deserialize_with = "lenient::string")]
    pub node_name: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub host_network: bool,
}

/// Pod `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// `Succeeded`/`Failed` pods have released their address (Kube-OVN frees it), so they are skipped.
    #[serde(deserialize_with = "lenient::string")]
    pub phase: String,
}

/// core `v1` Node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Node {
    pub metadata: ObjectMeta,
    pub status: NodeStatus,
}

/// Node `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub addresses: Vec<NodeAddress>,
}

/// One `status.addresses` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NodeAddress {
    /// `InternalIP` is the one kovs uses (the tunnel endpoint).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub type_: String,
    #[serde(deserialize_with = "lenient::string")]
    pub address: String,
}

/// Any object kovs reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Node(Node),
    ProviderNetwork(ProviderNetwork),
    Vlan(Vlan),
    Vpc(Vpc),
    Subnet(Box<Subnet>),
    Pod(Pod),
}

impl Object {
    /// The kind.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Node(_) => ObjectKind::Node,
            Object::ProviderNetwork(_) => ObjectKind::ProviderNetwork,
            Object::Vlan(_) => ObjectKind::Vlan,
            Object::Vpc(_) => ObjectKind::Vpc,
            Object::Subnet(_) => ObjectKind::Subnet,
            Object::Pod(_) => ObjectKind::Pod,
        }
    }

    /// The metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Node(o) => &o.metadata,
            Object::ProviderNetwork(o) => &o.metadata,
            Object::Vlan(o) => &o.metadata,
            Object::Vpc(o) => &o.metadata,
            Object::Subnet(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
        }
    }

    /// The key: pods without a namespace are in `default`; cluster-scoped kinds have none.
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Pod(pod) => pod.key(),
            _ => ObjectKey::cluster(self.kind(), self.meta().name.clone()),
        }
    }

    /// Reads one object of a known kind from its JSON form.
    pub fn from_value(
        kind: ObjectKind,
        value: serde_json::Value,
    ) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            ObjectKind::Node => Object::Node(serde_json::from_value(value)?),
            ObjectKind::ProviderNetwork => Object::ProviderNetwork(serde_json::from_value(value)?),
            ObjectKind::Vlan => Object::Vlan(serde_json::from_value(value)?),
            ObjectKind::Vpc => Object::Vpc(serde_json::from_value(value)?),
            ObjectKind::Subnet => Object::Subnet(Box::new(serde_json::from_value(value)?)),
            ObjectKind::Pod => Object::Pod(serde_json::from_value(value)?),
        })
    }
}

impl From<Node> for Object {
    fn from(o: Node) -> Self {
        Object::Node(o)
    }
}
impl From<ProviderNetwork> for Object {
    fn from(o: ProviderNetwork) -> Self {
        Object::ProviderNetwork(o)
    }
}
impl From<Vlan> for Object {
    fn from(o: Vlan) -> Self {
        Object::Vlan(o)
    }
}
impl From<Vpc> for Object {
    fn from(o: Vpc) -> Self {
        Object::Vpc(o)
    }
}
impl From<Subnet> for Object {
    fn from(o: Subnet) -> Self {
        Object::Subnet(Box::new(o))
    }
}
impl From<Pod> for Object {
    fn from(o: Pod) -> Self {
        Object::Pod(o)
    }
}

/// A change to an [`ObjectSet`], as a watch would deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add or replace the object with this key.
    Apply(Object),
    /// Remove the object.
    Delete(ObjectKey),
}

/// The raw objects, ordered by key (kind in dependency order, then namespace, then name).
///
/// This is the input of [`crate::model::validate`]; keeping it sorted makes "the first one wins"
/// rules deterministic whatever order objects arrived in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSet {
    objects: BTreeMap<ObjectKey, Object>,
}

impl ObjectSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object; returns the one it replaced.
    pub fn insert(&mut self, object: impl Into<Object>) -> Option<Object> {
        let object = object.into();
        self.objects.insert(object.key(), object)
    }

    /// Removes an object.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Object> {
        self.objects.remove(key)
    }

    /// Applies a watch-style change; returns the previous object under that key.
    pub fn apply(&mut self, change: Change) -> Option<Object> {
        match change {
            Change::Apply(o) => self.insert(o),
            Change::Delete(k) => self.remove(&k),
        }
    }

    /// Keeps only the objects `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&ObjectKey, &Object) -> bool) {
        self.objects.retain(|k, o| keep(k, o));
    }

    /// The object with this key.
    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.objects.get(key)
    }

    /// Whether an object with this key is present.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.objects.contains_key(key)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// All objects in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Object)> {
        self.objects.iter()
    }

    /// The objects of one kind, in (namespace, name) order.
    pub fn of_kind(&self, kind: ObjectKind) -> impl Iterator<Item = (&ObjectKey, &Object)> {
        let start = ObjectKey {
            kind,
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(move |(k, _)| k.kind == kind)
    }

    /// Number of objects of one kind.
    pub fn count(&self, kind: ObjectKind) -> usize {
        self.of_kind(kind).count()
    }
}

impl IntoIterator for ObjectSet {
    type Item = (ObjectKey, Object);
    type IntoIter = std::collections::btree_map::IntoIter<ObjectKey, Object>;
    fn into_iter(self) -> Self::IntoIter {
        self.objects.into_iter()
    }
}

impl<O: Into<Object>> FromIterator<O> for ObjectSet {
    fn from_iter<I: IntoIterator<Item = O>>(iter: I) -> Self {
        let mut set = ObjectSet::new();
        set.extend(iter);
        set
    }
}

impl<O: Into<Object>> Extend<O> for ObjectSet {
    fn extend<I: IntoIterator<Item = O>>(&mut self, iter: I) {
        for o in iter {
            self.insert(o);
        }
    }
}

/// Lenient scalar readers: strings accept numbers and booleans, lists accept a single scalar,
/// null reads as empty.
mod lenient {
    use super::*;

    struct Scalar;

    impl<'de> Visitor<'de> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }

    struct ScalarSeed;

    impl<'de> de::DeserializeSeed<'de> for ScalarSeed {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(Scalar)
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(Scalar)
    }

    /// A scalar, `None` when null or empty.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Some(d.deserialize_any(Scalar)?).filter(|s| !s.is_empty()))
    }

    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element_seed(ScalarSeed)? {
                    out.push(s);
                }
                Ok(out)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
                Ok(vec![v.to_owned()])
            }
            fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
                Ok(Vec::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Vec<String>, E> {
                Ok(Vec::new())
            }
        }
        d.deserialize_any(V)
    }

    pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = StringMap::new();
                while let Some((k, v)) = map.next_entry_seed(ScalarSeed, ScalarSeed)? {
                    // A repeated key keeps the last value, as a JSON/YAML map does.
                    out.insert(k, v);
                }
                out.0.shrink_to_fit();
                Ok(out)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(StringMap::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(StringMap::new())
            }
        }
        d.deserialize_any(V)
    }

    struct Bool;

    impl<'de> Visitor<'de> for Bool {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<bool>, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<bool>, E> {
            match v {
                "true" | "True" | "TRUE" => Ok(Some(true)),
                "false" | "False" | "FALSE" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(d.deserialize_any(Bool)?.unwrap_or(false))
    }

    pub fn opt_boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(Bool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_map_is_a_sorted_map() {
        let mut m = StringMap::new();
        assert_eq!(m.insert("b", "2"), None);
        assert_eq!(m.insert("a", "1"), None);
        assert_eq!(m.insert("c", "3"), None);
        assert_eq!(m.insert("b", "two").as_deref(), Some("2"));
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "two"), ("c", "3")]
        );
        assert_eq!((m.get("b"), m.get("x")), (Some("two"), None));
        assert_eq!(m.remove("a").as_deref(), Some("1"));
        assert_eq!(m.remove("a"), None);
        assert_eq!(m.len(), 2);
        // Equal content compares equal whatever the insertion order.
        let other: StringMap = [("c", "3"), ("b", "two")].into_iter().collect();
        assert_eq!(m, other);
    }

    #[test]
    fn labels_read_leniently_and_the_last_duplicate_wins() {
        let meta: ObjectMeta = serde_json::from_str(
            r#"{"labels": {"z": 1, "a": true, "z": "last"}, "annotations": null}"#,
        )
        .unwrap();
        assert_eq!(
            meta.labels.iter().collect::<Vec<_>>(),
            [("a", "true"), ("z", "last")]
        );
        assert!(meta.annotations.is_empty());
    }
}
