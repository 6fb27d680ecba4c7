//! The other OpenFlow 1.3 messages kovs sends or receives, and one `Message` enum to decode into.

use super::action::{Action, Actions};
use super::flow::{FlowMod, FlowStats, Instructions};
use super::oxm::Match;
use super::{
    DecodeError, Header, MsgType, PutBe, Reader, HEADER_LEN, NX_VENDOR_ID, OFP13_VERSION,
    ONF_VENDOR_ID,
};

/// Starts a message: writes a header with length 0 and returns its start offset.
#[inline]
pub fn begin(out: &mut Vec<u8>, t: MsgType, xid: u32) -> usize {
    let start = out.len();
    out.put_u8(OFP13_VERSION);
    out.put_u8(t as u8);
    out.put_u16(0);
    out.put_u32(xid);
    start
}

/// Finishes a message begun with `begin`: patches its length.
#[inline]
pub fn finish(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    out.patch_u16(start + 2, len as u16);
}

/// Starts an experimenter message (`OFPT_EXPERIMENTER` + vendor + subtype).
pub fn begin_experimenter(out: &mut Vec<u8>, vendor: u32, subtype: u32, xid: u32) -> usize {
    let start = begin(out, MsgType::Experimenter, xid);
    out.put_u32(vendor);
    out.put_u32(subtype);
    start
}

/// `OFPHET_VERSIONBITMAP`: the HELLO element listing the versions a peer speaks.
pub const OFPHET_VERSIONBITMAP: u16 = 1;

/// HELLO advertising only OpenFlow 1.3 in a version bitmap.
pub fn encode_hello(xid: u32, out: &mut Vec<u8>) {
    let start = begin(out, MsgType::Hello, xid);
    out.put_u16(OFPHET_VERSIONBITMAP);
    out.put_u16(8);
    out.put_u32(1 << OFP13_VERSION);
    finish(out, start);
}

/// The versions a HELLO offers: the bitmap if present, else just its header version.
pub fn hello_versions(msg: &[u8]) -> Result<u32, DecodeError> {
    let h = Header::parse(msg)?;
    let body = msg
        .get(HEADER_LEN..(h.length as usize).min(msg.len()))
        .unwrap_or(&[]);
    let mut r = Reader::new(body);
    while r.remaining() >= 4 {
        let etype = r.u16()?;
        let elen = r.u16()? as usize;
        if elen < 4 {
            break;
        }
        let data = r.take_named(elen - 4, "hello element")?;
        let padded = (elen + 7) & !7;
        let _ = r.take((padded - elen).min(r.remaining()));
        if etype == OFPHET_VERSIONBITMAP && data.len() >= 4 {
            return Ok(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
        }
    }
    Ok(if h.version < 32 { 1 << h.version } else { 0 })
}

/// Any message with no body (FEATURES_REQUEST, BARRIER_REQUEST, GET_CONFIG_REQUEST, ...).
pub fn encode_empty(t: MsgType, xid: u32, out: &mut Vec<u8>) {
    let start = begin(out, t, xid);
    finish(out, start);
}

pub fn encode_echo(t: MsgType, xid: u32, data: &[u8], out: &mut Vec<u8>) {
    let start = begin(out, t, xid);
    out.extend_from_slice(data);
    finish(out, start);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeaturesReply {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

pub fn encode_set_config(cfg: SwitchConfig, xid: u32, out: &mut Vec<u8>) {
    let start = begin(out, MsgType::SetConfig, xid);
    out.put_u16(cfg.flags);
    out.put_u16(cfg.miss_send_len);
    finish(out, start);
}

/// A port as PORT_STATUS and the port-description multipart describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortDesc {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
}

impl PortDesc {
    fn decode(r: &mut Reader<'_>) -> Result<PortDesc, DecodeError> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let mut hw_addr = [0u8; 6];
        hw_addr.copy_from_slice(r.take_named(6, "port hw_addr")?);
        r.skip(2)?;
        let raw = r.take_named(16, "port name")?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&raw[..end]).into_owned();
        Ok(PortDesc {
            port_no,
            hw_addr,
            name,
            config: r.u32()?,
            state: r.u32()?,
            curr: r.u32()?,
            advertised: r.u32()?,
            supported: r.u32()?,
            peer: r.u32()?,
            curr_speed: r.u32()?,
            max_speed: r.u32()?,
        })
    }
}

/// PORT_STATUS reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortReason {
    Add,
    Delete,
    Modify,
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    pub matches: Match,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub in_port: u32,
    pub actions: Actions,
    pub data: Vec<u8>,
}

impl PacketOut {
    pub fn encode(&self, xid: u32, out: &mut Vec<u8>) {
        let start = begin(out, MsgType::PacketOut, xid);
        out.put_u32(self.buffer_id);
        out.put_u32(self.in_port);
        let len_at = out.len();
        out.put_u16(0);
        out.put_zeros(6);
        let a0 = out.len();
        for a in &self.actions {
            a.encode(out);
        }
        let alen = out.len() - a0;
        out.patch_u16(len_at, alen as u16);
        out.extend_from_slice(&self.data);
        finish(out, start);
    }
}

/// A group bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub weight: u16,
    pub watch_port: u32,
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

/// GROUP_MOD commands and types.
pub mod group {
    pub const ADD: u16 = 0;
    pub const MODIFY: u16 = 1;
    pub const DELETE: u16 = 2;
    pub const TYPE_ALL: u8 = 0;
    pub const TYPE_SELECT: u8 = 1;
    pub const TYPE_INDIRECT: u8 = 2;
    pub const TYPE_FF: u8 = 3;
    pub const ALL: u32 = 0xffff_fffc;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMod {
    pub command: u16,
    pub group_type: u8,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub fn encode(&self, xid: u32, out: &mut Vec<u8>) {
        let start = begin(out, MsgType::GroupMod, xid);
        out.put_u16(self.command);
        out.put_u8(self.group_type);
        out.put_u8(0);
        out.put_u32(self.group_id);
        for b in &self.buckets {
            let bstart = out.len();
            out.put_u16(0);
            out.put_u16(b.weight);
            out.put_u32(b.watch_port);
            out.put_u32(b.watch_group);
            out.put_zeros(4);
            for a in &b.actions {
                a.encode(out);
            }
            let blen = out.len() - bstart;
            out.patch_u16(bstart, blen as u16);
        }
        finish(out, start);
    }

    pub fn decode(msg: &[u8]) -> Result<GroupMod, DecodeError> {
        let mut r = body_reader(msg)?;
        let command = r.u16()?;
        let group_type = r.u8()?;
        r.skip(1)?;
        let group_id = r.u32()?;
        let mut buckets = Vec::new();
        while !r.is_empty() {
            let blen = r.u16()? as usize;
            if blen < 16 {
                return Err(DecodeError::BadLength {
                    what: "bucket",
                    len: blen,
                });
            }
            let body = r.take_named(blen - 2, "bucket")?;
            let mut b = Reader::new(body);
            let weight = b.u16()?;
            let watch_port = b.u32()?;
            let watch_group = b.u32()?;
            b.skip(4)?;
            buckets.push(Bucket {
                weight,
                watch_port,
                watch_group,
                actions: Action::decode_list(b.rest())?.into_vec(),
            });
        }
        Ok(GroupMod {
            command,
            group_type,
            group_id,
            buckets,
        })
    }
}

/// A meter band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterBand {
    Drop {
        rate: u32,
        burst: u32,
    },
    DscpRemark {
        rate: u32,
        burst: u32,
        prec_level: u8,
    },
}

pub mod meter {
    pub const ADD: u16 = 0;
    pub const MODIFY: u16 = 1;
    pub const DELETE: u16 = 2;
    pub const FLAG_KBPS: u16 = 1;
    pub const FLAG_PKTPS: u16 = 2;
    pub const FLAG_BURST: u16 = 4;
    pub const FLAG_STATS: u16 = 8;
}

/// METER_MOD (cannot go in a bundle: send with a barrier).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterMod {
    pub command: u16,
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterMod {
    pub fn encode(&self, xid: u32, out: &mut Vec<u8>) {
        let start = begin(out, MsgType::MeterMod, xid);
        out.put_u16(self.command);
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        for b in &self.bands {
            match *b {
                MeterBand::Drop { rate, burst } => {
                    out.put_u16(1);
                    out.put_u16(16);
                    out.put_u32(rate);
                    out.put_u32(burst);
                    out.put_zeros(4);
                }
                MeterBand::DscpRemark {
                    rate,
                    burst,
                    prec_level,
                } => {
                    out.put_u16(2);
                    out.put_u16(16);
                    out.put_u32(rate);
                    out.put_u32(burst);
                    out.put_u8(prec_level);
                    out.put_zeros(3);
                }
            }
        }
        finish(out, start);
    }

    pub fn decode(msg: &[u8]) -> Result<MeterMod, DecodeError> {
        let mut r = body_reader(msg)?;
        let command = r.u16()?;
        let flags = r.u16()?;
        let meter_id = r.u32()?;
        let mut bands = Vec::new();
        while !r.is_empty() {
            let btype = r.u16()?;
            let blen = r.u16()? as usize;
            if blen != 16 {
                return Err(DecodeError::BadLength {
                    what: "meter band",
                    len: blen,
                });
            }
            let rate = r.u32()?;
            let burst = r.u32()?;
            let prec = r.u8()?;
            r.skip(3)?;
            bands.push(match btype {
                1 => MeterBand::Drop { rate, burst },
                2 => MeterBand::DscpRemark {
                    rate,
                    burst,
                    prec_level: prec,
                },
                other => {
                    return Err(DecodeError::Unknown {
                        what: "meter band type",
                        value: other as u64,
                    })
                }
            });
        }
        Ok(MeterMod {
            command,
            flags,
            meter_id,
            bands,
        })
    }
}

// --- Nicira TLV table (Geneve option -> tun_metadataN) ---

const NXT_TLV_TABLE_MOD: u32 = 24;
const NXT_TLV_TABLE_REQUEST: u32 = 25;
const NXT_TLV_TABLE_REPLY: u32 = 26;

/// One TLV mapping: Geneve option (class, type, len) carried in tun_metadata`index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlvMap {
    pub option_class: u16,
    pub option_type: u8,
    pub option_len: u8,
    pub index: u16,
}

pub mod tlv_command {
    pub const ADD: u16 = 0;
    pub const DELETE: u16 = 1;
    pub const CLEAR: u16 = 2;
}

fn put_tlv_maps(out: &mut Vec<u8>, maps: &[TlvMap]) {
    for m in maps {
        out.put_u16(m.option_class);
        out.put_u8(m.option_type);
        out.put_u8(m.option_len);
        out.put_u16(m.index);
        out.put_zeros(2);
    }
}

fn get_tlv_maps(r: &mut Reader<'_>) -> Result<Vec<TlvMap>, DecodeError> {
    let mut v = Vec::new();
    while !r.is_empty() {
        let m = TlvMap {
            option_class: r.u16()?,
            option_type: r.u8()?,
            option_len: r.u8()?,
            index: r.u16()?,
        };
        r.skip(2)?;
        v.push(m);
    }
    Ok(v)
}

pub fn encode_tlv_table_mod(command: u16, maps: &[TlvMap], xid: u32, out: &mut Vec<u8>) {
    let start = begin_experimenter(out, NX_VENDOR_ID, NXT_TLV_TABLE_MOD, xid);
    out.put_u16(command);
    out.put_zeros(6);
    put_tlv_maps(out, maps);
    finish(out, start);
}

pub fn encode_tlv_table_request(xid: u32, out: &mut Vec<u8>) {
    let start = begin_experimenter(out, NX_VENDOR_ID, NXT_TLV_TABLE_REQUEST, xid);
    finish(out, start);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlvTableReply {
    pub max_option_space: u32,
    pub max_fields: u16,
    pub maps: Vec<TlvMap>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlvTableMod {
    pub command: u16,
    pub maps: Vec<TlvMap>,
}

// --- multipart ---

pub const OFPMP_FLOW: u16 = 1;
pub const OFPMP_PORT_DESC: u16 = 13;
pub const OFPMP_EXPERIMENTER: u16 = 0xffff;
/// More parts follow.
pub const OFPMPF_MORE: u16 = 1;
const ONFST_FLOW_MONITOR: u32 = 1870;

fn begin_multipart(out: &mut Vec<u8>, t: MsgType, mp_type: u16, flags: u16, xid: u32) -> usize {
    let start = begin(out, t, xid);
    out.put_u16(mp_type);
    out.put_u16(flags);
    out.put_zeros(4);
    start
}

/// Flow-stats request: every flow in `table` (255 = all) whose cookie matches `cookie/mask`.
pub fn encode_flow_stats_request(
    table: u8,
    cookie: u64,
    cookie_mask: u64,
    xid: u32,
    out: &mut Vec<u8>,
) {
    let start = begin_multipart(out, MsgType::MultipartRequest, OFPMP_FLOW, 0, xid);
    out.put_u8(table);
    out.put_zeros(3);
    out.put_u32(super::action::port::ANY);
    out.put_u32(super::flow::GROUP_ANY);
    out.put_zeros(4);
    out.put_u64(cookie);
    out.put_u64(cookie_mask);
    Match::new().encode(out);
    finish(out, start);
}

pub fn encode_port_desc_request(xid: u32, out: &mut Vec<u8>) {
    let start = begin_multipart(out, MsgType::MultipartRequest, OFPMP_PORT_DESC, 0, xid);
    finish(out, start);
}

/// Flow-monitor flags (ONF 1870).
pub mod monitor_flags {
    pub const INITIAL: u16 = 1;
    pub const ADD: u16 = 2;
    pub const DELETE: u16 = 4;
    pub const MODIFY: u16 = 8;
    pub const ACTIONS: u16 = 16;
    pub const OWN: u16 = 32;
}

/// ONF flow monitor request (OF1.3, OVS >= 3.0): watch `table` (255 = all).
pub fn encode_flow_monitor_request(
    id: u32,
    flags: u16,
    table: u8,
    matches: &Match,
    xid: u32,
    out: &mut Vec<u8>,
) {
    let start = begin_multipart(out, MsgType::MultipartRequest, OFPMP_EXPERIMENTER, 0, xid);
    out.put_u32(ONF_VENDOR_ID);
    out.put_u32(ONFST_FLOW_MONITOR);
    out.put_u32(id);
    out.put_u16(flags);
    out.put_u16(matches.oxm_len() as u16 + 4);
    out.put_u32(super::action::port::ANY);
    out.put_u8(table);
    out.put_zeros(3);
    matches.encode(out);
    finish(out, start);
}

/// What happened to a monitored flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowUpdate {
    Added(FlowUpdateFull),
    Deleted(FlowUpdateFull),
    Modified(FlowUpdateFull),
    /// Our own change, abbreviated to the xid that made it.
    Abbrev {
        xid: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowUpdateFull {
    pub reason: u16,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub table: u8,
    pub cookie: u64,
    pub matches: Match,
    pub instructions: Instructions,
}

fn decode_flow_updates(body: &[u8]) -> Result<Vec<FlowUpdate>, DecodeError> {
    let mut r = Reader::new(body);
    let mut v = Vec::new();
    while !r.is_empty() {
        let len = r.u16()? as usize;
        if len < 8 || !len.is_multiple_of(8) {
            return Err(DecodeError::BadLength {
                what: "flow update",
                len,
            });
        }
        let entry = r.take_named(len - 2, "flow update")?;
        let mut e = Reader::new(entry);
        let event = e.u16()?;
        if event == 3 {
            v.push(FlowUpdate::Abbrev { xid: e.u32()? });
            continue;
        }
        let reason = e.u16()?;
        let priority = e.u16()?;
        let idle_timeout = e.u16()?;
        let hard_timeout = e.u16()?;
        let _match_len = e.u16()?;
        let table = e.u8()?;
        e.skip(1)?;
        let cookie = e.u64()?;
        let matches = Match::decode(&mut e)?;
        let instructions = Instructions::decode(e.rest())?;
        let full = FlowUpdateFull {
            reason,
            priority,
            idle_timeout,
            hard_timeout,
            table,
            cookie,
            matches,
            instructions,
        };
        v.push(match event {
            0 => FlowUpdate::Added(full),
            1 => FlowUpdate::Deleted(full),
            2 => FlowUpdate::Modified(full),
            other => {
                return Err(DecodeError::Unknown {
                    what: "flow update event",
                    value: other as u64,
                })
            }
        });
    }
    Ok(v)
}

/// A decoded multipart reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartReply {
    Flows(Vec<FlowStats>),
    PortDesc(Vec<PortDesc>),
    FlowMonitor(Vec<FlowUpdate>),
    Other { mp_type: u16, body: Vec<u8> },
}

/// A decoded ERROR message: type, code and the start of the offending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    pub err_type: u16,
    pub code: u16,
    /// For OFPET_EXPERIMENTER (0xffff): the experimenter id.
    pub experimenter: Option<u32>,
    pub data: Vec<u8>,
}

/// Any message kovs decodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello {
        versions: u32,
    },
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    FeaturesRequest,
    FeaturesReply(FeaturesReply),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    PortStatus {
        reason: PortReason,
        port: PortDesc,
    },
    PacketOut(PacketOut),
    FlowMod(Box<FlowMod>),
    GroupMod(GroupMod),
    MeterMod(MeterMod),
    BarrierRequest,
    BarrierReply,
    MultipartReply {
        flags: u16,
        body: MultipartReply,
    },
    MultipartRequest {
        mp_type: u16,
        flags: u16,
        body: Vec<u8>,
    },
    TlvTableMod(TlvTableMod),
    TlvTableRequest,
    TlvTableReply(TlvTableReply),
    /// Bundle control / add and other experimenter messages, undecoded here.
    Experimenter {
        vendor: u32,
        subtype: u32,
        body: Vec<u8>,
    },
    Other {
        msg_type: u8,
        body: Vec<u8>,
    },
}

fn body_reader(msg: &[u8]) -> Result<Reader<'_>, DecodeError> {
    let h = Header::parse(msg)?;
    let len = h.length as usize;
    let body = msg.get(HEADER_LEN..len).ok_or(DecodeError::Truncated {
        what: "message",
        need: len,
        have: msg.len(),
    })?;
    Ok(Reader::new(body))
}

impl Message {
    /// Decodes one complete message (exactly `header.length` bytes are used).
    pub fn decode(msg: &[u8]) -> Result<(Header, Message), DecodeError> {
        let h = Header::parse(msg)?;
        if h.version != OFP13_VERSION && h.msg_type != MsgType::Hello as u8 {
            return Err(DecodeError::BadVersion(h.version));
        }
        let mut r = body_reader(msg)?;
        let full = &msg[..h.length as usize];
        let t = MsgType::from_u8(h.msg_type);
        let m = match t {
            Some(MsgType::Hello) => Message::Hello {
                versions: hello_versions(full)?,
            },
            Some(MsgType::Error) => {
                let err_type = r.u16()?;
                let code = r.u16()?;
                let experimenter = if err_type == 0xffff {
                    Some(r.u32()?)
                } else {
                    None
                };
                Message::Error(ErrorMsg {
                    err_type,
                    code,
                    experimenter,
                    data: r.rest().to_vec(),
                })
            }
            Some(MsgType::EchoRequest) => Message::EchoRequest(r.rest().to_vec()),
            Some(MsgType::EchoReply) => Message::EchoReply(r.rest().to_vec()),
            Some(MsgType::FeaturesRequest) => Message::FeaturesRequest,
            Some(MsgType::FeaturesReply) => {
                let datapath_id = r.u64()?;
                let n_buffers = r.u32()?;
                let n_tables = r.u8()?;
                let auxiliary_id = r.u8()?;
                r.skip(2)?;
                let capabilities = r.u32()?;
                Message::FeaturesReply(FeaturesReply {
                    datapath_id,
                    n_buffers,
                    n_tables,
                    auxiliary_id,
                    capabilities,
                })
            }
            Some(MsgType::GetConfigRequest) => Message::GetConfigRequest,
            Some(MsgType::GetConfigReply) | Some(MsgType::SetConfig) => {
                let cfg = SwitchConfig {
                    flags: r.u16()?,
                    miss_send_len: r.u16()?,
                };
                if t == Some(MsgType::SetConfig) {
                    Message::SetConfig(cfg)
                } else {
                    Message::GetConfigReply(cfg)
                }
            }
            Some(MsgType::PacketIn) => {
                let buffer_id = r.u32()?;
                let total_len = r.u16()?;
                let reason = r.u8()?;
                let table_id = r.u8()?;
                let cookie = r.u64()?;
                let matches = Match::decode(&mut r)?;
                r.skip(2)?;
                Message::PacketIn(PacketIn {
                    buffer_id,
                    total_len,
                    reason,
                    table_id,
                    cookie,
                    matches,
                    data: r.rest().to_vec(),
                })
            }
            Some(MsgType::PortStatus) => {
                let reason = match r.u8()? {
                    0 => PortReason::Add,
                    1 => PortReason::Delete,
                    2 => PortReason::Modify,
                    o => PortReason::Other(o),
                };
                r.skip(7)?;
                Message::PortStatus {
                    reason,
                    port: PortDesc::decode(&mut r)?,
                }
            }
            Some(MsgType::PacketOut) => {
                let buffer_id = r.u32()?;
                let in_port = r.u32()?;
                let alen = r.u16()? as usize;
                r.skip(6)?;
                let actions = Action::decode_list(r.take_named(alen, "packet_out actions")?)?;
                Message::PacketOut(PacketOut {
                    buffer_id,
                    in_port,
                    actions,
                    data: r.rest().to_vec(),
                })
            }
            Some(MsgType::FlowMod) => Message::FlowMod(Box::new(FlowMod::decode(full)?)),
            Some(MsgType::GroupMod) => Message::GroupMod(GroupMod::decode(full)?),
            Some(MsgType::MeterMod) => Message::MeterMod(MeterMod::decode(full)?),
            Some(MsgType::BarrierRequest) => Message::BarrierRequest,
            Some(MsgType::BarrierReply) => Message::BarrierReply,
            Some(MsgType::MultipartRequest) => {
                let mp_type = r.u16()?;
                let flags = r.u16()?;
                r.skip(4)?;
                Message::MultipartRequest {
                    mp_type,
                    flags,
                    body: r.rest().to_vec(),
                }
            }
            Some(MsgType::MultipartReply) => {
                let mp_type = r.u16()?;
                let flags = r.u16()?;
                r.skip(4)?;
                Message::MultipartReply {
                    flags,
                    body: decode_multipart_reply(mp_type, &mut r)?,
                }
            }
            Some(MsgType::Experimenter) => {
                let vendor = r.u32()?;
                let subtype = r.u32()?;
                match (vendor, subtype) {
                    (NX_VENDOR_ID, NXT_TLV_TABLE_MOD) => {
                        let command = r.u16()?;
                        r.skip(6)?;
                        Message::TlvTableMod(TlvTableMod {
                            command,
                            maps: get_tlv_maps(&mut r)?,
                        })
                    }
                    (NX_VENDOR_ID, NXT_TLV_TABLE_REQUEST) => Message::TlvTableRequest,
                    (NX_VENDOR_ID, NXT_TLV_TABLE_REPLY) => {
                        let max_option_space = r.u32()?;
                        let max_fields = r.u16()?;
                        r.skip(10)?;
                        Message::TlvTableReply(TlvTableReply {
                            max_option_space,
                            max_fields,
                            maps: get_tlv_maps(&mut r)?,
                        })
                    }
                    _ => Message::Experimenter {
                        vendor,
                        subtype,
                        body: r.rest().to_vec(),
                    },
                }
            }
            _ => Message::Other {
                msg_type: h.msg_type,
                body: r.rest().to_vec(),
            },
        };
        Ok((h, m))
    }
}

fn decode_multipart_reply(mp_type: u16, r: &mut Reader<'_>) -> Result<MultipartReply, DecodeError> {
    Ok(match mp_type {
        OFPMP_FLOW => {
            let mut v = Vec::new();
            while !r.is_empty() {
                v.push(FlowStats::decode(r)?);
            }
            MultipartReply::Flows(v)
        }
        OFPMP_PORT_DESC => {
            let mut v = Vec::new();
            while !r.is_empty() {
                v.push(PortDesc::decode(r)?);
            }
            MultipartReply::PortDesc(v)
        }
        OFPMP_EXPERIMENTER => {
            let vendor = r.u32()?;
            let exp_type = r.u32()?;
            if vendor == ONF_VENDOR_ID && exp_type == ONFST_FLOW_MONITOR {
                MultipartReply::FlowMonitor(decode_flow_updates(r.rest())?)
            } else {
                MultipartReply::Other {
                    mp_type,
                    body: r.rest().to_vec(),
                }
            }
        }
        _ => MultipartReply::Other {
            mp_type,
            body: r.rest().to_vec(),
        },
    })
}

/// Splits a byte stream into whole messages; returns (messages, bytes consumed).
pub fn split_messages(buf: &[u8]) -> impl Iterator<Item = Result<&[u8], DecodeError>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        match Header::parse(&buf[pos..]) {
            Err(e) => {
                pos = buf.len();
                Some(Err(e))
            }
            Ok(h) => {
                let end = pos + h.length as usize;
                if end > buf.len() {
                    pos = buf.len();
                    return Some(Err(DecodeError::Truncated {
                        what: "message",
                        need: h.length as usize,
                        have: buf.len() - (end - h.length as usize),
                    }));
                }
                let m = &buf[pos..end];
                pos = end;
                Some(Ok(m))
            }
        }
    })
}
