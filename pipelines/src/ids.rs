//! Identifiers every node derives the same way from the same state: subnet keys (the tunnel
//! key), VPC ids, router and node MACs, object hashes for cookies.

use std::collections::{BTreeMap, HashMap};

use crate::model::MacAddr;

/// FNV-1a, 64 bits: stable across runs, platforms and releases (unlike std's hasher).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The 44-bit object part of a cookie.
pub fn object_id(kind: &str, namespace: &str, name: &str) -> u64 {
    fnv1a(&[kind.as_bytes(), namespace.as_bytes(), name.as_bytes()])
        & crate::tables::COOKIE_OBJECT_MASK
}

/// The cookie object part of a pod's flows.
pub fn pod_object_id(pod: &crate::model::PodName) -> u64 {
    object_id("Pod", pod.namespace(), pod.name())
}

/// A locally administered unicast MAC: `prefix` then 5 bytes of a hash.
fn hashed_mac(prefix: u8, parts: &[&[u8]]) -> MacAddr {
    let h = fnv1a(parts).to_be_bytes();
    [prefix, h[0], h[1], h[2], h[3], h[4]]
}

/// MAC of the router port of `subnet` in `vpc` (gateway answers, routed packets' source).
pub fn router_mac(vpc: &str, subnet: &str) -> MacAddr {
    hashed_mac(0x0a, &[vpc.as_bytes(), subnet.as_bytes()])
}

/// Per-node MAC used as the source of routed packets leaving on a provider network.
pub fn node_mac(node: &str) -> MacAddr {
    hashed_mac(0x0e, &[node.as_bytes()])
}

/// Allocates `bits`-wide non-zero ids from names by hash, resolving collisions in favour of
/// the older object: `order` ranks (age, name); the lowest rank keeps its hash slot.
pub fn allocate(names: &[(String, String)], bits: u32) -> HashMap<String, u32> {
    // names: (name, rank key) — rank key sorts oldest first.
    let mask = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let mut by_rank: Vec<&(String, String)> = names.iter().collect();
    by_rank.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut used: BTreeMap<u32, ()> = BTreeMap::new();
    let mut out = HashMap::with_capacity(names.len());
    for (name, _) in by_rank {
        let mut k = (fnv1a(&[name.as_bytes()]) as u32) & mask;
        loop {
            if k != 0 && !used.contains_key(&k) {
                break;
            }
            k = k.wrapping_add(1) & mask;
        }
        used.insert(k, ());
        out.insert(name.clone(), k);
    }
    out
}
