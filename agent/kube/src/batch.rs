//! Watch inputs into the compiler's changes (pure: no I/O, unit-tested).
//!
//! * [`Initial`]: the first lists of every watcher, gathered into one [`ObjectSet`] before the
//!   compiler is built (as the file source loads everything first).
//! * [`batch`]: later inputs against what the compiler holds: an object equal to the held one
//!   is no change (a relist of an unchanged cluster gives none), the last input for a key wins,
//!   and a completed list deletes the held objects of its scope it no longer has.
//! * [`Rejections`]: which validation errors are new, to report each once.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use pipelines::model::{Change, Object, ObjectKey, ObjectSet, ValidationError};
use pipelines::Compiler;

use crate::watch::{Input, Scope};

/// An object the model could not read: its key and the message (the file source's load error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub scope: Scope,
    pub key: ObjectKey,
    pub message: String,
}

/// The first lists, gathered.
#[derive(Debug)]
pub struct Initial {
    this_node: String,
    pub objects: ObjectSet,
    pub unreadable: Vec<Unreadable>,
    listed: HashSet<Scope>,
    /// The last connectivity report seen, if any.
    pub connected: Option<bool>,
}

impl Initial {
    pub fn new(this_node: &str) -> Initial {
        Initial {
            this_node: this_node.to_string(),
            objects: ObjectSet::new(),
            unreadable: Vec::new(),
            listed: HashSet::new(),
            connected: None,
        }
    }

    /// Takes one input.
    pub fn take(&mut self, input: Input) {
        match input {
            Input::Apply(_, o) => {
                self.connected = Some(true);
                self.objects.insert(o);
            }
            Input::Delete(_, k) => {
                self.objects.remove(&k);
            }
            Input::Unreadable(scope, key, message) => {
                self.objects.remove(&key);
                self.unreadable.push(Unreadable {
                    scope,
                    key,
                    message,
                });
            }
            Input::Listed(scope, seen) => {
                self.connected = Some(true);
                let kind = scope.kind();
                let this_node = &self.this_node;
                self.objects.retain(|k, o| {
                    k.kind != kind || seen.contains(k) || !scope.covers(this_node, pod_node(o))
                });
                self.listed.insert(scope);
            }
            Input::Connected(c) => self.connected = Some(c),
        }
    }

    /// Whether every watcher has listed once.
    pub fn complete(&self) -> bool {
        Scope::ALL.iter().all(|s| self.listed.contains(s))
    }
}

/// A pod's `spec.nodeName`; `None` for other kinds.
fn pod_node(o: &Object) -> Option<&str> {
    match o {
        Object::Pod(p) => Some(&p.spec.node_name),
        _ => None,
    }
}

/// One batch of inputs as compiler changes.
#[derive(Debug, Default)]
pub struct Batch {
    pub changes: Vec<Change>,
    pub unreadable: Vec<Unreadable>,
    /// Scopes whose list (a relist) completed in this batch.
    pub listed: Vec<Scope>,
    /// The last connectivity report, if any input said (events and lists say `true`).
    pub connected: Option<bool>,
}

/// Turns inputs into the changes the compiler does not already hold. `this_node` splits pods
/// between the two pod scopes: a delete (or a relist's omission) by one scope never removes a
/// pod the compiler holds on the other's side of the split — when a pod is deleted and made
/// again on another node, the two watchers' events may come in either order.
pub fn batch(compiler: &Compiler, this_node: &str, inputs: Vec<Input>) -> Batch {
    let mut b = Batch::default();
    // key -> (scope, the object, or None for a delete); the last input for a key wins.
    let mut pending: BTreeMap<ObjectKey, (Scope, Option<Object>)> = BTreeMap::new();
    for input in inputs {
        match input {
            Input::Apply(scope, o) => {
                b.connected = Some(true);
                pending.insert(o.key(), (scope, Some(o)));
            }
            Input::Delete(scope, k) => {
                b.connected = Some(true);
                delete(&mut pending, scope, k, this_node, compiler);
            }
            Input::Unreadable(scope, key, message) => {
                b.connected = Some(true);
                delete(&mut pending, scope, key.clone(), this_node, compiler);
                b.unreadable.push(Unreadable {
                    scope,
                    key,
                    message,
                });
            }
            Input::Listed(scope, seen) => {
                b.connected = Some(true);
                for (k, node) in compiler.held_keys(scope.kind()) {
                    if seen.contains(&k) || !scope.covers(this_node, node) {
                        continue;
                    }
                    // Applied in this batch by the other pod scope: not this list's to drop.
                    if matches!(pending.get(&k), Some((s, Some(_))) if *s != scope) {
                        continue;
                    }
                    pending.insert(k, (scope, None));
                }
                b.listed.push(scope);
            }
            Input::Connected(c) => b.connected = Some(c),
        }
    }
    for (k, (_, o)) in pending {
        match o {
            Some(o) if compiler.holds(&o) => {}
            Some(o) => b.changes.push(Change::Apply(o)),
            None if compiler.held(&k).is_some() => b.changes.push(Change::Delete(k)),
            None => {}
        }
    }
    b
}

/// Records a delete by `scope`, unless the pod it names is held (or pending) on the other
/// scope's side.
fn delete(
    pending: &mut BTreeMap<ObjectKey, (Scope, Option<Object>)>,
    scope: Scope,
    key: ObjectKey,
    this_node: &str,
    compiler: &Compiler,
) {
    match pending.get(&key) {
        Some((s, Some(_))) if *s != scope => return,
        Some(_) => {}
        None => {
            if let Some(node) = compiler.held(&key) {
                if !scope.covers(this_node, node) {
                    return;
                }
            }
        }
    }
    pending.insert(key, (scope, None));
}

/// The validation errors already reported, to report each one once (again only after it was
/// gone: resolved, then back). Kept as hashes: a few bytes per rejected object.
#[derive(Debug, Default)]
pub struct Rejections {
    reported: HashSet<u64>,
}

impl Rejections {
    /// The errors of `errors` not reported yet, among those `report` accepts; forgets the
    /// reported ones that are gone.
    pub fn update<'a>(
        &mut self,
        errors: impl IntoIterator<Item = &'a ValidationError>,
        report: impl Fn(&ValidationError) -> bool,
    ) -> Vec<&'a ValidationError> {
        let mut now = HashSet::with_capacity(self.reported.len());
        let mut new = Vec::new();
        for e in errors {
            if !report(e) {
                continue;
            }
            let mut h = DefaultHasher::new();
            e.hash(&mut h);
            let h = h.finish();
            if !self.reported.contains(&h) {
                new.push(e);
            }
            now.insert(h);
        }
        self.reported = now;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::model::{load_yaml_str, ObjectKind};
    use pipelines::{NodeConfig, TunnelType};

    fn objects(yaml: &str) -> Vec<Object> {
        let l = load_yaml_str(yaml, "t");
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        l.objects.into_iter().map(|(_, o)| o).collect()
    }

    fn node(name: &str, ip: &str) -> String {
        format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n---\n")
    }

    fn pod(name: &str, node: &str, n: u8) -> String {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    ovn.kubernetes.io/ip_address: 10.16.0.{n}\n    ovn.kubernetes.io/mac_address: 00:00:00:aa:00:{n:02x}\n    ovn.kubernetes.io/logical_switch: ovn-default\nspec:\n  nodeName: {node}\n---\n")
    }

    const SUBNET: &str = "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: ovn-default\nspec:\n  cidrBlock: 10.16.0.0/16\n  gateway: 10.16.0.1\n---\n";

    fn cluster() -> String {
        format!(
            "{}{}{SUBNET}{}{}",
            node("n1", "172.18.0.1"),
            node("n2", "172.18.0.2"),
            pod("a", "n1", 10),
            pod("b", "n2", 11)
        )
    }

    fn compiler(yaml: &str) -> Compiler {
        let set: ObjectSet = objects(yaml).into_iter().collect();
        Compiler::new(NodeConfig::new("n1", TunnelType::Geneve), set)
    }

    fn scope_of(o: &Object) -> Scope {
        match o.kind() {
            ObjectKind::Node => Scope::Nodes,
            ObjectKind::Subnet => Scope::Subnets,
            ObjectKind::Pod => match o {
                Object::Pod(p) if p.spec.node_name == "n1" => Scope::LocalPods,
                _ => Scope::RemotePods,
            },
            _ => unreachable!(),
        }
    }

    /// The inputs of a full relist of every scope, from the objects.
    fn relist(objs: &[Object]) -> Vec<Input> {
        let mut inputs = Vec::new();
        let mut seen: BTreeMap<Scope, HashSet<ObjectKey>> =
            Scope::ALL.iter().map(|s| (*s, HashSet::new())).collect();
        for o in objs {
            let s = scope_of(o);
            seen.get_mut(&s).unwrap().insert(o.key());
            inputs.push(Input::Apply(s, o.clone()));
        }
        for (s, keys) in seen {
            inputs.push(Input::Listed(s, keys));
        }
        inputs
    }

    #[test]
    fn a_relist_of_what_the_compiler_holds_is_no_change() {
        let c = compiler(&cluster());
        let b = batch(&c, "n1", relist(&objects(&cluster())));
        assert!(b.changes.is_empty(), "{:?}", b.changes);
        assert_eq!(b.listed.len(), Scope::ALL.len());
        assert_eq!(b.connected, Some(true));
    }

    #[test]
    fn a_relist_deletes_what_it_no_longer_has_and_applies_what_changed() {
        let c = compiler(&cluster());
        // b is gone, a moved to another address, a new remote pod c.
        let now = format!(
            "{}{}{SUBNET}{}{}",
            node("n1", "172.18.0.1"),
            node("n2", "172.18.0.2"),
            pod("a", "n1", 20),
            pod("c", "n2", 12)
        );
        let mut b = batch(&c, "n1", relist(&objects(&now)));
        b.changes.sort_by_key(|c| format!("{c:?}"));
        let keys: Vec<String> = b
            .changes
            .iter()
            .map(|c| match c {
                Change::Apply(o) => format!("apply {}", o.key()),
                Change::Delete(k) => format!("delete {k}"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                "apply Pod \"default/a\"",
                "apply Pod \"default/c\"",
                "delete Pod \"default/b\""
            ]
        );
    }

    #[test]
    fn one_pod_scopes_list_never_deletes_the_others_pods() {
        let c = compiler(&cluster());
        // The local pods' relist is empty: a (on n1) goes, b (on n2) stays.
        let b = batch(
            &c,
            "n1",
            vec![Input::Listed(Scope::LocalPods, HashSet::new())],
        );
        assert_eq!(b.changes, [Change::Delete(ObjectKey::pod("default", "a"))]);
        let b = batch(
            &c,
            "n1",
            vec![Input::Listed(Scope::RemotePods, HashSet::new())],
        );
        assert_eq!(b.changes, [Change::Delete(ObjectKey::pod("default", "b"))]);
    }

    #[test]
    fn a_pod_made_again_on_another_node_survives_the_late_delete() {
        let c = compiler(&cluster());
        let moved = objects(&pod("a", "n2", 10)).pop().unwrap();
        // The remote watcher's add first, then the local watcher's delete (same batch).
        let b = batch(
            &c,
            "n1",
            vec![
                Input::Apply(Scope::RemotePods, moved.clone()),
                Input::Delete(Scope::LocalPods, ObjectKey::pod("default", "a")),
            ],
        );
        assert_eq!(b.changes, [Change::Apply(moved.clone())]);
        // In two batches: the compiler then holds it on n2, and the late delete is ignored.
        let mut c2 = compiler(&cluster());
        c2.apply(vec![Change::Apply(moved)]);
        let b = batch(
            &c2,
            "n1",
            vec![Input::Delete(
                Scope::LocalPods,
                ObjectKey::pod("default", "a"),
            )],
        );
        assert!(b.changes.is_empty(), "{:?}", b.changes);
    }

    #[test]
    fn a_pod_event_is_one_pod_change() {
        let c = compiler(&cluster());
        let moved = objects(&pod("a", "n1", 40)).pop().unwrap();
        let b = batch(
            &c,
            "n1",
            vec![Input::Apply(Scope::LocalPods, moved.clone())],
        );
        assert_eq!(b.changes, [Change::Apply(moved)]);
        let b = batch(
            &c,
            "n1",
            vec![Input::Delete(
                Scope::RemotePods,
                ObjectKey::pod("default", "b"),
            )],
        );
        assert_eq!(b.changes, [Change::Delete(ObjectKey::pod("default", "b"))]);
    }

    #[test]
    fn the_last_input_for_a_key_wins_and_deletes_of_unknown_keys_are_dropped() {
        let c = compiler(&cluster());
        let objs = objects(&pod("x", "n2", 30));
        let x = ObjectKey::pod("default", "x");
        let b = batch(
            &c,
            "n1",
            vec![
                Input::Apply(Scope::RemotePods, objs[0].clone()),
                Input::Delete(Scope::RemotePods, x.clone()),
            ],
        );
        assert!(b.changes.is_empty(), "x was never held: {:?}", b.changes);
        let b = batch(
            &c,
            "n1",
            vec![
                Input::Delete(Scope::RemotePods, x),
                Input::Apply(Scope::RemotePods, objs[0].clone()),
                Input::Connected(false),
            ],
        );
        assert_eq!(b.changes, [Change::Apply(objs[0].clone())]);
        assert_eq!(b.connected, Some(false));
    }

    #[test]
    fn an_unreadable_object_is_left_out_and_reported() {
        let c = compiler(&cluster());
        let k = ObjectKey::cluster(ObjectKind::Subnet, "ovn-default");
        let b = batch(
            &c,
            "n1",
            vec![Input::Unreadable(Scope::Subnets, k.clone(), "bad".into())],
        );
        assert_eq!(b.changes, [Change::Delete(k.clone())]);
        assert_eq!(b.unreadable[0].key, k);
    }

    #[test]
    fn the_first_lists_gather_every_scope() {
        let mut init = Initial::new("n1");
        let objs = objects(&cluster());
        let inputs = relist(&objs);
        let n = inputs.len();
        for (i, input) in inputs.into_iter().enumerate() {
            assert!(!init.complete(), "complete before input {i} of {n}");
            init.take(input);
        }
        assert!(init.complete());
        assert_eq!(init.objects.len(), objs.len());
        assert_eq!(init.connected, Some(true));
        // The compiler built from them holds what a relist says.
        let c = Compiler::new(NodeConfig::new("n1", TunnelType::Geneve), init.objects);
        assert!(batch(&c, "n1", relist(&objs)).changes.is_empty());
    }

    #[test]
    fn each_rejection_is_reported_once_while_it_lasts() {
        let e = |name: &str, msg: &str| ValidationError {
            kind: ObjectKind::Subnet,
            name: name.into(),
            field: "spec.gateway".into(),
            message: msg.into(),
        };
        let all = |_: &ValidationError| true;
        let mut r = Rejections::default();
        let (bad, worse) = (e("s1", "bad"), e("s1", "worse"));
        assert_eq!(r.update([&bad], all), [&bad]);
        assert!(r.update([&bad], all).is_empty());
        // Another reason is another report; a resolved one comes back as new.
        assert_eq!(r.update([&worse], all), [&worse]);
        assert!(r.update([], all).is_empty());
        assert_eq!(r.update([&worse], all), [&worse]);
        // Filtered out: never reported.
        assert!(r.update([&e("s2", "x")], |e| e.name != "s2").is_empty());
    }
}
