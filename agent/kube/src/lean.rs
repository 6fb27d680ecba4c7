//! API objects as the watchers decode them: only what the model reads, projected while the JSON
//! is parsed, so a Pod's containers, status conditions, `managedFields` and
//! `last-applied-configuration` are skipped without being allocated.
//!
//! A [`Lean`] object is turned into the model's [`Object`] by [`Shape::to_model`], which goes
//! through [`Object::from_value`]: the file source's path, so validation and its messages are
//! the same whichever source an object came from.
//!
//! Remote pods come from Kube-OVN's IP objects ([`IpShape`]): an IP is read as the pod it
//! stands for (its address, MAC, subnet and node as the pod's annotations and `spec.nodeName`),
//! so the pod rules of the model apply to it unchanged. Why IPs and not Pods:
//! `docs/architecture.md`, "The kube source".

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use kube::api::{ApiResource, ObjectMeta};
use kube::core::{DynamicResourceScope, Resource};
use pipelines::model::{Object, ObjectKey, ObjectKind};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Which annotations a kind keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    All,
    /// Those whose key starts with this (Kube-OVN's `ovn.kubernetes.io/`).
    Prefix(&'static str),
    Nothing,
}

impl Keep {
    fn keeps(self, key: &str) -> bool {
        match self {
            Keep::All => true,
            Keep::Prefix(p) => key.starts_with(p),
            Keep::Nothing => false,
        }
    }
}

/// What kovs reads of one kind: which metadata maps, which top-level sections and, in each
/// section, which fields (`None`: all of it); and how an object becomes the model's.
pub trait Shape: Clone + fmt::Debug + Send + Sync + 'static {
    /// The model's kind of the objects it gives.
    const KIND: ObjectKind;
    const LABELS: bool;
    const ANNOTATIONS: Keep;
    const SECTIONS: &'static [(&'static str, Option<&'static [&'static str]>)];

    /// The API resource watched.
    fn api_resource() -> ApiResource {
        api_resource(Self::KIND)
    }

    /// The model's object, read from the object's JSON form as the file source reads it.
    fn to_model(o: &Lean<Self>) -> Result<Object, serde_json::Error> {
        Object::from_value(Self::KIND, o.to_value())
    }

    /// The model's key of the object (pods without a namespace are in `default`).
    fn key(o: &Lean<Self>) -> ObjectKey {
        let name = o.metadata.name.clone().unwrap_or_default();
        if Self::KIND.is_namespaced() {
            let ns = o
                .metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into());
            ObjectKey::pod(ns, name)
        } else {
            ObjectKey::cluster(Self::KIND, name)
        }
    }

    /// What the watcher of node `this_node` makes of the object (what a selector cannot say).
    fn take(_o: &Lean<Self>, _this_node: &str) -> Take {
        Take::Object
    }
}

/// What a watcher makes of an object it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// An object of its scope.
    Object,
    /// Its key is no longer in the scope: as if deleted (a delete the other scope's object
    /// survives, see `batch`).
    Gone,
    /// Not an object of the model (nothing is done with it).
    Ignore,
}

/// Kube-OVN's annotation prefix: every annotation the model reads of a Pod or Node.
const OVN_PREFIX: &str = "ovn.kubernetes.io/";

/// A Pod: its Kube-OVN annotations, node, host networking and phase
/// (`pipelines::model::Pod`).
#[derive(Debug, Clone)]
pub struct PodShape;
impl Shape for PodShape {
    const KIND: ObjectKind = ObjectKind::Pod;
    const LABELS: bool = false;
    const ANNOTATIONS: Keep = Keep::Prefix(OVN_PREFIX);
    const SECTIONS: &'static [(&'static str, Option<&'static [&'static str]>)] = &[
        ("spec", Some(&["nodeName", "hostNetwork"])),
        ("status", Some(&["phase"])),
    ];
}

/// A Node: labels (provider networks select nodes by them), Kube-OVN annotations (the join
/// address of the node port), addresses (`pipelines::model::Node`).
#[derive(Debug, Clone)]
pub struct NodeShape;
impl Shape for NodeShape {
    const KIND: ObjectKind = ObjectKind::Node;
    const LABELS: bool = true;
    const ANNOTATIONS: Keep = Keep::Prefix(OVN_PREFIX);
    const SECTIONS: &'static [(&'static str, Option<&'static [&'static str]>)] =
        &[("status", Some(&["addresses"]))];
}

/// A Kube-OVN IP object (`kubeovn.io/v1` IP, one per pod NIC, written by the controller that
/// allocates addresses), read as the pod it stands for: the primary NIC's IP (named
/// `<pod>.<namespace>`) of a pod on another node.
#[derive(Debug, Clone)]
pub struct IpShape;

/// The IP fields read.
const IP_FIELDS: &[&str] = &[
    "podName",
    "namespace",
    "subnet",
    "nodeName",
    "ipAddress",
    "v4IpAddress",
    "macAddress",
];

impl IpShape {
    fn field<'a>(o: &'a Lean<Self>, name: &str) -> &'a str {
        o.section("spec")
            .and_then(|s| s.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

impl Shape for IpShape {
    const KIND: ObjectKind = ObjectKind::Pod;
    const LABELS: bool = false;
    const ANNOTATIONS: Keep = Keep::Nothing;
    const SECTIONS: &'static [(&'static str, Option<&'static [&'static str]>)] =
        &[("spec", Some(IP_FIELDS))];

    fn api_resource() -> ApiResource {
        ApiResource {
            group: "kubeovn.io".into(),
            version: "v1".into(),
            api_version: "kubeovn.io/v1".into(),
            kind: "IP".into(),
            plural: "ips".into(),
        }
    }

    /// The pod: `spec.podName` in `spec.namespace` on `spec.nodeName`, with Kube-OVN's
    /// address annotations from `spec.v4IpAddress` (else `spec.ipAddress`),
    /// `spec.macAddress` and `spec.subnet`.
    fn to_model(o: &Lean<Self>) -> Result<Object, serde_json::Error> {
        let f = |n| Self::field(o, n);
        let ip = match f("v4IpAddress") {
            "" => f("ipAddress"),
            v4 => v4,
        };
        let mut annotations = Map::new();
        for (key, value) in [
            (pipelines::model::ANNOTATION_IP_ADDRESS, ip),
            (pipelines::model::ANNOTATION_MAC_ADDRESS, f("macAddress")),
            (pipelines::model::ANNOTATION_LOGICAL_SWITCH, f("subnet")),
        ] {
            if !value.is_empty() {
                annotations.insert(key.into(), Value::String(value.into()));
            }
        }
        let pod = serde_json::json!({
            "metadata": {"name": f("podName"), "namespace": f("namespace"),
                         "annotations": annotations},
            "spec": {"nodeName": f("nodeName")},
        });
        Object::from_value(ObjectKind::Pod, pod)
    }

    fn key(o: &Lean<Self>) -> ObjectKey {
        let ns = match Self::field(o, "namespace") {
            "" => "default",
            ns => ns,
        };
        ObjectKey::pod(ns, Self::field(o, "podName"))
    }

    /// Only the primary NIC's IP (`<pod>.<namespace>`; an attachment network's is
    /// `<pod>.<namespace>.<provider>`), and only of a pod not on this node (this node's pods
    /// come from its Pod watcher).
    fn take(o: &Lean<Self>, this_node: &str) -> Take {
        let primary = format!(
            "{}.{}",
            Self::field(o, "podName"),
            Self::field(o, "namespace")
        );
        if o.metadata.name.as_deref() != Some(primary.as_str()) {
            Take::Ignore
        } else if Self::field(o, "nodeName") == this_node {
            Take::Gone
        } else {
            Take::Object
        }
    }
}

/// A `kubeovn.io/v1` object: few and small, read whole (spec and status).
#[derive(Debug, Clone)]
pub struct CrdShape<K: CrdKind>(PhantomData<K>);
impl<K: CrdKind> Shape for CrdShape<K> {
    const KIND: ObjectKind = K::KIND;
    const LABELS: bool = true;
    const ANNOTATIONS: Keep = Keep::All;
    const SECTIONS: &'static [(&'static str, Option<&'static [&'static str]>)] =
        &[("spec", None), ("status", None)];
}

/// The `kubeovn.io/v1` kinds, as types for [`CrdShape`].
pub trait CrdKind: Clone + fmt::Debug + Send + Sync + 'static {
    const KIND: ObjectKind;
}
macro_rules! crd_kind {
    ($t:ident) => {
        #[derive(Debug, Clone)]
        pub struct $t;
        impl CrdKind for $t {
            const KIND: ObjectKind = ObjectKind::$t;
        }
    };
}
crd_kind!(Subnet);
crd_kind!(Vlan);
crd_kind!(ProviderNetwork);
crd_kind!(Vpc);

/// One API object as decoded: the metadata kube-rs's watcher needs (name, namespace,
/// resourceVersion, uid) with the labels and annotations the shape keeps, and the shape's
/// sections.
#[derive(Clone)]
pub struct Lean<S> {
    pub metadata: ObjectMeta,
    /// As written (RFC 3339); the model compares it as a string.
    pub creation_timestamp: Option<String>,
    sections: Vec<(&'static str, Value)>,
    shape: PhantomData<S>,
}

impl<S> fmt::Debug for Lean<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lean")
            .field("name", &self.metadata.name)
            .field("namespace", &self.metadata.namespace)
            .field("resourceVersion", &self.metadata.resource_version)
            .field("sections", &self.sections)
            .finish()
    }
}

impl<S: Shape> Lean<S> {
    /// The model's object ([`Shape::to_model`]).
    pub fn to_model(&self) -> Result<Object, serde_json::Error> {
        S::to_model(self)
    }

    /// The model's key ([`Shape::key`]).
    pub fn key(&self) -> ObjectKey {
        S::key(self)
    }

    /// The object as JSON, with what the shape kept.
    pub fn to_value(&self) -> Value {
        let m = &self.metadata;
        let mut meta = Map::new();
        let text = |s: &Option<String>| Value::String(s.clone().unwrap_or_default());
        meta.insert("name".into(), text(&m.name));
        if m.namespace.is_some() {
            meta.insert("namespace".into(), text(&m.namespace));
        }
        let map = |m: &Option<BTreeMap<String, String>>| {
            Value::Object(
                m.iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        meta.insert("labels".into(), map(&m.labels));
        meta.insert("annotations".into(), map(&m.annotations));
        if let Some(t) = &self.creation_timestamp {
            meta.insert("creationTimestamp".into(), Value::String(t.clone()));
        }
        let mut obj = Map::new();
        obj.insert("metadata".into(), Value::Object(meta));
        for (k, v) in &self.sections {
            obj.insert((*k).into(), v.clone());
        }
        Value::Object(obj)
    }

    /// A section as kept (`spec`, `status`).
    pub fn section(&self, name: &str) -> Option<&Value> {
        self.sections
            .iter()
            .find_map(|(k, v)| (*k == name).then_some(v))
    }
}

impl<S: Shape> Resource for Lean<S> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> std::borrow::Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The API resource of a kind the model reads.
pub fn api_resource(kind: ObjectKind) -> ApiResource {
    let (group, plural) = match kind {
        ObjectKind::Node => ("", "nodes"),
        ObjectKind::Pod => ("", "pods"),
        ObjectKind::Subnet => ("kubeovn.io", "subnets"),
        ObjectKind::Vlan => ("kubeovn.io", "vlans"),
        ObjectKind::ProviderNetwork => ("kubeovn.io", "provider-networks"),
        ObjectKind::Vpc => ("kubeovn.io", "vpcs"),
    };
    ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: kind.api_version().into(),
        kind: kind.as_str().into(),
        plural: plural.into(),
    }
}

impl<'de, S: Shape> Deserialize<'de> for Lean<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Top<S>(PhantomData<S>);
        impl<'de, S: Shape> Visitor<'de> for Top<S> {
            type Value = Lean<S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a {} object", S::KIND)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lean<S>, A::Error> {
                let mut lean = Lean {
                    metadata: ObjectMeta::default(),
                    creation_timestamp: None,
                    sections: Vec::new(),
                    shape: PhantomData,
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "metadata" {
                        let (meta, created) = map.next_value_seed(MetaSeed::<S>(PhantomData))?;
                        lean.metadata = meta;
                        lean.creation_timestamp = created;
                    } else if let Some((name, fields)) =
                        S::SECTIONS.iter().find(|(name, _)| *name == key)
                    {
                        let v = map.next_value_seed(SectionSeed(*fields))?;
                        lean.sections.push((name, v));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(lean)
            }
        }
        d.deserialize_map(Top::<S>(PhantomData))
    }
}

/// `metadata`, keeping the identity, the resource version and the maps the shape keeps.
struct MetaSeed<S>(PhantomData<S>);

impl<'de, S: Shape> DeserializeSeed<'de> for MetaSeed<S> {
    type Value = (ObjectMeta, Option<String>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: Shape> Visitor<'de> for MetaSeed<S> {
    type Value = (ObjectMeta, Option<String>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("object metadata")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = ObjectMeta::default();
        let mut created = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "name" => m.name = map.next_value()?,
                "namespace" => m.namespace = map.next_value()?,
                "resourceVersion" => m.resource_version = map.next_value()?,
                "uid" => m.uid = map.next_value()?,
                "creationTimestamp" => created = map.next_value()?,
                "labels" if S::LABELS => m.labels = map.next_value_seed(MapSeed(Keep::All))?,
                "annotations" if S::ANNOTATIONS != Keep::Nothing => {
                    m.annotations = map.next_value_seed(MapSeed(S::ANNOTATIONS))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((m, created))
    }
}

/// A string map, keeping the keys `Keep` accepts; `None` when null.
struct MapSeed(Keep);

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = Option<BTreeMap<String, String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = Option<BTreeMap<String, String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.keeps(&key) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(out))
    }
}

/// A section, whole (`None`) or only the named fields.
struct SectionSeed(Option<&'static [&'static str]>);

impl<'de> DeserializeSeed<'de> for SectionSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            None => Value::deserialize(d),
            Some(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for SectionSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let fields = self.0.unwrap_or_default();
        let mut out = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if fields.contains(&&*key) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
    // Anything else (null, a scalar) is kept as it is: the model reads it leniently or says
    // what is wrong with it.
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.into()))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(e) = seq.next_element::<Value>()? {
            v.push(e);
        }
        Ok(Value::Array(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = r#"{
      "kind": "Pod", "apiVersion": "v1",
      "metadata": {"name": "p1", "namespace": "ns1", "uid": "u-1", "resourceVersion": "42",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"app": "x"},
        "annotations": {"ovn.kubernetes.io/ip_address": "10.16.0.5",
                        "ovn.kubernetes.io/mac_address": "00:00:00:aa:00:05",
                        "ovn.kubernetes.io/logical_switch": "ovn-default",
                        "kubectl.kubernetes.io/last-applied-configuration": "{\"huge\": true}"},
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}]},
      "spec": {"nodeName": "node1", "hostNetwork": false,
               "containers": [{"name": "c", "image": "busybox"}]},
      "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }"#;

    #[test]
    fn a_pod_keeps_only_what_the_model_reads() {
        let p: Lean<PodShape> = serde_json::from_str(POD).unwrap();
        assert_eq!(p.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(p.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(p.metadata.labels, None, "pods' labels are not read");
        let ann = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.len(), 3, "{ann:?}");
        assert_eq!(
            p.section("spec").unwrap(),
            &serde_json::json!({"nodeName": "node1", "hostNetwork": false})
        );
        assert_eq!(
            p.section("status").unwrap(),
            &serde_json::json!({"phase": "Running"})
        );
        // The model's object is the file source's for the same document.
        let from_file = {
            let mut loaded = pipelines::model::Loaded::default();
            loaded.add_value(serde_json::from_str(POD).unwrap(), "f");
            loaded.objects
        };
        let model = p.to_model().unwrap();
        assert_eq!(model.key(), ObjectKey::pod("ns1", "p1"));
        let Object::Pod(lean_pod) = &model else {
            panic!("{model:?}")
        };
        let Some(Object::Pod(file_pod)) = from_file.get(&model.key()) else {
            panic!()
        };
        assert_eq!(lean_pod.spec, file_pod.spec);
        assert_eq!(lean_pod.status, file_pod.status);
        for k in [
            "ovn.kubernetes.io/ip_address",
            "ovn.kubernetes.io/mac_address",
            "ovn.kubernetes.io/logical_switch",
        ] {
            assert_eq!(
                lean_pod.metadata.annotations.get(k),
                file_pod.metadata.annotations.get(k)
            );
        }
        assert_eq!(
            lean_pod.metadata.creation_timestamp,
            file_pod.metadata.creation_timestamp
        );
    }

    #[test]
    fn a_crd_object_is_read_whole_and_equals_the_file_sources() {
        let text = r#"{"apiVersion": "kubeovn.io/v1", "kind": "Subnet",
            "metadata": {"name": "s1", "resourceVersion": "7", "labels": {"a": "b"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"cidrBlock": "10.16.0.0/16", "gateway": "10.16.0.1", "excludeIps": ["10.16.0.1"]},
            "status": {"u2oInterconnectionIP": "10.16.0.2"}}"#;
        let s: Lean<CrdShape<Subnet>> = serde_json::from_str(text).unwrap();
        let mut loaded = pipelines::model::Loaded::default();
        loaded.add_value(serde_json::from_str(text).unwrap(), "f");
        let model = s.to_model().unwrap();
        assert_eq!(loaded.objects.get(&model.key()), Some(&model));
    }

    #[test]
    fn a_node_keeps_labels_and_addresses_only() {
        let text = r#"{"metadata": {"name": "n1", "labels": {"zone": "z"},
              "annotations": {"ovn.kubernetes.io/ip_address": "100.64.0.2", "other": "x"}},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.1"}],
                       "images": [{"names": ["a"], "sizeBytes": 1}]}}"#;
        let n: Lean<NodeShape> = serde_json::from_str(text).unwrap();
        assert_eq!(
            n.to_value(),
            serde_json::json!({
                "metadata": {"name": "n1", "labels": {"zone": "z"},
                             "annotations": {"ovn.kubernetes.io/ip_address": "100.64.0.2"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.1"}]}
            })
        );
        assert!(matches!(n.to_model().unwrap(), Object::Node(_)));
    }

    #[test]
    fn odd_sections_reach_the_model_which_names_the_problem() {
        // A spec that is not an object is kept as it is; the model's reader reports it, as it
        // does for a file.
        let text = r#"{"metadata": {"name": "v1"}, "spec": "nonsense"}"#;
        let v: Lean<CrdShape<Vlan>> = serde_json::from_str(text).unwrap();
        let e = v.to_model().unwrap_err().to_string();
        let mut loaded = pipelines::model::Loaded::default();
        loaded.add_value(
            serde_json::json!({"apiVersion": "kubeovn.io/v1", "kind": "Vlan",
                               "metadata": {"name": "v1"}, "spec": "nonsense"}),
            "f",
        );
        assert!(loaded.errors[0].message.ends_with(&e), "{e} vs {loaded:?}");
        // A null map reads as empty.
        let text = r#"{"metadata": {"name": "p", "namespace": "n", "annotations": null}}"#;
        let p: Lean<PodShape> = serde_json::from_str(text).unwrap();
        assert!(p.to_model().is_ok());
    }

    const IP: &str = r#"{"apiVersion": "kubeovn.io/v1", "kind": "IP",
      "metadata": {"name": "web-1.ns1", "resourceVersion": "9",
        "labels": {"ovn.kubernetes.io/node-name": "node2", "ovn.kubernetes.io/subnet": "ovn-default"},
        "managedFields": [{"manager": "kube-ovn-controller"}]},
      "spec": {"podName": "web-1", "namespace": "ns1", "subnet": "ovn-default",
               "nodeName": "node2", "ipAddress": "10.16.0.9", "v4IpAddress": "10.16.0.9",
               "v6IpAddress": "", "macAddress": "00:00:00:aa:00:09", "attachIps": [],
               "containerID": "abc", "podType": ""}}"#;

    #[test]
    fn an_ip_is_read_as_the_pod_it_stands_for() {
        let ip: Lean<IpShape> = serde_json::from_str(IP).unwrap();
        assert_eq!(ip.key(), ObjectKey::pod("ns1", "web-1"));
        assert_eq!(IpShape::take(&ip, "node1"), Take::Object);
        assert_eq!(
            IpShape::take(&ip, "node2"),
            Take::Gone,
            "node2's own pods come from Pods"
        );
        // The same pod written as a file has the same model object.
        let mut loaded = pipelines::model::Loaded::default();
        loaded.add_value(
            serde_json::json!({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "web-1", "namespace": "ns1", "annotations": {
                "ovn.kubernetes.io/ip_address": "10.16.0.9",
                "ovn.kubernetes.io/mac_address": "00:00:00:aa:00:09",
                "ovn.kubernetes.io/logical_switch": "ovn-default"}},
              "spec": {"nodeName": "node2"}}),
            "f",
        );
        let model = ip.to_model().unwrap();
        assert_eq!(loaded.objects.get(&model.key()), Some(&model));
        // An attachment network's IP (`<pod>.<ns>.<provider>`) is not the pod's primary NIC.
        let other = IP.replace(
            r#""name": "web-1.ns1""#,
            r#""name": "web-1.ns1.net1.ns1.ovn""#,
        );
        let other: Lean<IpShape> = serde_json::from_str(&other).unwrap();
        assert_eq!(IpShape::take(&other, "node1"), Take::Ignore);
        // Only ipAddress (older controllers): still read.
        let old = IP.replace(r#""v4IpAddress": "10.16.0.9","#, "");
        let old: Lean<IpShape> = serde_json::from_str(&old).unwrap();
        assert_eq!(old.to_model().unwrap(), model);
    }
}
