//! Incremental pod changes: apply one pod upsert or delete to a [`ClusterState`] without
//! revalidating the cluster.
//!
//! Pods are the bulk of a cluster and its churn, and nothing else depends on them: a pod change
//! never changes nodes, subnets or any other kind, only the pods and their errors. A pod's own
//! rules ([`check_pod`]) read only non-pod state, so they are rerun on the changed pod alone.
//! What couples pods is the address rule ([`Claims`]): in a subnet, the first pod in key order
//! asking for an IP or MAC gets it, and a pod losing either is rejected and claims nothing.
//! Whether a pod wins depends only on the pods it shares an address with, transitively: its
//! *claim group* (a connected component of the "asks for the same (subnet, IP) or (subnet, MAC)"
//! graph over the pods passing their own rules). So a change is applied by re-deciding the
//! changed pod's old and new groups in key order, with the same [`Claims`] [`validate`] uses.
//! With unique addresses the group is the pod alone.
//!
//! Cost: a few hash and B-tree lookups per pod of the group, plus a binary search and, when a
//! pod's errors change, a splice of [`ClusterState::errors`] (a `memmove` of the pod errors
//! after it). Measured with `examples/pod_churn.rs` (100k pods, 200 subnets, 100 nodes), in an
//! unoptimized dev build: 8 µs per delete, 12-16 µs per upsert, against 0.9 s for a full
//! [`validate`] (release builds are several times faster for both). Building the indexes is part
//! of `validate`: about 40% of its cost in that dev build (one more hash entry per pod address).
//!
//! [`validate`]: fn@super::validate

use std::collections::{BTreeMap, HashSet};

use super::objects::{ObjectKey, ObjectKind, Pod};
use super::validate::{
    check_pod, Claims, ClusterState, PodContext, PodName, PodVerdict, Slot, ValidPod,
    ValidationError,
};

/// The most pods (besides the changed one) sharing addresses with a changed pod, directly or
/// through each other, that [`ClusterState::upsert_pod`] and [`ClusterState::delete_pod`]
/// re-decide; beyond it they return `None`.
pub const MAX_CLAIM_GROUP: usize = 64;

/// What an incremental pod change did to the validated pods.
///
/// Both lists are in pod key (namespace, name) order. A pod whose value changed is in both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodDelta {
    /// Pods that were valid before and are gone or changed (old values).
    pub removed: Vec<ValidPod>,
    /// Pods that are valid now and were not, or changed (new values).
    pub added: Vec<ValidPod>,
}

impl PodDelta {
    /// Whether no valid pod changed (errors may still have).
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// The (namespace, name) a pod error names.
fn pod_error_key(e: &ValidationError) -> (&str, &str) {
    e.name.split_once('/').unwrap_or((e.name.as_str(), ""))
}

impl ClusterState {
    /// Applies one pod upsert (the raw Pod object, as in the [`ObjectSet`]) incrementally.
    /// Returns `None` when the change cannot be decided locally and the caller must re-run
    /// [`validate`] on the whole `ObjectSet` (`self` is then left unchanged). After `Some`,
    /// `self` equals `validate` of the objects with this pod inserted, `errors` order included.
    ///
    /// `None` only when more than [`MAX_CLAIM_GROUP`] other pods share addresses with this pod
    /// (directly or through each other), or when a pod namespace contains '/'.
    ///
    /// [`ObjectSet`]: super::ObjectSet
    /// [`validate`]: fn@super::validate
    pub fn upsert_pod(&mut self, pod: &Pod) -> Option<PodDelta> {
        let key = pod.key();
        if self.index.odd_namespaces || key.namespace.contains('/') {
            return None;
        }
        let verdict = check_pod(&key, pod, &self.pod_context());
        self.apply_pod(&key, verdict)
    }

    /// Same as [`ClusterState::upsert_pod`] for a delete by key (deleting an absent pod is a
    /// no-op). `None` also for a key that is not a pod's.
    pub fn delete_pod(&mut self, key: &ObjectKey) -> Option<PodDelta> {
        if key.kind != ObjectKind::Pod || self.index.odd_namespaces || key.namespace.contains('/') {
            return None;
        }
        self.apply_pod(key, PodVerdict::Unbound)
    }

    fn pod_context(&self) -> PodContext<'_> {
        PodContext {
            nodes: &self.nodes,
            subnets: &self.subnets,
            rejected_nodes: &self.index.rejected_nodes,
            rejected_subnets: &self.index.rejected_subnets,
        }
    }

    /// The pod's value if it passed its own rules (accepted or not).
    fn candidate(&self, name: &PodName) -> Option<&ValidPod> {
        self.pods
            .get(name)
            .or_else(|| self.index.duplicates.get(name))
    }

    /// The pods other than `name` in the claim groups of `start` (the changed pod's old and new
    /// values), by key; `None` when there are more than [`MAX_CLAIM_GROUP`].
    fn claim_group<'a>(
        &'a self,
        name: &PodName,
        start: [Option<&'a ValidPod>; 2],
    ) -> Option<BTreeMap<&'a PodName, &'a ValidPod>> {
        let slots =
            |p: &'a ValidPod| [(&*p.subnet, Slot::Ip(p.ip)), (&*p.subnet, Slot::Mac(p.mac))];
        let mut todo: Vec<(&str, Slot)> = start.into_iter().flatten().flat_map(slots).collect();
        let mut seen = HashSet::new();
        let mut group = BTreeMap::new();
        while let Some(slot) = todo.pop() {
            if !seen.insert(slot) {
                continue;
            }
            for other in self.index.claimants.get(slot.0, slot.1) {
                if other == name || group.contains_key(other) {
                    continue;
                }
                if group.len() == MAX_CLAIM_GROUP {
                    return None;
                }
                // Every claimant is a candidate; a miss means the state was edited by hand.
                let p = self.candidate(other)?;
                group.insert(other, p);
                todo.extend(slots(p));
            }
        }
        Some(group)
    }

    /// Replaces the pod `key` (with its new verdict) and re-decides its claim groups.
    fn apply_pod(&mut self, key: &ObjectKey, verdict: PodVerdict) -> Option<PodDelta> {
        let name = PodName::from(key);
        let new = match &verdict {
            PodVerdict::Candidate(p) => Some(p),
            _ => None,
        };
        // Decide the group and the new pod in key order, as `validate` would.
        let decided: Vec<(PodName, Vec<ValidationError>)> = {
            let old = self.candidate(&name);
            let group = self.claim_group(&name, [old, new])?;
            let mut order: Vec<(&PodName, &ValidPod)> = group.into_iter().collect();
            if let Some(p) = new {
                let at = order.partition_point(|(n, _)| **n < name);
                order.insert(at, (&name, p));
            }
            let mut claims = Claims::default();
            order
                .into_iter()
                .map(|(n, p)| (n.clone(), claims.decide(n, &p.subnet, p.ip, p.mac)))
                .collect()
        };

        let mut delta = PodDelta::default();
        let (new, mut new_errors) = match verdict {
            PodVerdict::Unbound => (None, Vec::new()),
            PodVerdict::Invalid(errors, values) => {
                match values {
                    Some(v) => self.index.parked.insert(v.id.clone(), v),
                    None => self.index.parked.remove(&name),
                };
                (None, errors)
            }
            PodVerdict::Candidate(p) => (Some(p), Vec::new()),
        };
        if new.is_some() || new_errors.is_empty() {
            self.index.parked.remove(&name);
        }
        for (n, errors) in decided {
            if n == name {
                new_errors = errors;
                continue;
            }
            // The others' values are unchanged; only whether they hold their addresses is.
            match (self.pods.contains_key(&n), errors.is_empty()) {
                (true, false) => {
                    let p = self.pods.remove(&n).expect("present");
                    delta.removed.push(p.clone());
                    self.index.duplicates.insert(p.id.clone(), p);
                }
                (false, true) => {
                    let p = self.index.duplicates.remove(&n).expect("a candidate");
                    delta.added.push(p.clone());
                    self.pods.insert(p.id.clone(), p);
                }
                _ => {}
            }
            self.set_pod_errors(&n, errors);
        }

        let old_valid = self.pods.remove(&name);
        let old_duplicate = self.index.duplicates.remove(&name);
        if let Some(old) = old_valid.as_ref().or(old_duplicate.as_ref()) {
            self.index.claimants.remove(old);
        }
        let mut new_valid = None;
        if let Some(p) = new {
            self.index.claimants.add(&p);
            if new_errors.is_empty() {
                new_valid = Some(p);
            } else {
                self.index.duplicates.insert(p.id.clone(), p);
            }
        }
        if old_valid != new_valid {
            delta.removed.extend(old_valid);
            delta.added.extend(new_valid.clone());
        }
        if let Some(p) = new_valid {
            // Keyed by the pod's own name: one allocation for both.
            self.pods.insert(p.id.clone(), p);
        }
        self.set_pod_errors(&name, new_errors);

        let by_key =
            |a: &ValidPod, b: &ValidPod| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name()));
        delta.removed.sort_by(by_key);
        delta.added.sort_by(by_key);
        Some(delta)
    }

    /// Replaces the errors of one pod, keeping `errors` in validation order: pod errors come
    /// after every other kind's, by pod key.
    fn set_pod_errors(&mut self, name: &PodName, errors: Vec<ValidationError>) {
        let key = (name.namespace(), name.name());
        let start = self.errors.partition_point(|e| e.kind < ObjectKind::Pod);
        let pods = &self.errors[start..];
        let lo = pods.partition_point(|e| pod_error_key(e) < key);
        let hi = lo + pods[lo..].partition_point(|e| pod_error_key(e) == key);
        if pods[lo..hi] != errors[..] {
            self.errors.splice(start + lo..start + hi, errors);
        }
    }
}

#[cfg(test)]
impl ClusterState {
    /// Whether the private indexes are equal too (for tests against a fresh `validate`).
    pub(crate) fn index_eq(&self, other: &ClusterState) -> bool {
        self.index == other.index
    }
}

#[cfg(test)]
mod tests {
    use super::super::{validate, ObjectSet, Subnet, ANNOTATION_IP_ADDRESS};
    use super::super::{ANNOTATION_LOGICAL_SWITCH, ANNOTATION_MAC_ADDRESS};
    use super::*;
    use crate::model::{Node, NodeAddress};

    /// A random walk of pod changes over a small address pool: after each step the state,
    /// indexes included, is what `validate` builds from scratch (the integration proptest in
    /// `tests/model_incremental.rs` covers more shapes but can't see the indexes).
    #[test]
    fn indexes_match_a_fresh_validation() {
        let mut objects = ObjectSet::new();
        for (i, name) in ["n0", "n1"].into_iter().enumerate() {
            let mut n = Node::default();
            n.metadata.name = name.into();
            n.status.addresses.push(NodeAddress {
                type_: "InternalIP".into(),
                address: format!("172.18.0.{}", i + 1),
            });
            objects.insert(n);
        }
        let mut bad_node = Node::default();
        bad_node.metadata.name = "n2".into();
        objects.insert(bad_node);
        for (name, cidr) in [("s0", "10.0.0.0/28"), ("s1", "10.0.0.16/28"), ("s2", "x")] {
            let mut s = Subnet::default();
            s.metadata.name = name.into();
            s.spec.cidr_block = cidr.into();
            objects.insert(s);
        }
        let mut state = validate(&objects);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for step in 0..4000 {
            let name = ["a", "b", "c", "d", "e", "f"][next(6)];
            let ns = ["default", "x"][next(2)];
            let result = if next(4) == 0 {
                let key = ObjectKey::pod(ns, name);
                objects.remove(&key);
                state.delete_pod(&key)
            } else {
                let mut p = Pod::default();
                p.metadata.name = name.into();
                p.metadata.namespace = ns.into();
                p.spec.node_name = ["n0", "n1", "n2", "n3"][next(4)].into();
                let ann = &mut p.metadata.annotations;
                let subnet = ["s0", "s0", "s1", "s2", "s3"][next(5)];
                ann.insert(ANNOTATION_LOGICAL_SWITCH, subnet);
                let ip = ["10.0.0.2", "10.0.0.3", "10.0.0.18", "10.0.0.1"][next(4)];
                ann.insert(ANNOTATION_IP_ADDRESS, ip);
                let mac = format!("00:00:00:00:00:0{}", next(4));
                ann.insert(ANNOTATION_MAC_ADDRESS, mac);
                objects.insert(p.clone());
                state.upsert_pod(&p)
            };
            let expected = validate(&objects);
            assert!(result.is_some(), "step {step}");
            assert_eq!(state, expected, "step {step}");
            assert!(state.index_eq(&expected), "step {step}");
        }
    }
}
