//! Flows: instructions, the typed `Flow`, FLOW_MOD and flow-stats entries.

use super::action::{Action, Actions};
use super::oxm::Match;
use super::{pad_to_8, DecodeError, Header, MsgType, PutBe, Reader, HEADER_LEN};

/// A flow's instructions, held in the canonical order OVS uses on the wire and in text:
/// meter, apply_actions, clear_actions, write_actions, write_metadata, goto_table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Instructions {
    pub meter: Option<u32>,
    pub apply: Actions,
    pub clear_actions: bool,
    pub write: Option<Vec<Action>>,
    /// (value, mask)
    pub write_metadata: Option<(u64, u64)>,
    pub goto_table: Option<u8>,
}

const OFPIT_GOTO_TABLE: u16 = 1;
const OFPIT_WRITE_METADATA: u16 = 2;
const OFPIT_WRITE_ACTIONS: u16 = 3;
const OFPIT_APPLY_ACTIONS: u16 = 4;
const OFPIT_CLEAR_ACTIONS: u16 = 5;
const OFPIT_METER: u16 = 6;

impl Instructions {
    /// Apply-actions only (the common case).
    pub fn apply(actions: impl IntoIterator<Item = Action>) -> Instructions {
        Instructions {
            apply: actions.into_iter().collect(),
            ..Instructions::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.meter.is_none()
            && self.apply.is_empty()
            && !self.clear_actions
            && self.write.is_none()
            && self.write_metadata.is_none()
            && self.goto_table.is_none()
    }

    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some(m) = self.meter {
            out.put_u16(OFPIT_METER);
            out.put_u16(8);
            out.put_u32(m);
        }
        if !self.apply.is_empty() {
            encode_action_instruction(out, OFPIT_APPLY_ACTIONS, &self.apply);
        }
        if self.clear_actions {
            out.put_u16(OFPIT_CLEAR_ACTIONS);
            out.put_u16(8);
            out.put_zeros(4);
        }
        if let Some(w) = &self.write {
            encode_action_instruction(out, OFPIT_WRITE_ACTIONS, w);
        }
        if let Some((value, mask)) = self.write_metadata {
            out.put_u16(OFPIT_WRITE_METADATA);
            out.put_u16(24);
            out.put_zeros(4);
            out.put_u64(value);
            out.put_u64(mask);
        }
        if let Some(t) = self.goto_table {
            out.put_u16(OFPIT_GOTO_TABLE);
            out.put_u16(8);
            out.put_u8(t);
            out.put_zeros(3);
        }
    }

    /// Decodes a sequence of instructions (the rest of a flow_mod or flow-stats entry).
    pub fn decode(bytes: &[u8]) -> Result<Instructions, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut ins = Instructions::default();
        let mut seen = 0u8;
        while !r.is_empty() {
            let itype = r.u16()?;
            let len = r.u16()? as usize;
            if len < 8 || !len.is_multiple_of(8) {
                return Err(DecodeError::BadLength {
                    what: "instruction",
                    len,
                });
            }
            let body = r.take_named(len - 4, "instruction")?;
            if (1..=6).contains(&itype) {
                if seen & (1 << itype) != 0 {
                    return Err(DecodeError::Invalid {
                        what: "instructions",
                        detail: "duplicate instruction",
                    });
                }
                seen |= 1 << itype;
            }
            let mut b = Reader::new(body);
            match itype {
                OFPIT_GOTO_TABLE => ins.goto_table = Some(b.u8()?),
                OFPIT_WRITE_METADATA => {
                    b.skip(4)?;
                    ins.write_metadata = Some((b.u64()?, b.u64()?));
                }
                OFPIT_WRITE_ACTIONS => {
                    b.skip(4)?;
                    ins.write = Some(Action::decode_list(b.rest())?.into_vec());
                }
                OFPIT_APPLY_ACTIONS => {
                    b.skip(4)?;
                    ins.apply = Action::decode_list(b.rest())?;
                }
                OFPIT_CLEAR_ACTIONS => ins.clear_actions = true,
                OFPIT_METER => ins.meter = Some(b.u32()?),
                other => {
                    return Err(DecodeError::Unknown {
                        what: "instruction type",
                        value: other as u64,
                    })
                }
            }
        }
        Ok(ins)
    }
}

fn encode_action_instruction(out: &mut Vec<u8>, itype: u16, actions: &[Action]) {
    let start = out.len();
    let [t0, t1] = itype.to_be_bytes();
    out.extend_from_slice(&[t0, t1, 0, 0, 0, 0, 0, 0]);
    for a in actions {
        a.encode(out);
    }
    let len = out.len() - start;
    out.patch_u16(start + 2, len as u16);
}

/// Flow flags (OFPFF_*).
pub mod flow_flags {
    pub const SEND_FLOW_REM: u16 = 1;
    pub const CHECK_OVERLAP: u16 = 2;
    pub const RESET_COUNTS: u16 = 4;
    pub const NO_PKT_COUNTS: u16 = 8;
    pub const NO_BYT_COUNTS: u16 = 16;
}

/// One flow: where it lives (table, priority, match), what it does, and its cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    pub matches: Match,
    pub instructions: Instructions,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            table: 0,
            priority: 0x8000,
            cookie: 0,
            matches: Match::new(),
            instructions: Instructions::default(),
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
        }
    }
}

impl Flow {
    pub fn new(table: u8, priority: u16, matches: Match, instructions: Instructions) -> Flow {
        Flow {
            table,
            priority,
            matches,
            instructions,
            ..Flow::default()
        }
    }
    pub fn with_cookie(mut self, cookie: u64) -> Flow {
        self.cookie = cookie;
        self
    }
}

/// FLOW_MOD commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowModCommand {
    Add = 0,
    Modify = 1,
    ModifyStrict = 2,
    Delete = 3,
    DeleteStrict = 4,
}

impl FlowModCommand {
    fn from_u8(v: u8) -> Result<FlowModCommand, DecodeError> {
        Ok(match v {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            other => {
                return Err(DecodeError::Unknown {
                    what: "flow_mod command",
                    value: other as u64,
                })
            }
        })
    }
}

/// No buffered packet.
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// Any group (out_group wildcard).
pub const GROUP_ANY: u32 = 0xffff_ffff;

/// An OFPT_FLOW_MOD.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMod {
    pub command: FlowModCommand,
    pub flow: Flow,
    pub cookie_mask: u64,
    pub out_port: u32,
    pub out_group: u32,
    pub buffer_id: u32,
}

impl FlowMod {
    pub fn add(flow: Flow) -> FlowMod {
        FlowMod {
            command: FlowModCommand::Add,
            flow,
            cookie_mask: 0,
            out_port: super::action::port::ANY,
            out_group: GROUP_ANY,
            buffer_id: NO_BUFFER,
        }
    }
    /// Strict modify: replaces the instructions of exactly this flow (cookie unchanged).
    pub fn modify_strict(flow: Flow) -> FlowMod {
        FlowMod {
            command: FlowModCommand::ModifyStrict,
            ..FlowMod::add(flow)
        }
    }
    /// Strict delete of exactly this (table, priority, match).
    pub fn delete_strict(flow: Flow) -> FlowMod {
        FlowMod {
            command: FlowModCommand::DeleteStrict,
            ..FlowMod::add(flow)
        }
    }
    /// Deletes every flow in every table whose cookie matches `cookie/mask`.
    pub fn delete_by_cookie(cookie: u64, mask: u64) -> FlowMod {
        FlowMod {
            command: FlowModCommand::Delete,
            flow: Flow {
                table: 0xff,
                cookie,
                ..Flow::default()
            },
            cookie_mask: mask,
            ..FlowMod::add(Flow::default())
        }
    }

    /// Appends the whole message. Allocation-free when `out` has capacity.
    #[inline]
    pub fn encode(&self, xid: u32, out: &mut Vec<u8>) {
        encode_flow_mod(
            self.command,
            &self.flow,
            self.cookie_mask,
            self.out_port,
            self.out_group,
            self.buffer_id,
            xid,
            out,
        );
    }

    /// Decodes a whole FLOW_MOD message (header included).
    pub fn decode(msg: &[u8]) -> Result<FlowMod, DecodeError> {
        let h = Header::parse(msg)?;
        if h.msg_type != MsgType::FlowMod as u8 {
            return Err(DecodeError::Invalid {
                what: "flow_mod",
                detail: "not a FLOW_MOD message",
            });
        }
        let mut r = Reader::new(msg.get(HEADER_LEN..h.length as usize).ok_or(
            DecodeError::Truncated {
                what: "flow_mod",
                need: h.length as usize,
                have: msg.len(),
            },
        )?);
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table = r.u8()?;
        let command = FlowModCommand::from_u8(r.u8()?)?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let matches = Match::decode(&mut r)?;
        let instructions = Instructions::decode(r.rest())?;
        Ok(FlowMod {
            command,
            flow: Flow {
                table,
                priority,
                cookie,
                matches,
                instructions,
                idle_timeout,
                hard_timeout,
                flags,
            },
            cookie_mask,
            out_port,
            out_group,
            buffer_id,
        })
    }
}

/// Encodes a FLOW_MOD straight from a borrowed flow (no FlowMod value needed).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn encode_flow_mod(
    command: FlowModCommand,
    flow: &Flow,
    cookie_mask: u64,
    out_port: u32,
    out_group: u32,
    buffer_id: u32,
    xid: u32,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.reserve(160);
    FlowModFixed {
        command,
        cookie: flow.cookie,
        cookie_mask,
        table: flow.table,
        idle_timeout: flow.idle_timeout,
        hard_timeout: flow.hard_timeout,
        priority: flow.priority,
        buffer_id,
        out_port,
        out_group,
        flags: flow.flags,
    }
    .append_to(xid, out);
    flow.matches.encode(out);
    flow.instructions.encode(out);
    let len = out.len() - start;
    out.patch_u16(start + 2, len as u16);
}

/// A flow whose match and instructions are already encoded: what a compiler that keeps its
/// flows as bytes holds, sent without a typed round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedFlow<'a> {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    /// The match's OXM entries back to back (no `ofp_match` header, no padding).
    pub oxms: &'a [u8],
    /// The encoded instruction list.
    pub instructions: &'a [u8],
}

impl EncodedFlow<'_> {
    /// Appends a FLOW_MOD for this flow: no timeouts or flags, cookie mask 0, no buffer, any
    /// out port and group; a delete carries no instructions. Allocation-free when `out` has
    /// capacity.
    #[inline]
    pub fn encode_flow_mod(&self, command: FlowModCommand, xid: u32, out: &mut Vec<u8>) {
        let start = out.len();
        FlowModFixed {
            command,
            cookie: self.cookie,
            cookie_mask: 0,
            table: self.table,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: self.priority,
            buffer_id: NO_BUFFER,
            out_port: super::port::ANY,
            out_group: GROUP_ANY,
            flags: 0,
        }
        .append_to(xid, out);
        super::oxm::encode_oxm_match(self.oxms, out);
        match command {
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {}
            _ => out.extend_from_slice(self.instructions),
        }
        let len = out.len() - start;
        out.patch_u16(start + 2, len as u16);
    }
}

/// The fixed part of a FLOW_MOD (header through padding, 48 bytes): everything before the match.
/// The message length is left 0 for the caller to patch.
struct FlowModFixed {
    command: FlowModCommand,
    cookie: u64,
    cookie_mask: u64,
    table: u8,
    idle_timeout: u16,
    hard_timeout: u16,
    priority: u16,
    buffer_id: u32,
    out_port: u32,
    out_group: u32,
    flags: u16,
}

impl FlowModFixed {
    #[inline(always)]
    fn append_to(&self, xid: u32, out: &mut Vec<u8>) {
        let mut f = super::Fixed::<48>::new();
        f.u8(super::OFP13_VERSION)
            .u8(MsgType::FlowMod as u8)
            .u16(0)
            .u32(xid);
        f.u64(self.cookie)
            .u64(self.cookie_mask)
            .u8(self.table)
            .u8(self.command as u8);
        f.u16(self.idle_timeout)
            .u16(self.hard_timeout)
            .u16(self.priority);
        f.u32(self.buffer_id)
            .u32(self.out_port)
            .u32(self.out_group)
            .u16(self.flags)
            .zeros(2);
        f.append_to(out);
    }
}

/// One entry of a flow-stats multipart reply: the flow plus its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStats {
    pub flow: Flow,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub packet_count: u64,
    pub byte_count: u64,
}

impl FlowStats {
    /// Decodes one `ofp_flow_stats` entry from `r`.
    pub fn decode(r: &mut Reader<'_>) -> Result<FlowStats, DecodeError> {
        let len = r.u16()? as usize;
        if len < 56 {
            return Err(DecodeError::BadLength {
                what: "ofp_flow_stats",
                len,
            });
        }
        let body = r.take_named(len - 2, "ofp_flow_stats")?;
        let mut b = Reader::new(body);
        let table = b.u8()?;
        b.skip(1)?;
        let duration_sec = b.u32()?;
        let duration_nsec = b.u32()?;
        let priority = b.u16()?;
        let idle_timeout = b.u16()?;
        let hard_timeout = b.u16()?;
        let flags = b.u16()?;
        b.skip(4)?;
        let cookie = b.u64()?;
        let packet_count = b.u64()?;
        let byte_count = b.u64()?;
        let matches = Match::decode(&mut b)?;
        let instructions = Instructions::decode(b.rest())?;
        Ok(FlowStats {
            flow: Flow {
                table,
                priority,
                cookie,
                matches,
                instructions,
                idle_timeout,
                hard_timeout,
                flags,
            },
            duration_sec,
            duration_nsec,
            packet_count,
            byte_count,
        })
    }

    /// Appends one `ofp_flow_stats` entry (used by tests and fake peers).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let f = &self.flow;
        out.put_u16(0);
        out.put_u8(f.table);
        out.put_u8(0);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(f.priority);
        out.put_u16(f.idle_timeout);
        out.put_u16(f.hard_timeout);
        out.put_u16(f.flags);
        out.put_zeros(4);
        out.put_u64(f.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        f.matches.encode(out);
        f.instructions.encode(out);
        pad_to_8(out, start);
        let len = out.len() - start;
        out.patch_u16(start, len as u16);
    }
}
