//! Actions: OpenFlow 1.3 standard actions and the Nicira extensions an OVS agent needs.

use smallvec::SmallVec;

use super::oxm::{get_value, read_field_header, Field, MatchField};
use super::{pad_to_8, DecodeError, PutBe, Reader, NX_VENDOR_ID};

/// Reserved port numbers (OpenFlow 1.1+ 32-bit form).
pub mod port {
    pub const MAX: u32 = 0xffff_ff00;
    pub const IN_PORT: u32 = 0xffff_fff8;
    pub const TABLE: u32 = 0xffff_fff9;
    pub const NORMAL: u32 = 0xffff_fffa;
    pub const FLOOD: u32 = 0xffff_fffb;
    pub const ALL: u32 = 0xffff_fffc;
    pub const CONTROLLER: u32 = 0xffff_fffd;
    pub const LOCAL: u32 = 0xffff_fffe;
    pub const ANY: u32 = 0xffff_ffff;

    /// OVS's name for a reserved port, if it is one.
    pub fn name(p: u32) -> Option<&'static str> {
        Some(match p {
            IN_PORT => "IN_PORT",
            TABLE => "TABLE",
            NORMAL => "NORMAL",
            FLOOD => "FLOOD",
            ALL => "ALL",
            CONTROLLER => "CONTROLLER",
            LOCAL => "LOCAL",
            ANY => "ANY",
            _ => return None,
        })
    }

    /// 16-bit OpenFlow 1.0 port (used inside NX actions) to the 32-bit form.
    pub fn from_ofp10(p: u16) -> u32 {
        if p >= 0xff00 {
            p as u32 + 0xffff_0000
        } else {
            p as u32
        }
    }

    /// 32-bit port to the 16-bit OpenFlow 1.0 form.
    pub fn to_ofp10(p: u32) -> u16 {
        if p >= MAX {
            (p - 0xffff_0000) as u16
        } else {
            p as u16
        }
    }
}

/// A bit range of a field: `NXM_NX_REG0[0..15]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subfield {
    pub field: Field,
    pub ofs: u16,
    pub n_bits: u16,
}

impl Subfield {
    /// The whole field.
    pub fn whole(field: Field) -> Subfield {
        Subfield {
            field,
            ofs: 0,
            n_bits: field.info().n_bits,
        }
    }
    pub fn new(field: Field, ofs: u16, n_bits: u16) -> Subfield {
        Subfield { field, ofs, n_bits }
    }
    /// `ofs_nbits` encoding: ofs << 6 | (n_bits - 1).
    fn ofs_nbits(&self) -> u16 {
        (self.ofs << 6) | (self.n_bits.saturating_sub(1) & 0x3f)
    }
    fn from_ofs_nbits(field: Field, v: u16) -> Subfield {
        Subfield {
            field,
            ofs: v >> 6,
            n_bits: (v & 0x3f) + 1,
        }
    }
    #[inline]
    fn header(&self) -> u32 {
        self.field.action_header(self.field.wire().2)
    }
    fn check(&self) -> Result<(), DecodeError> {
        if self.n_bits == 0
            || self.ofs as u32 + self.n_bits as u32 > self.field.info().n_bits as u32
        {
            return Err(DecodeError::Invalid {
                what: "subfield",
                detail: "bit range outside the field",
            });
        }
        Ok(())
    }
}

/// ct() flags.
pub mod ct_flags {
    pub const COMMIT: u16 = 1;
    pub const FORCE: u16 = 2;
}

/// nat() flags.
pub mod nat_flags {
    pub const SRC: u16 = 1;
    pub const DST: u16 = 2;
    pub const PERSISTENT: u16 = 4;
    pub const PROTO_HASH: u16 = 8;
    pub const PROTO_RANDOM: u16 = 16;
}

/// Conntrack action (`ct(...)`), optionally with a nested `nat`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ct {
    pub flags: u16,
    /// Zone from a field (`zone=NXM_NX_REG13[0..15]`), else `zone_imm`.
    pub zone_src: Option<Subfield>,
    pub zone_imm: u16,
    /// Table to recirculate to; `None` = no recirculation.
    pub table: Option<u8>,
    pub alg: u16,
    pub nat: Option<Nat>,
    /// Actions inside `exec(...)`: only set_field/load on ct_mark or ct_label are legal.
    pub exec: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Nat {
    pub flags: u16,
    pub ipv4_min: Option<std::net::Ipv4Addr>,
    pub ipv4_max: Option<std::net::Ipv4Addr>,
    pub proto_min: Option<u16>,
    pub proto_max: Option<u16>,
}

/// Source of a learn spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnSrc {
    Field(Subfield),
    /// Immediate value, right-aligned; `n_bits` of the spec says how many bits count.
    Immediate(u128),
}

/// What a learn spec does in the learned flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnDst {
    Match(Subfield),
    Load(Subfield),
    Output,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnSpec {
    pub n_bits: u16,
    pub src: LearnSrc,
    pub dst: LearnDst,
}

/// `learn(...)`: adds a flow built from the packet at hand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Learn {
    pub table: u8,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    pub priority: u16,
    pub cookie: u64,
    pub flags: u16,
    pub specs: Vec<LearnSpec>,
}

impl Default for Learn {
    fn default() -> Self {
        Learn {
            table: 1,
            idle_timeout: 0,
            hard_timeout: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            priority: 0x8000,
            cookie: 0,
            flags: 0,
            specs: Vec::new(),
        }
    }
}

/// `controller(...)` with the NXAST_CONTROLLER2 properties.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Controller2 {
    pub max_len: u16,
    pub controller_id: u16,
    /// OFPR_* packet-in reason (1 = action).
    pub reason: u8,
    pub userdata: Vec<u8>,
    pub pause: bool,
    pub meter_id: Option<u32>,
}

impl Default for Controller2 {
    fn default() -> Self {
        Controller2 {
            max_len: u16::MAX,
            controller_id: 0,
            reason: 1,
            userdata: Vec::new(),
            pause: false,
            meter_id: None,
        }
    }
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:PORT` (also IN_PORT, LOCAL, CONTROLLER with max_len).
    Output {
        port: u32,
        max_len: u16,
    },
    /// `output:NXM_NX_REG0[0..15]`.
    OutputReg {
        src: Subfield,
        max_len: u16,
    },
    Group(u32),
    /// OFPAT_SET_FIELD: a whole field (`set_field:VALUE->FIELD`).
    SetField(MatchField),
    /// NXAST_REG_LOAD: an immediate into a bit range (`load:0x2->NXM_OF_ARP_OP[]`).
    RegLoad {
        dst: Subfield,
        value: u64,
    },
    /// NXAST_REG_LOAD2: a masked or variable-length set_field (tun_metadata).
    RegLoad2(MatchField),
    /// `move:SRC->DST`.
    RegMove {
        src: Subfield,
        dst: Subfield,
    },
    /// `resubmit(port,table)`; `port::IN_PORT` / table 255 mean "unchanged".
    Resubmit {
        in_port: u32,
        table: u8,
    },
    PushVlan(u16),
    PopVlan,
    DecTtl,
    SetTunnel64(u64),
    Learn(Box<Learn>),
    Ct(Box<Ct>),
    /// `conjunction(id,clause/n_clauses)`; `clause` is 1-based as written.
    Conjunction {
        id: u32,
        clause: u8,
        n_clauses: u8,
    },
    Controller2(Box<Controller2>),
    Note(Box<[u8]>),
}

/// A list of actions; two fit inline (a route: set_field + output), more spill to the heap.
pub type Actions = SmallVec<[Action; 2]>;

// Standard action types.
const OFPAT_OUTPUT: u16 = 0;
const OFPAT_PUSH_VLAN: u16 = 17;
const OFPAT_POP_VLAN: u16 = 18;
const OFPAT_GROUP: u16 = 22;
const OFPAT_DEC_NW_TTL: u16 = 24;
const OFPAT_SET_FIELD: u16 = 25;
const OFPAT_EXPERIMENTER: u16 = 0xffff;

// Nicira action subtypes.
const NXAST_RESUBMIT: u16 = 1;
const NXAST_REG_MOVE: u16 = 6;
const NXAST_REG_LOAD: u16 = 7;
const NXAST_NOTE: u16 = 8;
const NXAST_SET_TUNNEL64: u16 = 9;
const NXAST_RESUBMIT_TABLE: u16 = 14;
const NXAST_OUTPUT_REG: u16 = 15;
const NXAST_LEARN: u16 = 16;
const NXAST_REG_LOAD2: u16 = 33;
const NXAST_CONJUNCTION: u16 = 34;
const NXAST_CT: u16 = 35;
const NXAST_NAT: u16 = 36;
const NXAST_CONTROLLER2: u16 = 37;

impl Action {
    pub fn output(port: u32) -> Action {
        Action::Output { port, max_len: 0 }
    }
    pub fn controller(max_len: u16) -> Action {
        Action::Output {
            port: port::CONTROLLER,
            max_len,
        }
    }
    pub fn set_field(field: Field, value: u128) -> Action {
        let len = field.wire().2;
        Action::SetField(MatchField {
            field,
            len,
            value: value & ones(len),
            mask: None,
        })
    }
    pub fn resubmit(table: u8) -> Action {
        Action::Resubmit {
            in_port: port::IN_PORT,
            table,
        }
    }
    pub fn load(dst: Subfield, value: u64) -> Action {
        Action::RegLoad { dst, value }
    }
    pub fn move_(src: Subfield, dst: Subfield) -> Action {
        Action::RegMove { src, dst }
    }

    /// Appends the wire form of this action.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        use super::Fixed;
        match self {
            Action::Output { port, max_len } => {
                let mut f = Fixed::<16>::new();
                f.u16(OFPAT_OUTPUT)
                    .u16(16)
                    .u32(*port)
                    .u16(*max_len)
                    .zeros(6);
                f.append_to(out);
            }
            Action::Group(g) => {
                let mut f = Fixed::<8>::new();
                f.u16(OFPAT_GROUP).u16(8).u32(*g);
                f.append_to(out);
            }
            Action::SetField(mf) => {
                let mut f = Fixed::<24>::new();
                f.u16(OFPAT_SET_FIELD).u16(0);
                let unmasked = MatchField { mask: None, ..*mf };
                unmasked.write(&mut f);
                f.pad8_len_at(2);
                f.append_to(out);
            }
            Action::PushVlan(ethertype) => {
                let mut f = Fixed::<8>::new();
                f.u16(OFPAT_PUSH_VLAN).u16(8).u16(*ethertype).zeros(2);
                f.append_to(out);
            }
            Action::PopVlan => {
                let mut f = Fixed::<8>::new();
                f.u16(OFPAT_POP_VLAN).u16(8).zeros(4);
                f.append_to(out);
            }
            Action::DecTtl => {
                let mut f = Fixed::<8>::new();
                f.u16(OFPAT_DEC_NW_TTL).u16(8).zeros(4);
                f.append_to(out);
            }
            Action::RegLoad { dst, value } => {
                let mut f = Fixed::<24>::new();
                f.u16(OFPAT_EXPERIMENTER)
                    .u16(24)
                    .u32(NX_VENDOR_ID)
                    .u16(NXAST_REG_LOAD);
                f.u16(dst.ofs_nbits()).u32(dst.header()).u64(*value);
                f.append_to(out);
            }
            Action::RegMove { src, dst } => {
                let mut f = Fixed::<24>::new();
                f.u16(OFPAT_EXPERIMENTER)
                    .u16(24)
                    .u32(NX_VENDOR_ID)
                    .u16(NXAST_REG_MOVE);
                f.u16(src.n_bits)
                    .u16(src.ofs)
                    .u16(dst.ofs)
                    .u32(src.header())
                    .u32(dst.header());
                f.append_to(out);
            }
            Action::Resubmit { in_port, table } => {
                // OVS's canonical form is always RESUBMIT_TABLE (255 = no table).
                let mut f = Fixed::<16>::new();
                f.u16(OFPAT_EXPERIMENTER)
                    .u16(16)
                    .u32(NX_VENDOR_ID)
                    .u16(NXAST_RESUBMIT_TABLE);
                f.u16(port::to_ofp10(*in_port)).u8(*table).zeros(3);
                f.append_to(out);
            }
            _ => {
                let start = out.len();
                self.encode_nx(out, start)
            }
        }
    }

    fn encode_nx(&self, out: &mut Vec<u8>, start: usize) {
        out.put_u16(OFPAT_EXPERIMENTER);
        out.put_u16(0); // length, patched below
        out.put_u32(NX_VENDOR_ID);
        match self {
            Action::RegLoad2(mf) => {
                out.put_u16(NXAST_REG_LOAD2);
                mf.encode(out);
            }
            Action::SetTunnel64(id) => {
                out.put_u16(NXAST_SET_TUNNEL64);
                out.put_zeros(6);
                out.put_u64(*id);
            }
            Action::OutputReg { src, max_len } => {
                out.put_u16(NXAST_OUTPUT_REG);
                out.put_u16(src.ofs_nbits());
                out.put_u32(src.header());
                out.put_u16(*max_len);
                out.put_zeros(6);
            }
            Action::Conjunction {
                id,
                clause,
                n_clauses,
            } => {
                out.put_u16(NXAST_CONJUNCTION);
                out.put_u8(clause.saturating_sub(1));
                out.put_u8(*n_clauses);
                out.put_u32(*id);
            }
            Action::Note(bytes) => {
                out.put_u16(NXAST_NOTE);
                out.extend_from_slice(bytes);
                // At least 6 bytes of note payload to reach the 16-byte minimum.
                if bytes.len() < 6 {
                    out.put_zeros(6 - bytes.len());
                }
            }
            Action::Learn(l) => encode_learn(l, out),
            Action::Ct(ct) => encode_ct(ct, out),
            Action::Controller2(c) => encode_controller2(c, out),
            Action::Output { .. }
            | Action::Group(_)
            | Action::SetField(_)
            | Action::PushVlan(_)
            | Action::PopVlan
            | Action::DecTtl
            | Action::RegLoad { .. }
            | Action::RegMove { .. }
            | Action::Resubmit { .. } => {
                unreachable!("fixed-size actions are encoded by Action::encode")
            }
        }
        pad_to_8(out, start);
        let len = out.len() - start;
        out.patch_u16(start + 2, len as u16);
    }

    /// Decodes one action from `r`.
    pub fn decode(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
        let atype = r.u16()?;
        let len = r.u16()? as usize;
        if len < 8 || !len.is_multiple_of(8) {
            return Err(DecodeError::BadLength {
                what: "action",
                len,
            });
        }
        let body = r.take_named(len - 4, "action")?;
        let mut b = Reader::new(body);
        let action = match atype {
            OFPAT_OUTPUT => {
                let port = b.u32()?;
                let max_len = b.u16()?;
                Action::Output { port, max_len }
            }
            OFPAT_GROUP => Action::Group(b.u32()?),
            OFPAT_SET_FIELD => {
                let (field, h) = read_field_header(&mut b)?;
                if h.masked {
                    return Err(DecodeError::Invalid {
                        what: "set_field",
                        detail: "masked set_field in an OpenFlow 1.3 action",
                    });
                }
                let v = b.take_named(h.value_len() as usize, "set_field value")?;
                check_value_len(field, h.value_len())?;
                Action::SetField(MatchField {
                    field,
                    len: h.value_len(),
                    value: get_value(v),
                    mask: None,
                })
            }
            OFPAT_PUSH_VLAN => Action::PushVlan(b.u16()?),
            OFPAT_POP_VLAN => Action::PopVlan,
            OFPAT_DEC_NW_TTL => Action::DecTtl,
            OFPAT_EXPERIMENTER => {
                let vendor = b.u32()?;
                if vendor != NX_VENDOR_ID {
                    return Err(DecodeError::Unknown {
                        what: "action experimenter",
                        value: vendor as u64,
                    });
                }
                decode_nx(&mut b)?
            }
            other => {
                return Err(DecodeError::Unknown {
                    what: "action type",
                    value: other as u64,
                })
            }
        };
        Ok(action)
    }

    /// Decodes a whole action list.
    pub fn decode_list(bytes: &[u8]) -> Result<Actions, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut v = Actions::new();
        while !r.is_empty() {
            v.push(Action::decode(&mut r)?);
        }
        Ok(v)
    }
}

fn ones(len: u8) -> u128 {
    if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (len as u32 * 8)) - 1
    }
}

fn check_value_len(field: Field, len: u8) -> Result<(), DecodeError> {
    let ok = match field {
        Field::TunMetadata(_) => (1..=super::oxm::MAX_TUN_METADATA_LEN).contains(&len),
        f => f.info().len == len,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::BadLength {
            what: "field value",
            len: len as usize,
        })
    }
}

fn read_subfield_header(b: &mut Reader<'_>) -> Result<Field, DecodeError> {
    let (field, h) = read_field_header(b)?;
    if h.masked {
        return Err(DecodeError::Invalid {
            what: "field reference",
            detail: "masked header",
        });
    }
    Ok(field)
}

fn decode_nx(b: &mut Reader<'_>) -> Result<Action, DecodeError> {
    let subtype = b.u16()?;
    Ok(match subtype {
        NXAST_REG_LOAD => {
            let ofs_nbits = b.u16()?;
            let field = read_subfield_header(b)?;
            let dst = Subfield::from_ofs_nbits(field, ofs_nbits);
            dst.check()?;
            Action::RegLoad {
                dst,
                value: b.u64()?,
            }
        }
        NXAST_REG_LOAD2 => {
            let (field, h) = read_field_header(b)?;
            let vlen = h.value_len();
            check_value_len(field, vlen)?;
            let value = get_value(b.take_named(vlen as usize, "reg_load2 value")?);
            let mask = if h.masked {
                Some(get_value(b.take_named(vlen as usize, "reg_load2 mask")?))
            } else {
                None
            };
            let mf = MatchField::new(field, vlen, value, mask).ok_or(DecodeError::Invalid {
                what: "reg_load2",
                detail: "zero mask",
            })?;
            Action::RegLoad2(mf)
        }
        NXAST_REG_MOVE => {
            let n_bits = b.u16()?;
            let src_ofs = b.u16()?;
            let dst_ofs = b.u16()?;
            let src = Subfield::new(read_subfield_header(b)?, src_ofs, n_bits);
            let dst = Subfield::new(read_subfield_header(b)?, dst_ofs, n_bits);
            src.check()?;
            dst.check()?;
            Action::RegMove { src, dst }
        }
        NXAST_RESUBMIT | NXAST_RESUBMIT_TABLE => {
            let in_port = port::from_ofp10(b.u16()?);
            let table = if subtype == NXAST_RESUBMIT {
                255
            } else {
                b.u8()?
            };
            Action::Resubmit { in_port, table }
        }
        NXAST_SET_TUNNEL64 => {
            b.skip(6)?;
            Action::SetTunnel64(b.u64()?)
        }
        NXAST_OUTPUT_REG => {
            let ofs_nbits = b.u16()?;
            let field = read_subfield_header(b)?;
            let src = Subfield::from_ofs_nbits(field, ofs_nbits);
            src.check()?;
            Action::OutputReg {
                src,
                max_len: b.u16()?,
            }
        }
        NXAST_CONJUNCTION => {
            let clause = b.u8()?;
            let n_clauses = b.u8()?;
            let id = b.u32()?;
            if n_clauses < 2 || clause >= n_clauses {
                return Err(DecodeError::Invalid {
                    what: "conjunction",
                    detail: "clause out of range",
                });
            }
            Action::Conjunction {
                id,
                clause: clause + 1,
                n_clauses,
            }
        }
        NXAST_NOTE => {
            // The note runs to the end of the action; trailing zero padding belongs to it too.
            Action::Note(b.rest().to_vec().into_boxed_slice())
        }
        NXAST_LEARN => Action::Learn(Box::new(decode_learn(b)?)),
        NXAST_CT => Action::Ct(Box::new(decode_ct(b)?)),
        NXAST_CONTROLLER2 => Action::Controller2(Box::new(decode_controller2(b)?)),
        other => {
            return Err(DecodeError::Unknown {
                what: "Nicira action subtype",
                value: other as u64,
            })
        }
    })
}

// --- learn ---

const LEARN_SRC_IMMEDIATE: u16 = 1 << 13;
const LEARN_DST_LOAD: u16 = 1 << 11;
const LEARN_DST_OUTPUT: u16 = 2 << 11;

fn encode_learn(l: &Learn, out: &mut Vec<u8>) {
    out.put_u16(NXAST_LEARN);
    out.put_u16(l.idle_timeout);
    out.put_u16(l.hard_timeout);
    out.put_u16(l.priority);
    out.put_u64(l.cookie);
    out.put_u16(l.flags);
    out.put_u8(l.table);
    out.put_u8(0);
    out.put_u16(l.fin_idle_timeout);
    out.put_u16(l.fin_hard_timeout);
    for s in &l.specs {
        let mut h = s.n_bits & 0x3ff;
        if matches!(s.src, LearnSrc::Immediate(_)) {
            h |= LEARN_SRC_IMMEDIATE;
        }
        match s.dst {
            LearnDst::Match(_) => {}
            LearnDst::Load(_) => h |= LEARN_DST_LOAD,
            LearnDst::Output => h |= LEARN_DST_OUTPUT,
        }
        out.put_u16(h);
        match &s.src {
            LearnSrc::Field(sf) => {
                out.put_u32(sf.header());
                out.put_u16(sf.ofs);
            }
            LearnSrc::Immediate(v) => {
                let n = s.n_bits.div_ceil(16) as usize * 2;
                let bytes = v.to_be_bytes();
                out.extend_from_slice(&bytes[16 - n.min(16)..]);
            }
        }
        match &s.dst {
            LearnDst::Match(sf) | LearnDst::Load(sf) => {
                out.put_u32(sf.header());
                out.put_u16(sf.ofs);
            }
            LearnDst::Output => {}
        }
    }
}

fn decode_learn(b: &mut Reader<'_>) -> Result<Learn, DecodeError> {
    let mut l = Learn {
        idle_timeout: b.u16()?,
        hard_timeout: b.u16()?,
        priority: b.u16()?,
        cookie: b.u64()?,
        flags: b.u16()?,
        table: b.u8()?,
        ..Learn::default()
    };
    b.skip(1)?;
    l.fin_idle_timeout = b.u16()?;
    l.fin_hard_timeout = b.u16()?;
    while b.remaining() >= 2 {
        let h = b.u16()?;
        if h == 0 {
            break; // padding
        }
        let n_bits = h & 0x3ff;
        if n_bits == 0 {
            return Err(DecodeError::Invalid {
                what: "learn spec",
                detail: "zero bits",
            });
        }
        let src = if h & LEARN_SRC_IMMEDIATE != 0 {
            let n = n_bits.div_ceil(16) as usize * 2;
            if n > 16 {
                return Err(DecodeError::Invalid {
                    what: "learn spec",
                    detail: "immediate wider than 128 bits",
                });
            }
            LearnSrc::Immediate(get_value(b.take_named(n, "learn immediate")?))
        } else {
            let f = read_subfield_header(b)?;
            let sf = Subfield::new(f, b.u16()?, n_bits);
            sf.check()?;
            LearnSrc::Field(sf)
        };
        let dst = match (h >> 11) & 3 {
            0 | 1 => {
                let f = read_subfield_header(b)?;
                let sf = Subfield::new(f, b.u16()?, n_bits);
                sf.check()?;
                if (h >> 11) & 3 == 0 {
                    LearnDst::Match(sf)
                } else {
                    LearnDst::Load(sf)
                }
            }
            2 => LearnDst::Output,
            _ => {
                return Err(DecodeError::Invalid {
                    what: "learn spec",
                    detail: "bad destination type",
                })
            }
        };
        l.specs.push(LearnSpec { n_bits, src, dst });
    }
    Ok(l)
}

// --- ct / nat ---

const NAT_RANGE_IPV4_MIN: u16 = 1;
const NAT_RANGE_IPV4_MAX: u16 = 2;
const NAT_RANGE_PROTO_MIN: u16 = 16;
const NAT_RANGE_PROTO_MAX: u16 = 32;

fn encode_ct(ct: &Ct, out: &mut Vec<u8>) {
    out.put_u16(NXAST_CT);
    out.put_u16(ct.flags);
    match ct.zone_src {
        Some(sf) => {
            out.put_u32(sf.header());
            out.put_u16(sf.ofs_nbits());
        }
        None => {
            out.put_u32(0);
            out.put_u16(ct.zone_imm);
        }
    }
    out.put_u8(ct.table.unwrap_or(255));
    out.put_zeros(3);
    out.put_u16(ct.alg);
    if let Some(nat) = &ct.nat {
        let start = out.len();
        out.put_u16(OFPAT_EXPERIMENTER);
        out.put_u16(0);
        out.put_u32(NX_VENDOR_ID);
        out.put_u16(NXAST_NAT);
        out.put_zeros(2);
        out.put_u16(nat.flags);
        let mut present = 0;
        if nat.ipv4_min.is_some() {
            present |= NAT_RANGE_IPV4_MIN;
        }
        if nat.ipv4_max.is_some() {
            present |= NAT_RANGE_IPV4_MAX;
        }
        if nat.proto_min.is_some() {
            present |= NAT_RANGE_PROTO_MIN;
        }
        if nat.proto_max.is_some() {
            present |= NAT_RANGE_PROTO_MAX;
        }
        out.put_u16(present);
        if let Some(ip) = nat.ipv4_min {
            out.put_u32(ip.into());
        }
        if let Some(ip) = nat.ipv4_max {
            out.put_u32(ip.into());
        }
        if let Some(p) = nat.proto_min {
            out.put_u16(p);
        }
        if let Some(p) = nat.proto_max {
            out.put_u16(p);
        }
        pad_to_8(out, start);
        let len = out.len() - start;
        out.patch_u16(start + 2, len as u16);
    }
    for a in &ct.exec {
        a.encode(out);
    }
}

fn decode_ct(b: &mut Reader<'_>) -> Result<Ct, DecodeError> {
    let flags = b.u16()?;
    let zone_hdr = b.u32()?;
    let zone_v = b.u16()?;
    let (zone_src, zone_imm) = if zone_hdr != 0 {
        let h = super::oxm::OxmHeader::parse(zone_hdr);
        let f = Field::from_header(h.class, h.code).ok_or(DecodeError::Unknown {
            what: "ct zone field",
            value: zone_hdr as u64,
        })?;
        let sf = Subfield::from_ofs_nbits(f, zone_v);
        sf.check()?;
        (Some(sf), 0)
    } else {
        (None, zone_v)
    };
    let table = b.u8()?;
    b.skip(3)?;
    let alg = b.u16()?;
    let mut ct = Ct {
        flags,
        zone_src,
        zone_imm,
        table: if table == 255 { None } else { Some(table) },
        alg,
        nat: None,
        exec: Vec::new(),
    };
    let mut first = true;
    while !b.is_empty() {
        // A NAT action is only meaningful first; everything else goes to exec.
        let save = b.clone();
        let atype = b.u16()?;
        let alen = b.u16()? as usize;
        if first && atype == OFPAT_EXPERIMENTER && alen >= 16 {
            let vendor = b.u32()?;
            let sub = b.u16()?;
            if vendor == NX_VENDOR_ID && sub == NXAST_NAT {
                let body = b.take_named(alen - 10, "nat")?;
                ct.nat = Some(decode_nat(body)?);
                first = false;
                continue;
            }
        }
        *b = save;
        first = false;
        ct.exec.push(Action::decode(b)?);
    }
    Ok(ct)
}

fn decode_nat(body: &[u8]) -> Result<Nat, DecodeError> {
    let mut r = Reader::new(body);
    r.skip(2)?;
    let flags = r.u16()?;
    let present = r.u16()?;
    let mut nat = Nat {
        flags,
        ..Nat::default()
    };
    if present & NAT_RANGE_IPV4_MIN != 0 {
        nat.ipv4_min = Some(r.u32()?.into());
    }
    if present & NAT_RANGE_IPV4_MAX != 0 {
        nat.ipv4_max = Some(r.u32()?.into());
    }
    if present
        & !(NAT_RANGE_IPV4_MIN | NAT_RANGE_IPV4_MAX | NAT_RANGE_PROTO_MIN | NAT_RANGE_PROTO_MAX)
        != 0
    {
        return Err(DecodeError::Invalid {
            what: "nat",
            detail: "IPv6 ranges are not supported",
        });
    }
    if present & NAT_RANGE_PROTO_MIN != 0 {
        nat.proto_min = Some(r.u16()?);
    }
    if present & NAT_RANGE_PROTO_MAX != 0 {
        nat.proto_max = Some(r.u16()?);
    }
    Ok(nat)
}

// --- controller2 ---

const NXAC2PT_MAX_LEN: u16 = 0;
const NXAC2PT_CONTROLLER_ID: u16 = 1;
const NXAC2PT_REASON: u16 = 2;
const NXAC2PT_USERDATA: u16 = 3;
const NXAC2PT_PAUSE: u16 = 4;
const NXAC2PT_METER_ID: u16 = 5;

fn put_prop(out: &mut Vec<u8>, ptype: u16, value: &[u8]) {
    let start = out.len();
    out.put_u16(ptype);
    out.put_u16((4 + value.len()) as u16);
    out.extend_from_slice(value);
    pad_to_8(out, start);
}

fn encode_controller2(c: &Controller2, out: &mut Vec<u8>) {
    out.put_u16(NXAST_CONTROLLER2);
    out.put_zeros(6);
    if c.max_len != u16::MAX {
        put_prop(out, NXAC2PT_MAX_LEN, &c.max_len.to_be_bytes());
    }
    if c.controller_id != 0 {
        put_prop(out, NXAC2PT_CONTROLLER_ID, &c.controller_id.to_be_bytes());
    }
    if c.reason != 1 {
        put_prop(out, NXAC2PT_REASON, &[c.reason]);
    }
    if !c.userdata.is_empty() {
        put_prop(out, NXAC2PT_USERDATA, &c.userdata);
    }
    if c.pause {
        put_prop(out, NXAC2PT_PAUSE, &[]);
    }
    if let Some(m) = c.meter_id {
        put_prop(out, NXAC2PT_METER_ID, &m.to_be_bytes());
    }
}

fn decode_controller2(b: &mut Reader<'_>) -> Result<Controller2, DecodeError> {
    b.skip(6)?;
    let mut c = Controller2::default();
    while b.remaining() >= 4 {
        let ptype = b.u16()?;
        let plen = b.u16()? as usize;
        if plen < 4 {
            return Err(DecodeError::BadLength {
                what: "controller2 property",
                len: plen,
            });
        }
        let v = b.take_named(plen - 4, "controller2 property")?;
        let padded = (plen + 7) & !7;
        b.take_named((padded - plen).min(b.remaining()), "controller2 padding")?;
        let mut vr = Reader::new(v);
        match ptype {
            NXAC2PT_MAX_LEN => c.max_len = vr.u16()?,
            NXAC2PT_CONTROLLER_ID => c.controller_id = vr.u16()?,
            NXAC2PT_REASON => c.reason = vr.u8()?,
            NXAC2PT_USERDATA => c.userdata = v.to_vec(),
            NXAC2PT_PAUSE => c.pause = true,
            NXAC2PT_METER_ID => c.meter_id = Some(vr.u32()?),
            other => {
                return Err(DecodeError::Unknown {
                    what: "controller2 property",
                    value: other as u64,
                })
            }
        }
    }
    Ok(c)
}
