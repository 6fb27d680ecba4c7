//! The controller's state and decisions, without I/O: objects in ([`Core::observe`]), writes
//! out ([`Core::reconcile`]), failed writes back ([`Core::failed`]).
//!
//! Allocation has one source of truth, the *holdings* (owner → subnet, address, MAC), read from
//! what the cluster already records — pods' `allocated` annotations, IP objects, nodes' join
//! annotations, subnets' u2o status — and extended only by this controller's own decisions. The
//! per-subnet pools ([`SubnetPool`]) are an index of the holdings: nothing is given out before
//! every kind has been listed and every recorded holding is back in its pool ("rebuild before
//! allocate"), and a subnet whose CIDR or `excludeIps` change gets a new pool refilled from the
//! holdings.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use kovs_kube::control::{Event, Kind, Regarding};
use pipelines::model::ipam::{local_mac, IpamError, Lease, SubnetPool};
use pipelines::model::{
    format_mac, parse_mac, validate, ClusterState, Ipv4Range, MacAddr, Object, ObjectKey,
    ObjectKind, ObjectSet, ValidSubnet,
};
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use super::config::Config;
use super::defaults;
use super::pod::{self, str_at, IpView, PodView, Want};
use super::subnet::{self, Verdict};

/// The reason of the Warning on a pod the controller cannot serve (Kube-OVN's).
pub const ACQUIRE_FAILED: &str = "AcquireAddressFailed";

/// One object's pending work.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Install,
    Subnet(String),
    Namespace(String),
    Node(String),
    /// namespace, name.
    Pod(String, String),
    Ip(String),
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create when missing (an existing object is left as it is).
    Create { kind: Kind, object: Value },
    /// An IP object: created, or its labels and spec merged when it exists.
    Ip { object: Value },
    /// A JSON merge patch.
    Patch {
        kind: Kind,
        namespace: Option<String>,
        name: String,
        patch: Value,
    },
    /// A Subnet's status subresource.
    Status { name: String, patch: Value },
    Delete {
        kind: Kind,
        namespace: Option<String>,
        name: String,
    },
    Event {
        regarding: Regarding,
        warning: bool,
        reason: String,
        note: String,
    },
}

/// The writes of one object, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub key: Key,
    pub writes: Vec<Write>,
}

/// Why a pod got nothing: bad input is reported on the pod; a subnet not there yet is waited
/// for quietly.
enum NoAddress {
    Bad(String),
    Wait(String),
}

#[derive(Debug, Clone)]
struct Named {
    uid: String,
    annotations: BTreeMap<String, String>,
}

fn named(o: &Value) -> Named {
    Named {
        uid: str_at(o, "/metadata/uid").into(),
        annotations: pod::ovn_annotations(o),
    }
}

/// The controller's state.
pub struct Core {
    cfg: Config,
    listed: BTreeSet<Kind>,
    rebuilt: bool,
    pods: HashMap<(String, String), PodView>,
    namespaces: BTreeMap<String, Named>,
    nodes: BTreeMap<String, Named>,
    ips: HashMap<String, IpView>,
    subnets: BTreeMap<String, Value>,
    /// Subnets, Vlans, ProviderNetworks, Vpcs, Nodes, for the model's validation.
    model: ObjectSet,
    unreadable: BTreeMap<String, String>,
    model_changed: bool,
    state: ClusterState,
    pools: BTreeMap<String, SubnetPool>,
    shapes: BTreeMap<String, (Ipv4Net, Vec<Ipv4Range>)>,
    holdings: HashMap<String, (String, Lease)>,
    // Writes made and not yet seen back (so a second event does not repeat them).
    sent_pods: HashMap<String, Lease>,
    sent_ips: HashMap<String, Value>,
    sent_nodes: HashMap<String, Lease>,
    sent_format: HashMap<String, Value>,
    sent_status: HashMap<String, Verdict>,
    sent_namespaces: HashMap<String, Value>,
    created: BTreeSet<(Kind, String)>,
    /// The last Warning per object, so one problem is reported once.
    reported: HashMap<Key, String>,
    /// Pods and nodes that got nothing yet: retried when subnets or holdings change.
    waiting: BTreeSet<Key>,
    dirty: BTreeSet<Key>,
    rng: u64,
}

impl Core {
    /// `seed` feeds the MAC generator (locally administered, random).
    pub fn new(cfg: Config, seed: u64) -> Core {
        Core {
            cfg,
            listed: BTreeSet::new(),
            rebuilt: false,
            pods: HashMap::new(),
            namespaces: BTreeMap::new(),
            nodes: BTreeMap::new(),
            ips: HashMap::new(),
            subnets: BTreeMap::new(),
            model: ObjectSet::new(),
            unreadable: BTreeMap::new(),
            model_changed: true,
            state: ClusterState::default(),
            pools: BTreeMap::new(),
            shapes: BTreeMap::new(),
            holdings: HashMap::new(),
            sent_pods: HashMap::new(),
            sent_ips: HashMap::new(),
            sent_nodes: HashMap::new(),
            sent_format: HashMap::new(),
            sent_status: HashMap::new(),
            sent_namespaces: HashMap::new(),
            created: BTreeSet::new(),
            reported: HashMap::new(),
            waiting: BTreeSet::new(),
            dirty: BTreeSet::new(),
            rng: seed | 1,
        }
    }

    /// Whether every kind has been listed and the holdings rebuilt.
    pub fn is_ready(&self) -> bool {
        self.rebuilt
    }

    /// The pools (for tests and the bench).
    pub fn pool(&self, subnet: &str) -> Option<&SubnetPool> {
        self.pools.get(subnet)
    }

    /// Every holding: owner → (subnet, IP).
    pub fn holdings(&self) -> BTreeMap<String, (String, Ipv4Addr)> {
        self.holdings
            .iter()
            .map(|(o, (s, l))| (o.clone(), (s.clone(), l.ip)))
            .collect()
    }

    fn new_mac(rng: &mut u64) -> MacAddr {
        // xorshift64*
        let mut x = *rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *rng = x;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_be_bytes();
        local_mac([v[0], v[1], v[2], v[3], v[4], v[5]])
    }

    // ---- input ----

    /// Takes one watch event.
    pub fn observe(&mut self, ev: Event) {
        match ev {
            Event::Apply(kind, o) => self.apply(kind, &o),
            Event::Delete(kind, o) => self.delete(kind, &o),
            Event::Listed(kind, list) => {
                let listed: BTreeSet<String> = list.iter().map(|o| key_name(kind, o)).collect();
                for gone in self.names(kind) {
                    if !listed.contains(&gone) {
                        self.delete_named(kind, &gone);
                    }
                }
                for o in &list {
                    self.apply(kind, o);
                }
                self.listed.insert(kind);
            }
        }
    }

    fn names(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Pod => self
                .pods
                .keys()
                .map(|(ns, n)| format!("{ns}/{n}"))
                .collect(),
            Kind::Namespace => self.namespaces.keys().cloned().collect(),
            Kind::Node => self.nodes.keys().cloned().collect(),
            Kind::Ip => self.ips.keys().cloned().collect(),
            Kind::Subnet => self.subnets.keys().cloned().collect(),
            Kind::Vlan | Kind::ProviderNetwork | Kind::Vpc => self
                .model
                .of_kind(model_kind(kind))
                .map(|(k, _)| k.name.clone())
                .collect(),
        }
    }

    fn apply(&mut self, kind: Kind, o: &Value) {
        let name = str_at(o, "/metadata/name").to_string();
        match kind {
            Kind::Pod => {
                let p = PodView::from_json(o);
                let key = (p.namespace.clone(), p.name.clone());
                if p.allocated().is_some() {
                    self.sent_pods.remove(&p.owner());
                }
                self.dirty.insert(Key::Pod(key.0.clone(), key.1.clone()));
                self.pods.insert(key, p);
            }
            Kind::Namespace => {
                self.sent_namespaces.remove(&name);
                self.namespaces.insert(name.clone(), named(o));
                self.dirty.insert(Key::Namespace(name));
            }
            Kind::Ip => {
                let v = IpView::from_json(o);
                self.sent_ips.remove(&name);
                self.ips.insert(name.clone(), v);
                self.dirty.insert(Key::Ip(name));
            }
            Kind::Node => {
                let n = named(o);
                if n.annotations.get(pod::ALLOCATED).map(String::as_str) == Some("true") {
                    self.sent_nodes.remove(&name);
                }
                self.nodes.insert(name.clone(), n);
                self.dirty.insert(Key::Node(name));
                self.model_apply(kind, o);
            }
            Kind::Subnet => {
                self.sent_format.remove(&name);
                self.sent_status.remove(&name);
                self.subnets.insert(name.clone(), o.clone());
                self.dirty.insert(Key::Subnet(name));
                self.model_apply(kind, o);
            }
            Kind::Vlan | Kind::ProviderNetwork | Kind::Vpc => self.model_apply(kind, o),
        }
    }

    /// The model's view of a kind it validates; only a change of what the model reads counts.
    fn model_apply(&mut self, kind: Kind, o: &Value) {
        let name = str_at(o, "/metadata/name").to_string();
        let key = ObjectKey::cluster(model_kind(kind), name.clone());
        match Object::from_value(model_kind(kind), o.clone()) {
            Ok(obj) => {
                if kind == Kind::Subnet {
                    self.unreadable.remove(&name);
                }
                if self.model.get(&key) != Some(&obj) {
                    self.model.insert(obj);
                    self.model_changed = true;
                }
            }
            Err(e) => {
                if kind == Kind::Subnet {
                    self.unreadable.insert(name, e.to_string());
                }
                if self.model.remove(&key).is_some() {
                    self.model_changed = true;
                }
            }
        }
    }

    fn delete(&mut self, kind: Kind, o: &Value) {
        self.delete_named(kind, &key_name(kind, o));
    }

    fn delete_named(&mut self, kind: Kind, name: &str) {
        match kind {
            Kind::Pod => {
                let (ns, n) = name.split_once('/').unwrap_or(("default", name));
                self.pods.remove(&(ns.to_string(), n.to_string()));
                self.dirty.insert(Key::Pod(ns.into(), n.into()));
            }
            Kind::Namespace => {
                self.namespaces.remove(name);
            }
            Kind::Ip => {
                self.ips.remove(name);
                self.sent_ips.remove(name);
            }
            Kind::Node => {
                self.nodes.remove(name);
                self.dirty.insert(Key::Node(name.into()));
                self.model_remove(kind, name);
            }
            Kind::Subnet => {
                self.subnets.remove(name);
                self.unreadable.remove(name);
                self.model_remove(kind, name);
            }
            Kind::Vlan | Kind::ProviderNetwork | Kind::Vpc => self.model_remove(kind, name),
        }
    }

    fn model_remove(&mut self, kind: Kind, name: &str) {
        if self
            .model
            .remove(&ObjectKey::cluster(model_kind(kind), name))
            .is_some()
        {
            self.model_changed = true;
        }
    }

    /// A write of `key`'s chain failed: its memos are forgotten and it is tried again at the
    /// next reconcile.
    pub fn failed(&mut self, key: &Key) {
        match key {
            Key::Pod(ns, n) => {
                let owner = format!("{n}.{ns}");
                self.sent_pods.remove(&owner);
                self.sent_ips.remove(&owner);
            }
            Key::Node(n) => {
                self.sent_nodes.remove(n);
            }
            Key::Subnet(n) => {
                self.sent_format.remove(n);
                self.sent_status.remove(n);
            }
            Key::Namespace(n) => {
                self.sent_namespaces.remove(n);
                self.created.retain(|(k, _)| *k != Kind::Subnet);
            }
            Key::Install => self.created.clear(),
            Key::Ip(n) => {
                self.sent_ips.remove(n);
            }
        }
        self.dirty.insert(key.clone());
    }

    /// Whether work is pending.
    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || self.model_changed
    }

    // ---- decisions ----

    /// The writes for everything that changed. Nothing before every kind is listed; then the
    /// holdings are rebuilt first. `now` (RFC 3339) stamps status conditions.
    pub fn reconcile(&mut self, now: &str) -> Vec<Chain> {
        if !self.rebuilt {
            if !Kind::ALL.iter().all(|k| self.listed.contains(k)) {
                return Vec::new();
            }
            self.revalidate();
            self.rebuild();
            self.rebuilt = true;
            self.dirty.insert(Key::Install);
            let all: Vec<Key> = self
                .subnets
                .keys()
                .map(|n| Key::Subnet(n.clone()))
                .chain(self.namespaces.keys().map(|n| Key::Namespace(n.clone())))
                .chain(self.nodes.keys().map(|n| Key::Node(n.clone())))
                .chain(
                    self.pods
                        .keys()
                        .map(|(ns, n)| Key::Pod(ns.clone(), n.clone())),
                )
                .chain(self.ips.keys().map(|n| Key::Ip(n.clone())))
                .collect();
            self.dirty.extend(all);
        } else if self.model_changed {
            self.revalidate();
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut chains = Vec::new();
        // Pods holding an address first: a pod created with its address written by someone
        // else claims it before a new pod of the same batch could get it.
        let (held, rest): (Vec<&Key>, Vec<&Key>) = dirty.iter().partition(|k| match k {
            Key::Pod(ns, n) => self
                .pods
                .get(&(ns.clone(), n.clone()))
                .is_none_or(|p| p.allocated().is_some()),
            _ => false,
        });
        // Subnets last: their status counts what this round allocated.
        let (subnets, rest): (Vec<&Key>, Vec<&Key>) =
            rest.into_iter().partition(|k| matches!(k, Key::Subnet(_)));
        for key in held.into_iter().chain(rest).chain(subnets) {
            let writes = match key {
                Key::Install => self.install(),
                Key::Subnet(n) => self.subnet(n, now),
                Key::Namespace(n) => self.namespace(n),
                Key::Node(n) => self.node(n),
                Key::Pod(ns, n) => self.pod(ns, n),
                Key::Ip(n) => self.ip(n),
            };
            if !writes.is_empty() {
                chains.push(Chain {
                    key: key.clone(),
                    writes,
                });
            }
        }
        // Subnets whose counts changed on the way.
        let late = std::mem::take(&mut self.dirty);
        let mut rest = BTreeSet::new();
        for key in late {
            match &key {
                Key::Subnet(n) => {
                    let writes = self.subnet(n, now);
                    if !writes.is_empty() {
                        chains.push(Chain { key, writes });
                    }
                }
                _ => {
                    rest.insert(key);
                }
            }
        }
        self.dirty = rest;
        chains
    }

    /// Validates the model again; pools follow the valid subnets.
    fn revalidate(&mut self) {
        self.model_changed = false;
        self.state = validate(&self.model);
        let mut changed = false;
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            if !self.state.subnets.contains_key(&name) {
                self.pools.remove(&name);
                self.shapes.remove(&name);
                changed = true;
            }
        }
        let subnets: Vec<ValidSubnet> = self.state.subnets.values().cloned().collect();
        for s in subnets {
            let same = self.shapes.get(&s.name) == Some(&shape(&s));
            if !same {
                self.refill(&s);
                changed = true;
            }
        }
        let subnets: Vec<Key> = self
            .subnets
            .keys()
            .map(|n| Key::Subnet(n.clone()))
            .collect();
        self.dirty.extend(subnets);
        let namespaces: Vec<Key> = self
            .namespaces
            .keys()
            .map(|n| Key::Namespace(n.clone()))
            .collect();
        self.dirty.extend(namespaces);
        if changed {
            self.dirty.extend(self.waiting.iter().cloned());
        }
    }

    /// A new pool for `s`, holding what the holdings say is in it.
    fn refill(&mut self, s: &ValidSubnet) {
        let (cidr, exclude) = shape(s);
        let mut pool = SubnetPool::new(&s.name, cidr, &exclude);
        self.shapes.insert(s.name.clone(), (cidr, exclude));
        let mut dropped = Vec::new();
        for (owner, (subnet, lease)) in &self.holdings {
            if *subnet == s.name {
                if let Err(e) = pool.allocate_static(owner, lease.ip, lease.mac) {
                    warn!("subnet {}: {owner} loses {}: {e}", s.name, lease.ip);
                    dropped.push(owner.clone());
                }
            }
        }
        for o in dropped {
            self.holdings.remove(&o);
        }
        self.pools.insert(s.name.clone(), pool);
    }

    /// Every recorded holding back into the pools: IP objects, then pods (a pod's annotations
    /// win over its IP object), nodes' join addresses, subnets' u2o ports.
    fn rebuild(&mut self) {
        let mut recorded: Vec<(String, String, Ipv4Addr, Option<MacAddr>)> = Vec::new();
        for ip in self.ips.values() {
            if let (true, Some(addr)) = (ip.is_pods(), ip.ip) {
                recorded.push((ip.name.clone(), ip.subnet.clone(), addr, ip.mac));
            }
        }
        for p in self.pods.values().filter(|p| p.alive) {
            if let Some((subnet, ip, mac)) = p.allocated() {
                recorded.push((p.owner(), subnet, ip, mac));
            }
        }
        for (name, n) in &self.nodes {
            if let Some((ip, mac)) = node_allocated(n, &self.cfg.join_subnet) {
                recorded.push((node_owner(name), self.cfg.join_subnet.clone(), ip, mac));
            }
        }
        for (name, s) in &self.subnets {
            let ip = str_at(s, "/status/u2oInterconnectionIP");
            if let Some(ip) = ip.split(',').find_map(|p| p.parse::<Ipv4Addr>().ok()) {
                let vpc = match str_at(s, "/spec/vpc") {
                    "" => self.cfg.cluster_router.clone(),
                    v => v.to_string(),
                };
                let mac = parse_mac(str_at(s, "/status/u2oInterconnectionMAC"));
                recorded.push((u2o_owner(&vpc, name), name.clone(), ip, mac));
            }
        }
        for (owner, subnet, ip, mac) in recorded {
            if let Err(e) = self.hold(&owner, &subnet, ip, mac) {
                warn!("rebuild: {owner} in {subnet} at {ip}: {e}");
            }
        }
        debug!(holdings = self.holdings.len(), "rebuilt");
    }

    fn hold(
        &mut self,
        owner: &str,
        subnet: &str,
        ip: Ipv4Addr,
        mac: Option<MacAddr>,
    ) -> Result<Lease, String> {
        let mac = match (mac, self.holdings.get(owner)) {
            (Some(m), _) => m,
            (None, Some((s, l))) if s == subnet && l.ip == ip => l.mac,
            _ => Self::new_mac(&mut self.rng),
        };
        if let Some((s, l)) = self.holdings.get(owner) {
            if s == subnet && l.ip == ip && l.mac == mac {
                return Ok(*l);
            }
        }
        let Some(pool) = self.pools.get_mut(subnet) else {
            return Err(format!("subnet {subnet} not found"));
        };
        let lease = pool
            .allocate_static(owner, ip, mac)
            .map_err(|e| e.to_string())?;
        if let Some((old, _)) = self.holdings.insert(owner.into(), (subnet.into(), lease)) {
            if old != subnet {
                if let Some(p) = self.pools.get_mut(&old) {
                    p.release(owner);
                }
                self.dirty.insert(Key::Subnet(old));
            }
        }
        self.dirty.insert(Key::Subnet(subnet.into()));
        Ok(lease)
    }

    fn release(&mut self, owner: &str) {
        if let Some((subnet, _)) = self.holdings.remove(owner) {
            if let Some(p) = self.pools.get_mut(&subnet) {
                p.release(owner);
            }
            self.dirty.insert(Key::Subnet(subnet));
            self.dirty.extend(self.waiting.iter().cloned());
        }
    }

    fn install(&mut self) -> Vec<Write> {
        let mut out = Vec::new();
        for (kind, object) in defaults::install_objects(&self.cfg) {
            let name = str_at(&object, "/metadata/name").to_string();
            let exists = match kind {
                Kind::Subnet => self.subnets.contains_key(&name),
                k => self
                    .model
                    .contains(&ObjectKey::cluster(model_kind(k), name.clone())),
            };
            if !exists && self.created.insert((kind, name)) {
                out.push(Write::Create { kind, object });
            }
        }
        out
    }

    fn warn_once(
        &mut self,
        key: Key,
        regarding: Regarding,
        reason: &str,
        note: String,
    ) -> Vec<Write> {
        if self.reported.get(&key) == Some(&note) {
            return Vec::new();
        }
        warn!(
            "{reason}: {} {}: {note}",
            kind_name(regarding.kind),
            regarding.name
        );
        self.reported.insert(key, note.clone());
        vec![Write::Event {
            regarding,
            warning: true,
            reason: reason.into(),
            note,
        }]
    }

    fn subnet(&mut self, name: &str, now: &str) -> Vec<Write> {
        let Some(raw) = self.subnets.get(name) else {
            return Vec::new();
        };
        let uid = str_at(raw, "/metadata/uid").to_string();
        let spec = raw.get("spec").cloned().unwrap_or(Value::Null);
        let observed_status = raw.get("status").cloned().unwrap_or(json!({}));
        if let Some(patch) = subnet::format(name, &spec, &self.cfg) {
            if self.sent_format.get(name) == Some(&patch) {
                return Vec::new();
            }
            self.sent_format.insert(name.into(), patch.clone());
            return vec![Write::Patch {
                kind: Kind::Subnet,
                namespace: None,
                name: name.into(),
                patch,
            }];
        }
        let regarding = Regarding {
            kind: Kind::Subnet,
            namespace: None,
            name: name.into(),
            uid: Some(uid),
        };
        let key = ObjectKey::cluster(ObjectKind::Subnet, name);
        let errors: Vec<String> = self
            .unreadable
            .get(name)
            .cloned()
            .into_iter()
            .chain(
                self.state
                    .errors_for(&key)
                    .map(|e| format!("{}: {}", e.field, e.message)),
            )
            .collect();
        let mut out = Vec::new();
        let valid = if errors.is_empty() {
            self.reported.remove(&Key::Subnet(name.into()));
            Ok(())
        } else {
            let msg = errors.join("; ");
            out.extend(self.warn_once(
                Key::Subnet(name.into()),
                regarding,
                subnet::VALIDATE_FAILED,
                msg.clone(),
            ));
            Err(msg)
        };
        let u2o = match self.state.subnets.get(name).cloned() {
            Some(s) => self.u2o(&s, &spec),
            None => None,
        };
        let (using, available) = self
            .pools
            .get(name)
            .map_or((0, 0), |p| (p.using(), p.available()));
        let verdict = Verdict {
            valid,
            private: spec
                .get("private")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            using,
            available,
            u2o,
        };
        if self.sent_status.get(name) == Some(&verdict) {
            return out;
        }
        if let Some(patch) = subnet::status_patch(&observed_status, &verdict, now) {
            out.push(Write::Status {
                name: name.into(),
                patch,
            });
        }
        self.sent_status.insert(name.into(), verdict);
        out
    }

    /// The u2o router port of a valid subnet: held when u2o is on (the spec's address, else
    /// the lowest free), released when off.
    fn u2o(&mut self, s: &ValidSubnet, spec: &Value) -> Option<(Ipv4Addr, String, String)> {
        let owner = u2o_owner(&s.vpc, &s.name);
        let on = spec
            .get("u2oInterconnection")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            && s.vlan.is_some();
        if !on {
            self.release(&owner);
            return None;
        }
        let wanted: Option<Ipv4Addr> = str_at(spec, "/u2oInterconnectionIP")
            .split(',')
            .find_map(|p| p.parse().ok());
        let held = self.holdings.get(&owner).map(|(_, l)| *l);
        let lease = match (wanted, held) {
            (Some(ip), Some(l)) if l.ip == ip => Some(l),
            (None, Some(l)) => Some(l),
            (Some(ip), _) => self.hold(&owner, &s.name, ip, held.map(|l| l.mac)).ok(),
            (None, None) => {
                let pool = self.pools.get_mut(&s.name)?;
                let l = pool
                    .allocate(&owner, None, &mut || Self::new_mac(&mut self.rng))
                    .ok()?;
                self.holdings.insert(owner.clone(), (s.name.clone(), l));
                Some(l)
            }
        }?;
        Some((lease.ip, format_mac(&lease.mac), s.vpc.clone()))
    }

    /// The default subnet: the valid one marked `default`, else the configured name.
    fn default_subnet(&self) -> String {
        self.state
            .subnets
            .values()
            .find(|s| s.default)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| self.cfg.default_subnet.clone())
    }

    /// The subnets bound to a namespace by their `namespaces` lists.
    fn bound(&self, namespace: &str) -> Vec<&ValidSubnet> {
        self.state
            .subnets
            .values()
            .filter(|s| s.namespaces.iter().any(|n| n == namespace))
            .collect()
    }

    /// Where a namespace's pods go: its bound subnets, else those its `logical_switch`
    /// annotation names, else the default subnet.
    fn namespace_subnets(&self, namespace: &str) -> Vec<String> {
        let bound: Vec<String> = self
            .bound(namespace)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        if !bound.is_empty() {
            return bound;
        }
        if let Some(ls) = self
            .namespaces
            .get(namespace)
            .and_then(|n| n.annotations.get(pod::LOGICAL_SWITCH))
            .filter(|v| !v.is_empty())
        {
            return ls.split(',').map(|s| s.trim().to_string()).collect();
        }
        vec![self.default_subnet()]
    }

    fn namespace(&mut self, name: &str) -> Vec<Write> {
        let Some(ns) = self.namespaces.get(name).cloned() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // The older form: the namespace names a subnet that does not exist, with its CIDR.
        let ls = ns
            .annotations
            .get(pod::LOGICAL_SWITCH)
            .cloned()
            .unwrap_or_default();
        if !ls.is_empty() && !ls.contains(',') && !self.subnets.contains_key(&ls) {
            if let Some(object) = defaults::namespace_subnet(name, &ns.annotations) {
                if self.created.insert((Kind::Subnet, ls.clone())) {
                    out.push(Write::Create {
                        kind: Kind::Subnet,
                        object,
                    });
                }
                return out;
            }
        }
        let bound = self.bound(name);
        let subnets: Vec<&ValidSubnet> = if !bound.is_empty() {
            bound
        } else if !ls.is_empty() && ls.split(',').all(|s| self.subnets.contains_key(s.trim())) {
            return out; // the user's choice of existing subnets
        } else {
            match self.state.subnets.get(&self.default_subnet()) {
                Some(s) => vec![s],
                None => return out,
            }
        };
        let mut want = Map::new();
        let names: Vec<&str> = subnets.iter().map(|s| s.name.as_str()).collect();
        let cidrs: Vec<String> = subnets.iter().map(|s| s.cidr.to_string()).collect();
        let excludes: Vec<String> = subnets
            .iter()
            .map(|s| {
                self.subnets
                    .get(&s.name)
                    .and_then(|r| r.pointer("/spec/excludeIps"))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            })
            .collect();
        for (k, v) in [
            (pod::LOGICAL_SWITCH, names.join(",")),
            (pod::CIDR, cidrs.join(";")),
            (pod::EXCLUDE_IPS, excludes.join(";")),
        ] {
            if ns.annotations.get(k) != Some(&v) {
                want.insert(k.into(), json!(v));
            }
        }
        if want.is_empty() {
            return out;
        }
        let patch = json!({"metadata": {"annotations": want}});
        if self.sent_namespaces.get(name) == Some(&patch) {
            return out;
        }
        self.sent_namespaces.insert(name.into(), patch.clone());
        out.push(Write::Patch {
            kind: Kind::Namespace,
            namespace: None,
            name: name.into(),
            patch,
        });
        out
    }

    fn node(&mut self, name: &str) -> Vec<Write> {
        let owner = node_owner(name);
        let key = Key::Node(name.into());
        let Some(n) = self.nodes.get(name).cloned() else {
            self.release(&owner);
            self.sent_nodes.remove(name);
            self.waiting.remove(&key);
            return Vec::new();
        };
        let regarding = Regarding {
            kind: Kind::Node,
            namespace: None,
            name: name.into(),
            uid: Some(n.uid.clone()),
        };
        let join = self.cfg.join_subnet.clone();
        if let Some((ip, mac)) = node_allocated(&n, &join) {
            self.waiting.remove(&key);
            return match self.hold(&owner, &join, ip, mac) {
                Ok(_) => Vec::new(),
                Err(e) => self.warn_once(key, regarding, ACQUIRE_FAILED, e),
            };
        }
        if self.sent_nodes.contains_key(name) {
            return Vec::new();
        }
        let Some(subnet) = self.state.subnets.get(&join).cloned() else {
            self.waiting.insert(key);
            return Vec::new();
        };
        let rng = &mut self.rng;
        let Some(pool) = self.pools.get_mut(&join) else {
            self.waiting.insert(key);
            return Vec::new();
        };
        match pool.allocate(&owner, None, &mut || Self::new_mac(rng)) {
            Ok(lease) => {
                self.waiting.remove(&key);
                self.holdings.insert(owner.clone(), (join.clone(), lease));
                self.dirty.insert(Key::Subnet(join.clone()));
                self.sent_nodes.insert(name.into(), lease);
                let patch = json!({"metadata": {"annotations": {
                    pod::ALLOCATED: "true",
                    pod::IP_ADDRESS: lease.ip.to_string(),
                    pod::MAC_ADDRESS: format_mac(&lease.mac),
                    pod::CIDR: subnet.cidr.to_string(),
                    pod::GATEWAY: subnet.gateway.to_string(),
                    pod::LOGICAL_SWITCH: join,
                    pod::PORT_NAME: owner,
                }}});
                vec![Write::Patch {
                    kind: Kind::Node,
                    namespace: None,
                    name: name.into(),
                    patch,
                }]
            }
            Err(e) => {
                self.waiting.insert(key.clone());
                self.warn_once(key, regarding, ACQUIRE_FAILED, e.to_string())
            }
        }
    }

    fn pod(&mut self, ns: &str, name: &str) -> Vec<Write> {
        let key = Key::Pod(ns.into(), name.into());
        let owner = format!("{name}.{ns}");
        let pod = self
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .filter(|p| p.alive)
            .cloned();
        let Some(p) = pod else {
            // Gone: its address and IP object go too.
            self.release(&owner);
            self.sent_pods.remove(&owner);
            self.waiting.remove(&key);
            self.reported.remove(&key);
            let had_ip = self.ips.contains_key(&owner) || self.sent_ips.remove(&owner).is_some();
            return if had_ip {
                vec![Write::Delete {
                    kind: Kind::Ip,
                    namespace: None,
                    name: owner,
                }]
            } else {
                Vec::new()
            };
        };
        if p.host_network {
            return Vec::new();
        }
        let regarding = Regarding {
            kind: Kind::Pod,
            namespace: Some(ns.into()),
            name: name.into(),
            uid: Some(p.uid.clone()),
        };
        if let Some((subnet, ip, mac)) = p.allocated() {
            self.waiting.remove(&key);
            return match self.hold(&owner, &subnet, ip, mac) {
                Ok(lease) => self.ip_write(&p, &subnet, &lease),
                Err(e) => self.warn_once(key, regarding, ACQUIRE_FAILED, e),
            };
        }
        if self.sent_pods.contains_key(&owner) {
            return Vec::new();
        }
        match self.allocate(&p) {
            Ok((subnet, lease)) => {
                self.waiting.remove(&key);
                self.reported.remove(&key);
                let s = &self.state.subnets[&subnet];
                let annotations = pod::annotations(s, &lease);
                let patch = json!({"metadata": {"annotations": annotations}});
                let mut out = self.ip_write(&p, &subnet, &lease);
                out.push(Write::Patch {
                    kind: Kind::Pod,
                    namespace: Some(ns.into()),
                    name: name.into(),
                    patch,
                });
                self.sent_pods.insert(owner, lease);
                out
            }
            Err(NoAddress::Wait(why)) => {
                debug!("pod {ns}/{name} waits: {why}");
                self.waiting.insert(key);
                Vec::new()
            }
            Err(NoAddress::Bad(why)) => {
                self.waiting.insert(key.clone());
                self.warn_once(key, regarding, ACQUIRE_FAILED, why)
            }
        }
    }

    /// The IP object write when the observed one (or the last written) differs.
    fn ip_write(&mut self, p: &PodView, subnet: &str, lease: &Lease) -> Vec<Write> {
        let owner = p.owner();
        let object = pod::ip_object(p, subnet, lease);
        if self.sent_ips.get(&owner) == Some(&object) {
            return Vec::new();
        }
        if let Some(have) = self.ips.get(&owner) {
            if have.subnet == subnet
                && have.ip == Some(lease.ip)
                && have.mac == Some(lease.mac)
                && have.node == p.node
                && have.pod == p.name
            {
                return Vec::new();
            }
        }
        self.sent_ips.insert(owner, object.clone());
        vec![Write::Ip { object }]
    }

    /// Subnet choice and allocation (Kube-OVN's order: the pod's `logical_switch`, the subnet
    /// of its `ip_pool`, the namespace's subnets skipping full ones, the default subnet).
    fn allocate(&mut self, p: &PodView) -> Result<(String, Lease), NoAddress> {
        let req = p.request().map_err(NoAddress::Bad)?;
        let owner = p.owner();
        let (candidates, named) = if let Some(s) = p.named_subnet() {
            (vec![s.to_string()], true)
        } else if let Want::Pool(ips) = &req.what {
            let first = ips[0];
            match self
                .state
                .subnets
                .values()
                .find(|s| s.cidr.contains(&first))
            {
                Some(s) => (vec![s.name.clone()], true),
                None => {
                    return Err(NoAddress::Bad(format!(
                        "{}: {first} is not in any subnet",
                        pod::IP_POOL
                    )))
                }
            }
        } else {
            (self.namespace_subnets(&p.namespace), false)
        };
        let mut last = None;
        for (i, name) in candidates.iter().enumerate() {
            let more = i + 1 < candidates.len();
            if !self.state.subnets.contains_key(name) {
                let why = format!("subnet {name} not found");
                if named {
                    return Err(NoAddress::Bad(why));
                }
                last = Some(NoAddress::Wait(why));
                continue;
            }
            let rng = &mut self.rng;
            let Some(pool) = self.pools.get_mut(name) else {
                last = Some(NoAddress::Wait(format!("subnet {name} has no pool yet")));
                continue;
            };
            let mut new_mac = || Self::new_mac(rng);
            let r = match &req.what {
                Want::Static(ip) => {
                    if more && !pool.cidr().contains(ip) {
                        continue;
                    }
                    let mac = req.mac.unwrap_or_else(&mut new_mac);
                    pool.allocate_static(&owner, *ip, mac)
                }
                Want::Pool(ips) => pool.allocate_from(&owner, ips, req.mac, &mut new_mac),
                Want::Any => pool.allocate(&owner, req.mac, &mut new_mac),
            };
            match r {
                Ok(lease) => {
                    self.holdings.insert(owner.clone(), (name.clone(), lease));
                    self.dirty.insert(Key::Subnet(name.clone()));
                    return Ok((name.clone(), lease));
                }
                Err(IpamError::Full(_)) if more => continue,
                Err(e) => return Err(NoAddress::Bad(e.to_string())),
            }
        }
        Err(last
            .unwrap_or_else(|| NoAddress::Bad(format!("no subnet for namespace {}", p.namespace))))
    }

    fn ip(&mut self, name: &str) -> Vec<Write> {
        let Some(ip) = self.ips.get(name).cloned() else {
            return Vec::new();
        };
        if !ip.is_pods() {
            return Vec::new();
        }
        if self
            .pods
            .get(&(ip.namespace.clone(), ip.pod.clone()))
            .is_some_and(|p| p.alive)
        {
            return Vec::new();
        }
        // Its pod is gone (deleted while no controller ran): free it.
        if self
            .holdings
            .get(name)
            .is_some_and(|(s, l)| *s == ip.subnet && Some(l.ip) == ip.ip)
        {
            self.release(name);
        }
        vec![Write::Delete {
            kind: Kind::Ip,
            namespace: None,
            name: name.into(),
        }]
    }
}

/// What a subnet's pool is made of: its CIDR and what is never given out — `excludeIps` and
/// the gateway (formatting adds it to `excludeIps`; until that write is seen back, it is
/// excluded here all the same).
fn shape(s: &ValidSubnet) -> (Ipv4Net, Vec<Ipv4Range>) {
    let mut exclude = s.exclude_ips.clone();
    if !exclude.iter().any(|r| r.contains(s.gateway)) {
        exclude.push(Ipv4Range {
            start: s.gateway,
            end: s.gateway,
        });
    }
    (s.cidr, exclude)
}

fn node_owner(node: &str) -> String {
    format!("node-{node}")
}

fn u2o_owner(vpc: &str, subnet: &str) -> String {
    format!("u2o-interconnection.{vpc}.{subnet}")
}

fn node_allocated(n: &Named, join: &str) -> Option<(Ipv4Addr, Option<MacAddr>)> {
    let a = &n.annotations;
    if a.get(pod::ALLOCATED).map(String::as_str) != Some("true")
        || a.get(pod::LOGICAL_SWITCH).map(String::as_str) != Some(join)
    {
        return None;
    }
    let ip = a
        .get(pod::IP_ADDRESS)?
        .split(',')
        .find_map(|p| p.parse().ok())?;
    Some((ip, a.get(pod::MAC_ADDRESS).and_then(|m| parse_mac(m))))
}

fn model_kind(kind: Kind) -> ObjectKind {
    match kind {
        Kind::Pod => ObjectKind::Pod,
        Kind::Node => ObjectKind::Node,
        Kind::Subnet => ObjectKind::Subnet,
        Kind::Vlan => ObjectKind::Vlan,
        Kind::ProviderNetwork => ObjectKind::ProviderNetwork,
        Kind::Vpc => ObjectKind::Vpc,
        // Not the model's: never asked.
        Kind::Namespace | Kind::Ip => ObjectKind::Node,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Pod => "pod",
        Kind::Namespace => "namespace",
        Kind::Node => "node",
        Kind::Subnet => "subnet",
        Kind::Ip => "ip",
        Kind::Vlan => "vlan",
        Kind::ProviderNetwork => "provider-network",
        Kind::Vpc => "vpc",
    }
}

/// An object's name in its kind's map (`namespace/name` for pods).
fn key_name(kind: Kind, o: &Value) -> String {
    let name = str_at(o, "/metadata/name");
    if kind == Kind::Pod {
        let ns = match str_at(o, "/metadata/namespace") {
            "" => "default",
            ns => ns,
        };
        format!("{ns}/{name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet_obj(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "kubeovn.io/v1", "kind": "Subnet",
               "metadata": {"name": name, "uid": format!("u-{name}")}, "spec": spec})
    }

    fn formatted(name: &str, cidr: &str, gw: &str, exclude: &[&str], extra: Value) -> Value {
        let mut spec = json!({"cidrBlock": cidr, "gateway": gw, "excludeIps": exclude,
            "protocol": "IPv4", "provider": "ovn", "vpc": "ovn-cluster"});
        if name != "join" {
            spec["gatewayType"] = json!("distributed");
        }
        for (k, v) in extra.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        subnet_obj(name, spec)
    }

    fn pod_obj(ns: &str, name: &str, annotations: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("u-{name}"),
                            "annotations": annotations}, "spec": {"nodeName": "n1"}})
    }

    fn cluster(extra: Vec<(Kind, Vec<Value>)>) -> Core {
        let mut core = Core::new(Config::default(), 7);
        let mut lists: BTreeMap<Kind, Vec<Value>> =
            Kind::ALL.iter().map(|k| (*k, vec![])).collect();
        lists.get_mut(&Kind::Subnet).unwrap().extend([
            formatted(
                "ovn-default",
                "10.16.0.0/16",
                "10.16.0.1",
                &["10.16.0.1"],
                json!({"default": true}),
            ),
            formatted(
                "join",
                "100.64.0.0/16",
                "100.64.0.1",
                &["100.64.0.1"],
                json!({}),
            ),
        ]);
        lists.get_mut(&Kind::Vpc).unwrap().push(
            json!({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "ovn-cluster"}, "spec": {}}),
        );
        for (k, v) in extra {
            lists.get_mut(&k).unwrap().extend(v);
        }
        for (k, v) in lists {
            core.observe(Event::Listed(k, v));
        }
        core
    }

    /// Pod annotation patches by pod name.
    fn pod_patches(chains: &[Chain]) -> BTreeMap<String, Value> {
        chains
            .iter()
            .flat_map(|c| &c.writes)
            .filter_map(|w| match w {
                Write::Patch {
                    kind: Kind::Pod,
                    name,
                    patch,
                    ..
                } => Some((name.clone(), patch["metadata"]["annotations"].clone())),
                _ => None,
            })
            .collect()
    }

    fn events(chains: &[Chain]) -> Vec<(String, String)> {
        chains
            .iter()
            .flat_map(|c| &c.writes)
            .filter_map(|w| match w {
                Write::Event {
                    regarding, note, ..
                } => Some((regarding.name.clone(), note.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nothing_is_written_before_every_kind_is_listed() {
        let mut core = Core::new(Config::default(), 1);
        core.observe(Event::Listed(
            Kind::Pod,
            vec![pod_obj("default", "a", json!({}))],
        ));
        assert!(core.reconcile("t").is_empty());
        assert!(!core.is_ready());
    }

    #[test]
    fn the_kubeasz_namespace_gets_its_subnet_and_its_pods_addresses_from_11() {
        let ns = json!({"metadata": {"name": "test-ns", "uid": "u-ns", "annotations": {
            "ovn.kubernetes.io/cidr": "10.17.0.0/24", "ovn.kubernetes.io/gateway": "10.17.0.1",
            "ovn.kubernetes.io/logical_switch": "test-ns-subnet",
            "ovn.kubernetes.io/exclude_ips": "10.17.0.1..10.17.0.10"}}});
        let mut core = cluster(vec![
            (
                Kind::Namespace,
                vec![ns, json!({"metadata": {"name": "default", "uid": "u-d"}})],
            ),
            (
                Kind::Pod,
                vec![
                    pod_obj("test-ns", "p1", json!({})),
                    pod_obj("test-ns", "p2", json!({})),
                    pod_obj("default", "d1", json!({})),
                ],
            ),
        ]);
        let chains = core.reconcile("t");
        let created: Vec<&Value> = chains
            .iter()
            .flat_map(|c| &c.writes)
            .filter_map(|w| match w {
                Write::Create {
                    kind: Kind::Subnet,
                    object,
                } => Some(object),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 1, "{chains:#?}");
        assert_eq!(created[0]["metadata"]["name"], "test-ns-subnet");
        let p = pod_patches(&chains);
        assert_eq!(p["d1"]["ovn.kubernetes.io/ip_address"], "10.16.0.2");
        assert_eq!(p["d1"]["ovn.kubernetes.io/logical_router"], "ovn-cluster");
        assert!(!p.contains_key("p1"), "test-ns's pods wait for its subnet");
        // The subnet comes back (formatted): the pods get .11 and .12.
        let mut s = created[0].clone();
        s["metadata"]["uid"] = json!("u-s");
        s["spec"] = formatted(
            "test-ns-subnet",
            "10.17.0.0/24",
            "10.17.0.1",
            &["10.17.0.1..10.17.0.10"],
            json!({"namespaces": ["test-ns"]}),
        )["spec"]
            .clone();
        core.observe(Event::Apply(Kind::Subnet, s));
        let chains = core.reconcile("t");
        let p = pod_patches(&chains);
        let mut ips: Vec<&str> = ["p1", "p2"]
            .iter()
            .map(|n| p[*n]["ovn.kubernetes.io/ip_address"].as_str().unwrap())
            .collect();
        ips.sort();
        assert_eq!(ips, ["10.17.0.11", "10.17.0.12"]);
        assert_eq!(p["p1"]["ovn.kubernetes.io/cidr"], "10.17.0.0/24");
        assert_eq!(p["p1"]["ovn.kubernetes.io/gateway"], "10.17.0.1");
        assert_eq!(
            p["p1"]["ovn.kubernetes.io/logical_switch"],
            "test-ns-subnet"
        );
        assert_eq!(p["p1"]["ovn.kubernetes.io/allocated"], "true");
        assert_eq!(p["p1"]["ovn.kubernetes.io/routed"], "true");
        // Each pod's IP object is written before its annotations.
        let c = chains
            .iter()
            .find(|c| c.key == Key::Pod("test-ns".into(), "p1".into()))
            .unwrap();
        assert!(
            matches!(&c.writes[0], Write::Ip { object } if object["metadata"]["name"] == "p1.test-ns")
        );
    }

    #[test]
    fn a_restarted_controller_rebuilds_and_reallocates_nothing() {
        let held = pod_obj(
            "default",
            "a",
            json!({"ovn.kubernetes.io/allocated": "true",
            "ovn.kubernetes.io/ip_address": "10.16.0.2", "ovn.kubernetes.io/mac_address": "02:00:00:00:00:02",
            "ovn.kubernetes.io/logical_switch": "ovn-default"}),
        );
        // Allocated by a leader that died before annotating: only its IP object says so.
        let ip_only = json!({"metadata": {"name": "b.default"}, "spec": {"podName": "b",
            "namespace": "default", "subnet": "ovn-default", "v4IpAddress": "10.16.0.3",
            "macAddress": "02:00:00:00:00:03", "nodeName": "n1"}});
        let mut core = cluster(vec![
            (
                Kind::Pod,
                vec![
                    held,
                    pod_obj("default", "b", json!({})),
                    pod_obj("default", "c", json!({})),
                ],
            ),
            (Kind::Ip, vec![ip_only]),
        ]);
        let chains = core.reconcile("t");
        let p = pod_patches(&chains);
        assert!(!p.contains_key("a"));
        assert_eq!(p["b"]["ovn.kubernetes.io/ip_address"], "10.16.0.3");
        assert_eq!(p["b"]["ovn.kubernetes.io/mac_address"], "02:00:00:00:00:03");
        assert_eq!(p["c"]["ovn.kubernetes.io/ip_address"], "10.16.0.4");
    }

    #[test]
    fn bad_input_is_a_warning_on_the_pod_and_the_rest_is_served() {
        let mut core = cluster(vec![(
            Kind::Pod,
            vec![
                pod_obj(
                    "default",
                    "outside",
                    json!({"ovn.kubernetes.io/ip_address": "10.99.0.5"}),
                ),
                pod_obj(
                    "default",
                    "pool",
                    json!({"ovn.kubernetes.io/ip_pool": "10.16.0.50,x"}),
                ),
                pod_obj(
                    "default",
                    "s1",
                    json!({"ovn.kubernetes.io/ip_address": "10.16.0.1"}),
                ),
                pod_obj("default", "ok", json!({})),
            ],
        )]);
        let chains = core.reconcile("t");
        let p = pod_patches(&chains);
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            ["ok", "s1"],
            "a static address may be excluded"
        );
        assert_eq!(p["s1"]["ovn.kubernetes.io/ip_address"], "10.16.0.1");
        let ev: BTreeMap<String, String> = events(&chains).into_iter().collect();
        assert_eq!(
            ev["outside"],
            "10.99.0.5 is not in subnet ovn-default (10.16.0.0/16)"
        );
        assert_eq!(
            ev["pool"],
            "ovn.kubernetes.io/ip_pool 10.16.0.50,x: x is not a valid IP address"
        );
        // The same address asked for again: in use.
        core.observe(Event::Apply(
            Kind::Pod,
            pod_obj(
                "default",
                "s2",
                json!({"ovn.kubernetes.io/ip_address": "10.16.0.1"}),
            ),
        ));
        let chains = core.reconcile("t");
        assert_eq!(
            events(&chains),
            [(
                "s2".into(),
                "10.16.0.1 is already used by s1.default".into()
            )]
        );
        // Reported once.
        core.observe(Event::Apply(
            Kind::Pod,
            pod_obj(
                "default",
                "s2",
                json!({"ovn.kubernetes.io/ip_address": "10.16.0.1"}),
            ),
        ));
        assert!(events(&core.reconcile("t")).is_empty());
    }

    #[test]
    fn nodes_get_join_addresses_and_subnets_their_status() {
        let node = json!({"metadata": {"name": "n1", "uid": "u-n1"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "172.18.0.2"}]}});
        let mut core = cluster(vec![(Kind::Node, vec![node])]);
        let chains = core.reconcile("2026-01-01T00:00:00Z");
        let node_patch = chains
            .iter()
            .flat_map(|c| &c.writes)
            .find_map(|w| match w {
                Write::Patch {
                    kind: Kind::Node,
                    patch,
                    ..
                } => Some(patch["metadata"]["annotations"].clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            node_patch,
            json!({"ovn.kubernetes.io/allocated": "true",
            "ovn.kubernetes.io/ip_address": "100.64.0.2",
            "ovn.kubernetes.io/mac_address": node_patch["ovn.kubernetes.io/mac_address"],
            "ovn.kubernetes.io/cidr": "100.64.0.0/16", "ovn.kubernetes.io/gateway": "100.64.0.1",
            "ovn.kubernetes.io/logical_switch": "join", "ovn.kubernetes.io/port_name": "node-n1"})
        );
        let join_status = chains
            .iter()
            .flat_map(|c| &c.writes)
            .find_map(|w| match w {
                Write::Status { name, patch } if name == "join" => Some(patch.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(join_status["status"]["v4usingIPs"], 1, "{join_status:#}");
        assert_eq!(join_status["status"]["v4availableIPs"], 65533 - 1);
    }
}
