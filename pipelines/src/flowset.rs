//! The compiled flow set: flows kept as compact encoded bytes, keyed by (bridge, table,
//! priority, match), and the delta between two sets.
//!
//! A typed `Flow` is ~400 bytes; its encoding is ~100. At 10^5–10^6 flows per node the set
//! must be the encoding, decoded back only for display.

use std::hash::BuildHasher;

use flowlib::wire::{DecodeError, EncodedFlow, Flow, FlowModCommand, Instructions, Match};
use hashbrown::HashTable;

/// Index of a bridge in the compiler's bridge table.
pub type BridgeId = u8;
/// br-int's id: the compiler's bridge table starts with it.
pub const BR_INT: BridgeId = 0;

/// One flow, encoded: `[bridge][table][priority:2][match_len:2][match OXMs][cookie:8][instructions]`.
/// The key is everything up to the end of the match.
#[derive(Clone, PartialEq, Eq)]
pub struct CompactFlow(Box<[u8]>);

const HDR: usize = 6;

impl CompactFlow {
    /// Encodes `flow` for `bridge`; `scratch` is reused between calls.
    pub fn new(bridge: BridgeId, flow: &Flow, scratch: &mut Vec<u8>) -> CompactFlow {
        scratch.clear();
        scratch.push(bridge);
        scratch.push(flow.table);
        scratch.extend_from_slice(&flow.priority.to_be_bytes());
        scratch.extend_from_slice(&[0, 0]);
        let m0 = scratch.len();
        for mf in flow.matches.fields() {
            mf.encode(scratch);
        }
        let mlen = (scratch.len() - m0) as u16;
        scratch[4..6].copy_from_slice(&mlen.to_be_bytes());
        scratch.extend_from_slice(&flow.cookie.to_be_bytes());
        flow.instructions.encode(scratch);
        CompactFlow(scratch.as_slice().into())
    }

    pub fn bridge(&self) -> BridgeId {
        self.0[0]
    }
    pub fn table(&self) -> u8 {
        self.0[1]
    }
    pub fn priority(&self) -> u16 {
        u16::from_be_bytes([self.0[2], self.0[3]])
    }
    fn match_len(&self) -> usize {
        u16::from_be_bytes([self.0[4], self.0[5]]) as usize
    }
    fn match_bytes(&self) -> &[u8] {
        &self.0[HDR..HDR + self.match_len()]
    }
    /// (bridge, table, priority, match): what identifies a flow in OVS.
    pub fn key(&self) -> &[u8] {
        &self.0[..HDR + self.match_len()]
    }
    pub fn cookie(&self) -> u64 {
        let at = HDR + self.match_len();
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_be_bytes(b)
    }
    fn instruction_bytes(&self) -> &[u8] {
        &self.0[HDR + self.match_len() + 8..]
    }
    /// Cookie + instructions: what a modify changes.
    pub fn value(&self) -> &[u8] {
        &self.0[HDR + self.match_len()..]
    }
    /// Bytes held (for memory accounting).
    pub fn heap_len(&self) -> usize {
        self.0.len()
    }

    /// Decodes back to a typed flow.
    pub fn to_flow(&self) -> Result<Flow, DecodeError> {
        Ok(Flow {
            table: self.table(),
            priority: self.priority(),
            cookie: self.cookie(),
            matches: Match::decode_oxms(self.match_bytes())?,
            instructions: Instructions::decode(self.instruction_bytes())?,
            ..Flow::default()
        })
    }

    /// The flow as `flowlib::wire` sends it from bytes.
    pub fn encoded(&self) -> EncodedFlow<'_> {
        EncodedFlow {
            table: self.table(),
            priority: self.priority(),
            cookie: self.cookie(),
            oxms: self.match_bytes(),
            instructions: self.instruction_bytes(),
        }
    }

    /// Appends a FLOW_MOD for this flow straight from its bytes (no typed round trip).
    #[inline]
    pub fn encode_flow_mod(&self, command: FlowModCommand, xid: u32, out: &mut Vec<u8>) {
        self.encoded().encode_flow_mod(command, xid, out);
    }
}

impl std::fmt::Debug for CompactFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_flow() {
            Ok(flow) => write!(f, "[br{}] {}", self.bridge(), flow),
            Err(e) => write!(f, "[br{}] <undecodable: {e}>", self.bridge()),
        }
    }
}

#[derive(Default, Clone)]
struct KeyHasher(hashbrown::DefaultHashBuilder);

impl KeyHasher {
    fn hash(&self, key: &[u8]) -> u64 {
        self.0.hash_one(key)
    }
}

/// A set of flows, unique by key.
#[derive(Default, Clone)]
pub struct FlowSet {
    table: HashTable<CompactFlow>,
    hasher: KeyHasher,
}

/// What to send to make the switch's set equal the desired one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    /// New flows, and flows whose cookie changed (an ADD replaces them).
    pub add: Vec<CompactFlow>,
    /// Same key and cookie, other instructions.
    pub modify: Vec<CompactFlow>,
    pub delete: Vec<CompactFlow>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.modify.is_empty() && self.delete.is_empty()
    }
    pub fn len(&self) -> usize {
        self.add.len() + self.modify.len() + self.delete.len()
    }
    /// Records what turns `installed` (the flow with `desired`'s key, if any) into `desired`:
    /// an add when it is missing or its cookie differs (an ADD replaces it), a modify when
    /// only the instructions differ, nothing when equal.
    pub fn replace(&mut self, installed: Option<&CompactFlow>, desired: &CompactFlow) {
        match installed {
            Some(i) if i.cookie() == desired.cookie() => {
                if i.value() != desired.value() {
                    self.modify.push(desired.clone());
                }
            }
            _ => self.add.push(desired.clone()),
        }
    }

    /// The deltas in order, folded into one. When no flow key is in two of them (pods changing
    /// independently: the usual batch) that is their concatenation, found in one pass;
    /// folding them one by one would cost each fold the size of everything before it.
    pub fn compose_all(parts: Vec<Delta>) -> Delta {
        // A key may be in two lists of one part (a delete and an add of one pod's flow).
        let mut seen = std::collections::HashMap::new();
        let disjoint = parts.iter().enumerate().all(|(i, d)| {
            d.add
                .iter()
                .chain(&d.modify)
                .chain(&d.delete)
                .all(|f| *seen.entry(f.key()).or_insert(i) == i)
        });
        let mut total = Delta::default();
        for d in parts {
            if disjoint {
                total.add.extend(d.add);
                total.modify.extend(d.modify);
                total.delete.extend(d.delete);
            } else {
                total.compose(d);
            }
        }
        total
    }

    /// Folds a later delta into this one, so that applying the result equals applying both in
    /// order. A key's last operation wins; a key added and later modified stays an add.
    pub fn compose(&mut self, later: Delta) {
        if self.is_empty() {
            *self = later;
            return;
        }
        let later_keys: std::collections::HashSet<Vec<u8>> = later
            .add
            .iter()
            .chain(&later.modify)
            .chain(&later.delete)
            .map(|f| f.key().to_vec())
            .collect();
        let mut was_added: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        self.add.retain(|f| {
            let k = later_keys.contains(f.key());
            if k {
                was_added.insert(f.key().to_vec());
            }
            !k
        });
        self.modify.retain(|f| !later_keys.contains(f.key()));
        self.delete.retain(|f| !later_keys.contains(f.key()));
        self.add.extend(later.add);
        for f in later.modify {
            if was_added.contains(f.key()) {
                self.add.push(f);
            } else {
                self.modify.push(f);
            }
        }
        self.delete.extend(later.delete);
    }
}

impl FlowSet {
    pub fn new() -> FlowSet {
        FlowSet::default()
    }
    pub fn with_capacity(n: usize) -> FlowSet {
        FlowSet {
            table: HashTable::with_capacity(n),
            hasher: KeyHasher::default(),
        }
    }
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
    pub fn get(&self, key: &[u8]) -> Option<&CompactFlow> {
        let h = self.hasher.hash(key);
        self.table.find(h, |f| f.key() == key)
    }
    /// Inserts or replaces; returns the replaced flow.
    pub fn insert(&mut self, flow: CompactFlow) -> Option<CompactFlow> {
        let h = self.hasher.hash(flow.key());
        let hasher = &self.hasher;
        match self
            .table
            .entry(h, |f| f.key() == flow.key(), |f| hasher.hash(f.key()))
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                Some(std::mem::replace(e.get_mut(), flow))
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(flow);
                None
            }
        }
    }
    pub fn remove(&mut self, key: &[u8]) -> Option<CompactFlow> {
        let h = self.hasher.hash(key);
        match self.table.find_entry(h, |f| f.key() == key) {
            Ok(e) => Some(e.remove().0),
            Err(_) => None,
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &CompactFlow> {
        self.table.iter()
    }
    /// Keeps only the flows `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&CompactFlow) -> bool) {
        self.table.retain(|f| keep(f));
    }
    /// The flows, by value.
    pub fn into_flows(self) -> impl Iterator<Item = CompactFlow> {
        self.table.into_iter()
    }

    /// The delta that turns `self` (installed) into `desired`.
    pub fn diff(&self, desired: &FlowSet) -> Delta {
        let mut d = Delta::default();
        for f in desired.iter() {
            d.replace(self.get(f.key()), f);
        }
        for f in self.iter() {
            if desired.get(f.key()).is_none() {
                d.delete.push(f.clone());
            }
        }
        d
    }

    /// Applies a delta to this set.
    pub fn apply(&mut self, delta: &Delta) {
        for f in &delta.delete {
            self.remove(f.key());
        }
        for f in delta.add.iter().chain(&delta.modify) {
            self.insert(f.clone());
        }
    }

    /// Approximate bytes held: the encodings, their allocation headers and the table slots.
    pub fn memory_bytes(&self) -> usize {
        let heap: usize = self.iter().map(|f| (f.heap_len() + 15) & !15).sum();
        heap + self.table.capacity() * (std::mem::size_of::<CompactFlow>() + 1)
    }
}

/// The delta between an owner's old and new flows (both lists unique by key).
pub fn diff_lists(old: &[CompactFlow], new: &[CompactFlow]) -> Delta {
    let mut d = Delta::default();
    for n in new {
        d.replace(old.iter().find(|o| o.key() == n.key()), n);
    }
    for o in old {
        if !new.iter().any(|n| n.key() == o.key()) {
            d.delete.push(o.clone());
        }
    }
    d
}

/// How many flows the desired set holds, per bridge and pipeline stage: what the agent reports,
/// kept without keeping the flows themselves.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowCounts(std::collections::BTreeMap<(BridgeId, Option<crate::tables::Stage>), usize>);

impl FlowCounts {
    /// The counts of a whole set.
    pub fn of(set: &FlowSet) -> FlowCounts {
        let mut c = FlowCounts::default();
        for f in set.iter() {
            c.add(f);
        }
        c
    }
    fn slot(f: &CompactFlow) -> (BridgeId, Option<crate::tables::Stage>) {
        (f.bridge(), crate::tables::Stage::from_cookie(f.cookie()))
    }
    pub fn add(&mut self, f: &CompactFlow) {
        *self.0.entry(Self::slot(f)).or_default() += 1;
    }
    pub fn remove(&mut self, f: &CompactFlow) {
        if let Some(n) = self.0.get_mut(&Self::slot(f)) {
            *n = n.saturating_sub(1);
        }
    }
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }
    pub fn bridge(&self, bridge: BridgeId) -> usize {
        self.0
            .iter()
            .filter(|((b, _), _)| *b == bridge)
            .map(|(_, n)| n)
            .sum()
    }
    pub fn stage(&self, stage: crate::tables::Stage) -> usize {
        self.0
            .iter()
            .filter(|((_, s), _)| *s == Some(stage))
            .map(|(_, n)| n)
            .sum()
    }
}
