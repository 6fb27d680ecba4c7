//! Property tests: encode -> decode is the identity for arbitrary typed flows, and decoding
//! arbitrary bytes never panics.

use proptest::prelude::*;

use flowlib::wire::action::{ct_flags, Ct, Learn, LearnDst, LearnSpec, LearnSrc, Nat};
use flowlib::wire::flow::FlowModCommand;
use flowlib::wire::message::{split_messages, Message};
use flowlib::wire::oxm::ALL_FIELDS;
use flowlib::wire::{
    Action, EncodedFlow, Field, Flow, FlowMod, Instructions, Match, MatchField, Subfield,
};

fn field() -> impl Strategy<Value = Field> {
    (0..ALL_FIELDS.len()).prop_map(|i| ALL_FIELDS[i])
}

fn match_field() -> impl Strategy<Value = Option<MatchField>> {
    (
        field(),
        1u8..=16,
        any::<u128>(),
        any::<u128>(),
        any::<bool>(),
    )
        .prop_map(|(f, tlen, v, m, masked)| {
            let len = match f {
                Field::TunMetadata(_) => tlen,
                // xreg is split into regs in OF1.3 matches.
                Field::Xreg(_) => return None,
                f => f.info().len,
            };
            let masked = masked && f.info().maskable;
            MatchField::new(f, len, v, if masked { Some(m) } else { None })
        })
}

fn a_match() -> impl Strategy<Value = Match> {
    prop::collection::vec(match_field(), 0..8).prop_map(|v| {
        let mut m = Match::new();
        for mf in v.into_iter().flatten() {
            m.insert(mf);
        }
        m
    })
}

/// Fields that fit the 64-bit value of NXAST_REG_LOAD.
fn narrow_field() -> impl Strategy<Value = Field> {
    field().prop_filter("<= 64 bits", |f| {
        f.info().n_bits <= 64 && !matches!(f, Field::TunMetadata(_))
    })
}

fn subfield() -> impl Strategy<Value = Subfield> {
    (narrow_field(), any::<u16>(), any::<u16>()).prop_map(|(f, a, b)| {
        let bits = f.info().n_bits;
        let n_bits = 1 + a % bits;
        let ofs = b % (bits - n_bits + 1);
        Subfield::new(f, ofs, n_bits)
    })
}

fn pair_subfields() -> impl Strategy<Value = (Subfield, Subfield)> {
    (
        narrow_field(),
        narrow_field(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(f1, f2, a, b, c)| {
            let max = f1.info().n_bits.min(f2.info().n_bits);
            let n = 1 + a % max;
            let o1 = b % (f1.info().n_bits - n + 1);
            let o2 = c % (f2.info().n_bits - n + 1);
            (Subfield::new(f1, o1, n), Subfield::new(f2, o2, n))
        })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        (subfield(), any::<u16>()).prop_map(|(src, max_len)| Action::OutputReg { src, max_len }),
        any::<u32>().prop_map(Action::Group),
        (field(), any::<u128>()).prop_filter_map("fixed", |(f, v)| match f {
            Field::TunMetadata(_) => None,
            f => Some(Action::set_field(f, v)),
        }),
        (subfield(), any::<u64>()).prop_map(|(dst, value)| Action::RegLoad { dst, value }),
        match_field().prop_filter_map("some", |m| m.map(Action::RegLoad2)),
        pair_subfields().prop_map(|(src, dst)| Action::RegMove { src, dst }),
        (0u32..0xff00, any::<u8>())
            .prop_map(|(in_port, table)| Action::Resubmit { in_port, table }),
        Just(Action::PopVlan),
        Just(Action::DecTtl),
        Just(Action::PushVlan(0x8100)),
        any::<u64>().prop_map(Action::SetTunnel64),
        (any::<u32>(), 2u8..64, any::<u8>()).prop_map(|(id, n, c)| Action::Conjunction {
            id,
            clause: 1 + c % n,
            n_clauses: n
        }),
        prop::collection::vec(any::<u8>(), 0..3).prop_map(|v| {
            // Notes run to the end of the action, so keep them a whole number of 8-byte units.
            let mut n = v;
            n.resize(6 + 8 * (n.len() % 3), 7);
            Action::Note(n.into_boxed_slice())
        }),
        (any::<u8>(), any::<u16>(), pair_subfields(), any::<u64>()).prop_map(
            |(table, idle, (s, d), imm)| {
                let n = s.n_bits;
                let imm = if n >= 64 {
                    imm as u128
                } else {
                    (imm & ((1u64 << n) - 1)) as u128
                };
                Action::Learn(Box::new(Learn {
                    table,
                    idle_timeout: idle,
                    specs: vec![
                        LearnSpec {
                            n_bits: n,
                            src: LearnSrc::Field(s),
                            dst: LearnDst::Match(d),
                        },
                        LearnSpec {
                            n_bits: n,
                            src: LearnSrc::Immediate(imm),
                            dst: LearnDst::Load(d),
                        },
                        LearnSpec {
                            n_bits: n,
                            src: LearnSrc::Field(s),
                            dst: LearnDst::Output,
                        },
                    ],
                    ..Learn::default()
                }))
            }
        ),
        (
            any::<bool>(),
            any::<u16>(),
            prop::option::of(any::<u8>()),
            any::<bool>(),
            any::<u32>()
        )
            .prop_map(|(commit, zone, table, nat, mark)| Action::Ct(Box::new(Ct {
                flags: if commit { ct_flags::COMMIT } else { 0 },
                zone_imm: zone,
                table: table.filter(|t| *t != 255),
                nat: if nat {
                    Some(Nat {
                        flags: 1,
                        ipv4_min: Some([10, 0, 0, 1].into()),
                        ..Nat::default()
                    })
                } else {
                    None
                },
                exec: if commit {
                    vec![Action::set_field(Field::CtMark, mark as u128)]
                } else {
                    vec![]
                },
                ..Ct::default()
            }))),
    ]
}

fn instructions() -> impl Strategy<Value = Instructions> {
    (
        prop::option::of(any::<u32>()),
        prop::collection::vec(action(), 0..6),
        any::<bool>(),
        prop::option::of(prop::collection::vec(action(), 0..3)),
        prop::option::of((any::<u64>(), any::<u64>())),
        prop::option::of(any::<u8>()),
    )
        .prop_map(
            |(meter, apply, clear_actions, write, write_metadata, goto_table)| Instructions {
                meter,
                apply: apply.into(),
                clear_actions,
                write,
                write_metadata,
                goto_table,
            },
        )
}

fn a_flow() -> impl Strategy<Value = Flow> {
    (
        any::<u8>(),
        any::<u16>(),
        any::<u64>(),
        a_match(),
        instructions(),
        any::<u16>(),
        any::<u16>(),
        0u16..32,
    )
        .prop_map(
            |(
                table,
                priority,
                cookie,
                matches,
                instructions,
                idle_timeout,
                hard_timeout,
                flags,
            )| Flow {
                table,
                priority,
                cookie,
                matches,
                instructions,
                idle_timeout,
                hard_timeout,
                flags,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flow_mod_round_trip(flow in a_flow(), cmd in 0u8..5, xid in any::<u32>()) {
        let command = [FlowModCommand::Add, FlowModCommand::Modify, FlowModCommand::ModifyStrict, FlowModCommand::Delete, FlowModCommand::DeleteStrict][cmd as usize];
        let fm = FlowMod { command, ..FlowMod::add(flow) };
        let mut buf = Vec::new();
        fm.encode(xid, &mut buf);
        prop_assume!(buf.len() <= 65535);
        let back = FlowMod::decode(&buf).unwrap();
        prop_assert_eq!(&back, &fm);
        // The generic decoder agrees.
        let (h, msg) = Message::decode(&buf).unwrap();
        prop_assert_eq!(h.xid, xid);
        match msg {
            Message::FlowMod(m) => prop_assert_eq!(*m, fm),
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn encoded_flow_mod_equals_typed(flow in a_flow(), cmd in 0u8..5, xid in any::<u32>()) {
        let command = [FlowModCommand::Add, FlowModCommand::Modify, FlowModCommand::ModifyStrict, FlowModCommand::Delete, FlowModCommand::DeleteStrict][cmd as usize];
        let mut oxms = Vec::new();
        for f in flow.matches.fields() {
            f.encode(&mut oxms);
        }
        let mut instructions = Vec::new();
        flow.instructions.encode(&mut instructions);
        let encoded = EncodedFlow {
            table: flow.table,
            priority: flow.priority,
            cookie: flow.cookie,
            oxms: &oxms,
            instructions: &instructions,
        };
        let mut from_bytes = Vec::new();
        encoded.encode_flow_mod(command, xid, &mut from_bytes);
        // The typed equivalent: no timeouts or flags; a delete without instructions.
        let deleting = matches!(command, FlowModCommand::Delete | FlowModCommand::DeleteStrict);
        let typed = Flow {
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            instructions: if deleting { Instructions::default() } else { flow.instructions.clone() },
            ..flow
        };
        let mut from_typed = Vec::new();
        FlowMod { command, ..FlowMod::add(typed) }.encode(xid, &mut from_typed);
        prop_assert_eq!(from_bytes, from_typed);
    }

    #[test]
    fn display_never_panics(flow in a_flow()) {
        let _ = flow.to_string();
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
        let _ = FlowMod::decode(&bytes);
        let _ = Action::decode_list(&bytes);
        let _ = Match::decode_oxms(&bytes);
        let _ = Instructions::decode(&bytes);
        for m in split_messages(&bytes) {
            let _ = m;
        }
    }

    #[test]
    fn decoding_mutated_flow_mods_never_panics(flow in a_flow(), pos in any::<usize>(), val in any::<u8>()) {
        let mut buf = Vec::new();
        FlowMod::add(flow).encode(1, &mut buf);
        let i = pos % buf.len();
        buf[i] = val;
        let _ = Message::decode(&buf);
        let _ = FlowMod::decode(&buf);
    }
}
