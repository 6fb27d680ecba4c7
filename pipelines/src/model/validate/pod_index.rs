//! The indexes of a [`ClusterState`](super::ClusterState) behind incremental pod changes: who
//! claims each pod address, which referenced objects exist but were rejected. Validation builds
//! them ([`super::pod`]); `super::super::incremental` keeps them up to date.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

// Hashing 2×100k addresses while validating: a faster hasher than SipHash pays off, and
// nothing here is attacker-sized (the addresses come from the API server).
use hashbrown::HashMap;
use smallvec::SmallVec;

use super::super::addr::MacAddr;
use super::{Name, PodName, ValidPod};

/// The indexes of a [`ClusterState`] behind incremental pod changes. Built by `validate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::model) struct PodIndex {
    /// Names of Node objects that exist but were rejected ("Node "x" was rejected").
    pub rejected_nodes: HashSet<String>,
    /// Same for Subnets.
    pub rejected_subnets: HashSet<String>,
    /// Who asks for each address: every pod that passed its own rules, accepted or not.
    pub claimants: Claimants,
    /// The pods that passed their own rules but lost an address (the others are in `pods`).
    pub duplicates: BTreeMap<PodName, ValidPod>,
    /// The pods whose own fields parse but which the rest of the cluster rejects (an unknown
    /// subnet or node, an IP outside the CIDR...): kept as values, so that a consumer need not
    /// keep their raw objects to decide them again ([`super::validate_with`]).
    pub parked: BTreeMap<PodName, ValidPod>,
    /// Whether some pod's namespace contains '/': pod errors then can't be located by their
    /// `namespace/name`, so incremental changes are refused.
    pub odd_namespaces: bool,
}

/// Claimants of one address, in key order (usually one).
type Names = SmallVec<[PodName; 1]>;

/// An address within a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(in crate::model) enum Slot {
    Ip(Ipv4Addr),
    Mac(MacAddr),
}

/// Per subnet, the pods asking for each IP and MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::model) struct Claimants {
    by_subnet: HashMap<Name, SubnetClaims>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SubnetClaims {
    ips: HashMap<Ipv4Addr, Names>,
    macs: HashMap<MacAddr, Names>,
}

fn insert_sorted(names: &mut Names, name: PodName) {
    match names.last() {
        // `validate` adds in key order: usually at the end.
        Some(last) if *last >= name => {
            if let Err(at) = names.binary_search(&name) {
                names.insert(at, name);
            }
        }
        _ => names.push(name),
    }
}

fn remove_sorted<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Names>, key: K, name: &PodName) {
    if let Some(names) = map.get_mut(&key) {
        if let Ok(at) = names.binary_search(name) {
            names.remove(at);
        }
        if names.is_empty() {
            map.remove(&key);
        }
    }
}

impl Claimants {
    /// Records that `pod` (which passed its own rules) asks for its IP and MAC.
    pub fn add(&mut self, pod: &ValidPod) {
        let claims = match self.by_subnet.get_mut(&*pod.subnet) {
            Some(c) => c,
            None => self.by_subnet.entry(pod.subnet.clone()).or_default(),
        };
        insert_sorted(claims.ips.entry(pod.ip).or_default(), pod.id.clone());
        insert_sorted(claims.macs.entry(pod.mac).or_default(), pod.id.clone());
    }

    /// Undoes [`Claimants::add`].
    pub fn remove(&mut self, pod: &ValidPod) {
        let Some(claims) = self.by_subnet.get_mut(&*pod.subnet) else {
            return;
        };
        let name = pod.id.clone();
        remove_sorted(&mut claims.ips, pod.ip, &name);
        remove_sorted(&mut claims.macs, pod.mac, &name);
        if claims.ips.is_empty() && claims.macs.is_empty() {
            self.by_subnet.remove(&*pod.subnet);
        }
    }

    pub(in crate::model) fn get(&self, subnet: &str, slot: Slot) -> &[PodName] {
        let Some(claims) = self.by_subnet.get(subnet) else {
            return &[];
        };
        let names = match slot {
            Slot::Ip(ip) => claims.ips.get(&ip),
            Slot::Mac(mac) => claims.macs.get(&mac),
        };
        names.map_or(&[], |n| n.as_slice())
    }
}
