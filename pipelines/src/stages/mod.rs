//! The stages: one module per table group, holding every flow shape of its tables and their
//! priorities by name, so a reader finds a table's flows in one file. `docs/pipeline.md` is the
//! map; a packet crosses the modules in this order:
//!
//! | module | tables | cookie stage |
//! |---|---|---|
//! | [`classifier`] | 0 (classifier, spoof guard) | classifier |
//! | [`arp`] | 10 (ARP), 11 (ARP reply) | ARP |
//! | [`l3`] | 20 (gateway), 21 (routing), 22 (route out), 23 (learned gateway MACs) | L3 |
//! | [`l2`] | 30 (L2 forwarding) | L2 |
//! | [`tunnel`] | 31 (tunnel encapsulation) | L2 |
//! | [`provider`] | br-`<pn>` table 0 | provider |
//!
//! Stage functions only build flows; which objects get which flows on this node is decided by
//! the owners in [`crate::compile`].

pub(crate) mod arp;
pub(crate) mod classifier;
pub(crate) mod l2;
pub(crate) mod l3;
pub(crate) mod provider;
pub(crate) mod tunnel;

use std::net::Ipv4Addr;

use flowlib::wire::oxm::{eth_type, mac_to_u128};
use flowlib::wire::{Action, Field, Flow, Instructions, Match, Subfield};

use crate::compile::Owner;
use crate::flowset::{BridgeId, CompactFlow, BR_INT};
use crate::model::MacAddr;
use crate::tables::{cookie, Stage, REG_FLAGS};

/// Collects an owner's flows as compact encodings.
pub(crate) struct Emitter<'a> {
    out: &'a mut Vec<CompactFlow>,
    scratch: Vec<u8>,
    object: u64,
    bridge: BridgeId,
}

impl<'a> Emitter<'a> {
    pub(crate) fn new(out: &'a mut Vec<CompactFlow>, owner: &Owner) -> Emitter<'a> {
        Emitter::with_object(out, owner.object(), Vec::with_capacity(256))
    }
    /// An emitter for a known cookie object, reusing a scratch buffer.
    pub(crate) fn with_object(
        out: &'a mut Vec<CompactFlow>,
        object: u64,
        scratch: Vec<u8>,
    ) -> Emitter<'a> {
        Emitter {
            out,
            scratch,
            object,
            bridge: BR_INT,
        }
    }
    pub(crate) fn into_scratch(self) -> Vec<u8> {
        self.scratch
    }
    /// The bridge the next flows go on (br-int until told otherwise).
    fn on(&mut self, bridge: BridgeId) -> &mut Self {
        self.bridge = bridge;
        self
    }
    fn flow(&mut self, stage: Stage, table: u8, priority: u16, m: Match, ins: Instructions) {
        let f = Flow {
            table,
            priority,
            cookie: cookie(stage, 0, self.object),
            matches: m,
            instructions: ins,
            ..Flow::default()
        };
        self.out
            .push(CompactFlow::new(self.bridge, &f, &mut self.scratch));
    }
}

// Builders every stage writes its flows with.

fn mac(m: MacAddr) -> u128 {
    mac_to_u128(m)
}
fn ip(a: Ipv4Addr) -> u128 {
    u32::from(a) as u128
}
fn reg(n: u8, v: u32) -> Action {
    Action::set_field(Field::Reg(n), v as u128)
}
fn goto(t: u8) -> Instructions {
    Instructions {
        goto_table: Some(t),
        ..Instructions::default()
    }
}
fn apply_goto(actions: Vec<Action>, t: u8) -> Instructions {
    Instructions {
        apply: actions.into(),
        goto_table: Some(t),
        ..Instructions::default()
    }
}
fn apply(actions: Vec<Action>) -> Instructions {
    Instructions::apply(actions)
}
/// No instructions: the packet is dropped.
fn drop_packet() -> Instructions {
    Instructions::default()
}
fn sf(f: Field) -> Subfield {
    Subfield::whole(f)
}
fn any() -> Match {
    Match::new()
}
fn arp_match() -> Match {
    let mut m = Match::new();
    m.eth_type(eth_type::ARP);
    m
}
fn ip_match() -> Match {
    let mut m = Match::new();
    m.eth_type(eth_type::IPV4);
    m
}
fn flag_clear(m: &mut Match, flag: u32) {
    m.set_masked(Field::Reg(REG_FLAGS), 0, flag as u128);
}
fn flag_set(m: &mut Match, flag: u32) {
    m.set_masked(Field::Reg(REG_FLAGS), flag as u128, flag as u128);
}
