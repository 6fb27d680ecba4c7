//! ONF bundle control and bundle add messages (OpenFlow 1.3 experimenter 0x4f4e4600, 2300/2301),
//! raw `OFPT_ERROR` messages, and readable names for the error codes OVS sends in OpenFlow 1.3.
//!
//! Everything here works on raw message bytes (header + body), so it is independent of the typed
//! flow codec: a bundle can wrap any already encoded message.
//!
//! Wire layout (OpenFlow 1.3 + ONF extension 230):
//!
//! ```text
//! bundle control: ofp_header(type=4) be32 experimenter=0x4f4e4600 be32 exp_type=2300
//!                 be32 bundle_id be16 type be16 flags [properties]          = 24 bytes
//! bundle add:     ofp_header(type=4) be32 experimenter=0x4f4e4600 be32 exp_type=2301
//!                 be32 bundle_id u8 pad[2] be16 flags <inner message> [properties]
//! error:          ofp_header(type=1) be16 type be16 code <data: the offending request>
//!                 or, for type 0xffff: be16 type=0xffff be16 exp_code be32 experimenter <data>
//! ```

use std::fmt;

use super::{
    DecodeError, Header, MsgType, PutBe, Reader, HEADER_LEN, MAX_MESSAGE_LEN, NX_VENDOR_ID,
    OFP13_VERSION, ONF_VENDOR_ID,
};

/// `ONFT_BUNDLE_CONTROL` experimenter type.
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
/// `ONFT_BUNDLE_ADD_MESSAGE` experimenter type.
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;
/// Size of an encoded bundle control message (no properties).
pub const BUNDLE_CTRL_LEN: usize = 24;
/// Bytes a bundle add puts in front of the inner message.
pub const BUNDLE_ADD_OVERHEAD: usize = 24;
/// Largest message that fits inside one bundle add.
pub const MAX_BUNDLE_INNER_LEN: usize = MAX_MESSAGE_LEN - BUNDLE_ADD_OVERHEAD;
/// Size of an experimenter message header: ofp_header + experimenter + exp_type.
pub const EXPERIMENTER_HEADER_LEN: usize = 16;

/// `OFPET_EXPERIMENTER`: the error type of experimenter (NX/ONF) errors.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

/// Bundle control message types (`ofp14_bundle_ctrl_type`, same numbers in the ONF extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum BundleCtrlType {
    OpenRequest = 0,
    OpenReply = 1,
    CloseRequest = 2,
    CloseReply = 3,
    CommitRequest = 4,
    CommitReply = 5,
    DiscardRequest = 6,
    DiscardReply = 7,
}

impl BundleCtrlType {
    pub fn from_u16(v: u16) -> Option<BundleCtrlType> {
        use BundleCtrlType::*;
        Some(match v {
            0 => OpenRequest,
            1 => OpenReply,
            2 => CloseRequest,
            3 => CloseReply,
            4 => CommitRequest,
            5 => CommitReply,
            6 => DiscardRequest,
            7 => DiscardReply,
            _ => return None,
        })
    }

    /// True for the `*_REPLY` types.
    pub fn is_reply(self) -> bool {
        (self as u16) & 1 == 1
    }

    /// The reply type that answers this request type (itself for replies).
    pub fn reply(self) -> BundleCtrlType {
        BundleCtrlType::from_u16((self as u16) | 1).unwrap_or(self)
    }

    /// The name `ovs-ofctl ofp-print` uses.
    pub fn name(self) -> &'static str {
        use BundleCtrlType::*;
        match self {
            OpenRequest => "OPEN_REQUEST",
            OpenReply => "OPEN_REPLY",
            CloseRequest => "CLOSE_REQUEST",
            CloseReply => "CLOSE_REPLY",
            CommitRequest => "COMMIT_REQUEST",
            CommitReply => "COMMIT_REPLY",
            DiscardRequest => "DISCARD_REQUEST",
            DiscardReply => "DISCARD_REPLY",
        }
    }
}

/// Bundle flags (`OFPBF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BundleFlags(pub u16);

impl BundleFlags {
    pub const NONE: BundleFlags = BundleFlags(0);
    /// `OFPBF_ATOMIC`: all or nothing.
    pub const ATOMIC: BundleFlags = BundleFlags(1);
    /// `OFPBF_ORDERED`: apply in the order added.
    pub const ORDERED: BundleFlags = BundleFlags(2);

    pub const fn bits(self) -> u16 {
        self.0
    }
    pub const fn contains(self, other: BundleFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for BundleFlags {
    type Output = BundleFlags;
    fn bitor(self, rhs: BundleFlags) -> BundleFlags {
        BundleFlags(self.0 | rhs.0)
    }
}

/// A bundle control message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BundleCtrl {
    pub bundle_id: u32,
    pub ctrl_type: BundleCtrlType,
    pub flags: BundleFlags,
}

/// A decoded bundle add message, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleAdd<'a> {
    pub bundle_id: u32,
    pub flags: BundleFlags,
    /// The complete inner message (header included).
    pub inner: &'a [u8],
    /// Bytes after the inner message (OpenFlow 1.4 style properties; OVS sends none).
    pub properties: &'a [u8],
}

fn put_experimenter_header(out: &mut Vec<u8>, length: u16, xid: u32, exp_type: u32) {
    out.put_u8(OFP13_VERSION);
    out.put_u8(MsgType::Experimenter as u8);
    out.put_u16(length);
    out.put_u32(xid);
    out.put_u32(ONF_VENDOR_ID);
    out.put_u32(exp_type);
}

/// Appends a bundle control message (24 bytes).
pub fn encode_bundle_ctrl(out: &mut Vec<u8>, xid: u32, ctrl: &BundleCtrl) {
    out.reserve(BUNDLE_CTRL_LEN);
    put_experimenter_header(out, BUNDLE_CTRL_LEN as u16, xid, ONFT_BUNDLE_CONTROL);
    out.put_u32(ctrl.bundle_id);
    out.put_u16(ctrl.ctrl_type as u16);
    out.put_u16(ctrl.flags.bits());
}

/// Appends a bundle add message wrapping `inner`, an already encoded OpenFlow 1.3 message, with
/// the inner xid rewritten to `xid` (OVS requires them equal). No intermediate allocation: the
/// inner bytes are copied once, straight into `out`.
///
/// `inner` must be exactly one message (its header length equal to `inner.len()`), version 1.3,
/// and at most [`MAX_BUNDLE_INNER_LEN`] bytes. On error `out` is left unchanged.
pub fn append_bundle_add(
    out: &mut Vec<u8>,
    xid: u32,
    bundle_id: u32,
    flags: BundleFlags,
    inner: &[u8],
) -> Result<(), DecodeError> {
    check_single_message(inner)?;
    if inner.len() > MAX_BUNDLE_INNER_LEN {
        return Err(DecodeError::BadLength {
            what: "message inside bundle add (max 65511 bytes)",
            len: inner.len(),
        });
    }
    let total = BUNDLE_ADD_OVERHEAD + inner.len();
    out.reserve(total);
    put_experimenter_header(out, total as u16, xid, ONFT_BUNDLE_ADD_MESSAGE);
    out.put_u32(bundle_id);
    out.put_u16(0); // pad[2]
    out.put_u16(flags.bits());
    let at = out.len();
    out.extend_from_slice(inner);
    out[at + 4..at + 8].copy_from_slice(&xid.to_be_bytes());
    Ok(())
}

/// Checks that `msg` is exactly one OpenFlow 1.3 message; returns its header.
pub fn check_single_message(msg: &[u8]) -> Result<Header, DecodeError> {
    let h = Header::parse(msg)?;
    if h.version != OFP13_VERSION {
        return Err(DecodeError::BadVersion(h.version));
    }
    if h.length as usize != msg.len() {
        return Err(DecodeError::BadLength {
            what: "message (header length differs from the buffer length)",
            len: msg.len(),
        });
    }
    Ok(h)
}

/// Splits a buffer of concatenated messages into messages, checking each header length.
pub fn split_messages(buf: &[u8]) -> SplitMessages<'_> {
    SplitMessages { rest: buf }
}

/// Iterator returned by [`split_messages`]; yields one error and stops on a malformed header.
#[derive(Debug, Clone)]
pub struct SplitMessages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SplitMessages<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = Header::parse(self.rest).and_then(|h| {
            let len = h.length as usize;
            if len > self.rest.len() {
                Err(DecodeError::Truncated {
                    what: "message",
                    need: len,
                    have: self.rest.len(),
                })
            } else {
                Ok(len)
            }
        });
        match r {
            Ok(len) => {
                let (msg, rest) = self.rest.split_at(len);
                self.rest = rest;
                Some(Ok(msg))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Parses the header, checks the version and that `msg` holds the whole message, and returns a
/// reader over the body (bytes after the header, up to the header length).
fn open_message(msg: &[u8]) -> Result<(Header, Reader<'_>), DecodeError> {
    let h = Header::parse(msg)?;
    if h.version != OFP13_VERSION {
        return Err(DecodeError::BadVersion(h.version));
    }
    let len = h.length as usize;
    if msg.len() < len {
        return Err(DecodeError::Truncated {
            what: "message",
            need: len,
            have: msg.len(),
        });
    }
    Ok((h, Reader::new(&msg[HEADER_LEN..len])))
}

/// For an `OFPT_EXPERIMENTER` message, its `(experimenter, exp_type)`; `None` for anything else
/// or if too short.
pub fn experimenter_of(msg: &[u8]) -> Option<(u32, u32)> {
    if msg.len() < EXPERIMENTER_HEADER_LEN || msg[1] != MsgType::Experimenter as u8 {
        return None;
    }
    let mut r = Reader::new(&msg[HEADER_LEN..EXPERIMENTER_HEADER_LEN]);
    Some((r.u32().ok()?, r.u32().ok()?))
}

fn open_onf(msg: &[u8], exp_type: u32) -> Result<(Header, Reader<'_>), DecodeError> {
    let (h, mut r) = open_message(msg)?;
    if h.msg_type != MsgType::Experimenter as u8 {
        return Err(DecodeError::Unknown {
            what: "message type (expected OFPT_EXPERIMENTER)",
            value: h.msg_type as u64,
        });
    }
    let experimenter = r.u32()?;
    if experimenter != ONF_VENDOR_ID {
        return Err(DecodeError::Unknown {
            what: "experimenter (expected ONF)",
            value: experimenter as u64,
        });
    }
    let t = r.u32()?;
    if t != exp_type {
        return Err(DecodeError::Unknown {
            what: "ONF experimenter type",
            value: t as u64,
        });
    }
    Ok((h, r))
}

/// Decodes a bundle control message (request or reply). Properties, if any, are ignored.
pub fn decode_bundle_ctrl(msg: &[u8]) -> Result<(Header, BundleCtrl), DecodeError> {
    let (h, mut r) = open_onf(msg, ONFT_BUNDLE_CONTROL)?;
    let bundle_id = r.u32()?;
    let t = r.u16()?;
    let ctrl_type = BundleCtrlType::from_u16(t).ok_or(DecodeError::Unknown {
        what: "bundle control type",
        value: t as u64,
    })?;
    let flags = BundleFlags(r.u16()?);
    Ok((
        h,
        BundleCtrl {
            bundle_id,
            ctrl_type,
            flags,
        },
    ))
}

/// Decodes a bundle add message. The inner message must be complete, OpenFlow 1.3, and carry
/// the outer xid.
pub fn decode_bundle_add(msg: &[u8]) -> Result<(Header, BundleAdd<'_>), DecodeError> {
    let (h, mut r) = open_onf(msg, ONFT_BUNDLE_ADD_MESSAGE)?;
    let bundle_id = r.u32()?;
    r.skip(2)?;
    let flags = BundleFlags(r.u16()?);
    let rest = r.rest();
    let ih = Header::parse(rest)?;
    if ih.version != OFP13_VERSION {
        return Err(DecodeError::BadVersion(ih.version));
    }
    let ilen = ih.length as usize;
    if ilen > rest.len() {
        return Err(DecodeError::Truncated {
            what: "message inside bundle add",
            need: ilen,
            have: rest.len(),
        });
    }
    if ih.xid != h.xid {
        return Err(DecodeError::Invalid {
            what: "bundle add",
            detail: "inner xid differs from the outer xid",
        });
    }
    let (inner, properties) = rest.split_at(ilen);
    Ok((
        h,
        BundleAdd {
            bundle_id,
            flags,
            inner,
            properties,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The type/code pair of an `OFPT_ERROR`, standard or experimenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `ofp_error_msg`: `type` (`OFPET_*`, never 0xffff) and `code`.
    Standard { err_type: u16, code: u16 },
    /// `ofp_error_experimenter_msg`: type 0xffff, `exp_code`, `experimenter` (NX, ONF, ...).
    Experimenter { experimenter: u32, exp_code: u16 },
}

impl ErrorCode {
    /// OVS's name for this error (e.g. `OFPBIC_BAD_TABLE_ID`, `OFPBFC_MSG_FAILED`), if known.
    pub fn name(&self) -> Option<&'static str> {
        match *self {
            ErrorCode::Standard { err_type, code } => error_name(err_type, code),
            ErrorCode::Experimenter {
                experimenter,
                exp_code,
            } => experimenter_error_name(experimenter, exp_code),
        }
    }

    /// The error type's name (`OFPET_BAD_INSTRUCTION`, ...), if known.
    pub fn type_name(&self) -> Option<&'static str> {
        match *self {
            ErrorCode::Standard { err_type, .. } => error_type_name(err_type),
            ErrorCode::Experimenter { .. } => Some("OFPET_EXPERIMENTER"),
        }
    }

    /// True for the ONF bundle errors (`OFPBFC_*`).
    pub fn is_bundle_error(&self) -> bool {
        matches!(*self, ErrorCode::Experimenter { experimenter: ONF_VENDOR_ID, exp_code }
            if (2300..=2315).contains(&exp_code))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), *self) {
            (Some(n), _) => f.write_str(n),
            (None, ErrorCode::Standard { err_type, code }) => match error_type_name(err_type) {
                Some(t) => write!(f, "{t}(code={code})"),
                None => write!(f, "OFPET(type={err_type},code={code})"),
            },
            (
                None,
                ErrorCode::Experimenter {
                    experimenter,
                    exp_code,
                },
            ) => write!(
                f,
                "OFPET_EXPERIMENTER(experimenter={experimenter:#010x},exp_code={exp_code})"
            ),
        }
    }
}

/// A decoded `OFPT_ERROR`, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMsg<'a> {
    pub header: Header,
    pub code: ErrorCode,
    /// The error's data: for request errors, (the start of) the offending request.
    pub data: &'a [u8],
}

impl ErrorMsg<'_> {
    /// The header of the offending request in `data`, when there is one.
    pub fn offending_header(&self) -> Option<Header> {
        if self.data.len() < HEADER_LEN {
            return None;
        }
        Header::parse(self.data).ok()
    }
}

/// Decodes an `OFPT_ERROR` message (standard or experimenter form).
pub fn decode_error(msg: &[u8]) -> Result<ErrorMsg<'_>, DecodeError> {
    let (header, mut r) = open_message(msg)?;
    if header.msg_type != MsgType::Error as u8 {
        return Err(DecodeError::Unknown {
            what: "message type (expected OFPT_ERROR)",
            value: header.msg_type as u64,
        });
    }
    let err_type = r.u16()?;
    let code = r.u16()?;
    let code = if err_type == OFPET_EXPERIMENTER {
        ErrorCode::Experimenter {
            experimenter: r.u32()?,
            exp_code: code,
        }
    } else {
        ErrorCode::Standard { err_type, code }
    };
    Ok(ErrorMsg {
        header,
        code,
        data: r.rest(),
    })
}

/// Appends an `OFPT_ERROR` (for tests, fake switches and `OFPET_HELLO_FAILED` courtesy replies).
/// `data` is truncated so the message fits in 65,535 bytes.
pub fn encode_error(out: &mut Vec<u8>, xid: u32, code: ErrorCode, data: &[u8]) {
    let fixed = match code {
        ErrorCode::Standard { .. } => 12,
        ErrorCode::Experimenter { .. } => 16,
    };
    let data = &data[..data.len().min(MAX_MESSAGE_LEN - fixed)];
    out.put_u8(OFP13_VERSION);
    out.put_u8(MsgType::Error as u8);
    out.put_u16((fixed + data.len()) as u16);
    out.put_u32(xid);
    match code {
        ErrorCode::Standard { err_type, code } => {
            out.put_u16(err_type);
            out.put_u16(code);
        }
        ErrorCode::Experimenter {
            experimenter,
            exp_code,
        } => {
            out.put_u16(OFPET_EXPERIMENTER);
            out.put_u16(exp_code);
            out.put_u32(experimenter);
        }
    }
    out.extend_from_slice(data);
}

/// `OFPET_*` error type names (OpenFlow 1.3).
pub fn error_type_name(err_type: u16) -> Option<&'static str> {
    Some(match err_type {
        0 => "OFPET_HELLO_FAILED",
        1 => "OFPET_BAD_REQUEST",
        2 => "OFPET_BAD_ACTION",
        3 => "OFPET_BAD_INSTRUCTION",
        4 => "OFPET_BAD_MATCH",
        5 => "OFPET_FLOW_MOD_FAILED",
        6 => "OFPET_GROUP_MOD_FAILED",
        7 => "OFPET_PORT_MOD_FAILED",
        8 => "OFPET_TABLE_MOD_FAILED",
        9 => "OFPET_QUEUE_OP_FAILED",
        10 => "OFPET_SWITCH_CONFIG_FAILED",
        11 => "OFPET_ROLE_REQUEST_FAILED",
        12 => "OFPET_METER_MOD_FAILED",
        13 => "OFPET_TABLE_FEATURES_FAILED",
        0xffff => "OFPET_EXPERIMENTER",
        _ => return None,
    })
}

/// Names of standard OpenFlow 1.3 error codes, as OVS prints them (OVS's spelling where it
/// differs from the spec: `OFPBRC_BAD_STAT` for `OFPBRC_BAD_MULTIPART`, `OFPBRC_IS_SECONDARY`
/// for `OFPBRC_IS_SLAVE`, and `OFPBPC_*` for table-features codes 2..4).
pub fn error_name(err_type: u16, code: u16) -> Option<&'static str> {
    let table: &[&str] = match err_type {
        0 => &["OFPHFC_INCOMPATIBLE", "OFPHFC_EPERM"],
        1 => &[
            "OFPBRC_BAD_VERSION",
            "OFPBRC_BAD_TYPE",
            "OFPBRC_BAD_STAT",
            "OFPBRC_BAD_VENDOR",
            "OFPBRC_BAD_SUBTYPE",
            "OFPBRC_EPERM",
            "OFPBRC_BAD_LEN",
            "OFPBRC_BUFFER_EMPTY",
            "OFPBRC_BUFFER_UNKNOWN",
            "OFPBRC_BAD_TABLE_ID",
            "OFPBRC_IS_SECONDARY",
            "OFPBRC_BAD_PORT",
            "OFPBRC_BAD_PACKET",
            "OFPBRC_MULTIPART_BUFFER_OVERFLOW",
        ],
        2 => &[
            "OFPBAC_BAD_TYPE",
            "OFPBAC_BAD_LEN",
            "OFPBAC_BAD_VENDOR",
            "OFPBAC_BAD_VENDOR_TYPE",
            "OFPBAC_BAD_OUT_PORT",
            "OFPBAC_BAD_ARGUMENT",
            "OFPBAC_EPERM",
            "OFPBAC_TOO_MANY",
            "OFPBAC_BAD_QUEUE",
            "OFPBAC_BAD_OUT_GROUP",
            "OFPBAC_MATCH_INCONSISTENT",
            "OFPBAC_UNSUPPORTED_ORDER",
            "OFPBAC_BAD_TAG",
            "OFPBAC_BAD_SET_TYPE",
            "OFPBAC_BAD_SET_LEN",
            "OFPBAC_BAD_SET_ARGUMENT",
        ],
        3 => &[
            "OFPBIC_UNKNOWN_INST",
            "OFPBIC_UNSUP_INST",
            "OFPBIC_BAD_TABLE_ID",
            "OFPBIC_UNSUP_METADATA",
            "OFPBIC_UNSUP_METADATA_MASK",
            "OFPBIC_BAD_EXPERIMENTER",
            "OFPBIC_BAD_EXP_TYPE",
            "OFPBIC_BAD_LEN",
            "OFPBIC_EPERM",
        ],
        4 => &[
            "OFPBMC_BAD_TYPE",
            "OFPBMC_BAD_LEN",
            "OFPBMC_BAD_TAG",
            "OFPBMC_BAD_DL_ADDR_MASK",
            "OFPBMC_BAD_NW_ADDR_MASK",
            "OFPBMC_BAD_WILDCARDS",
            "OFPBMC_BAD_FIELD",
            "OFPBMC_BAD_VALUE",
            "OFPBMC_BAD_MASK",
            "OFPBMC_BAD_PREREQ",
            "OFPBMC_DUP_FIELD",
            "OFPBMC_EPERM",
        ],
        5 => &[
            "OFPFMFC_UNKNOWN",
            "OFPFMFC_TABLE_FULL",
            "OFPFMFC_BAD_TABLE_ID",
            "OFPFMFC_OVERLAP",
            "OFPFMFC_EPERM",
            "OFPFMFC_BAD_TIMEOUT",
            "OFPFMFC_BAD_COMMAND",
            "OFPFMFC_BAD_FLAGS",
        ],
        6 => &[
            "OFPGMFC_GROUP_EXISTS",
            "OFPGMFC_INVALID_GROUP",
            "OFPGMFC_WEIGHT_UNSUPPORTED",
            "OFPGMFC_OUT_OF_GROUPS",
            "OFPGMFC_OUT_OF_BUCKETS",
            "OFPGMFC_CHAINING_UNSUPPORTED",
            "OFPGMFC_WATCH_UNSUPPORTED",
            "OFPGMFC_LOOP",
            "OFPGMFC_UNKNOWN_GROUP",
            "OFPGMFC_CHAINED_GROUP",
            "OFPGMFC_BAD_TYPE",
            "OFPGMFC_BAD_COMMAND",
            "OFPGMFC_BAD_BUCKET",
            "OFPGMFC_BAD_WATCH",
            "OFPGMFC_EPERM",
        ],
        7 => &[
            "OFPPMFC_BAD_PORT",
            "OFPPMFC_BAD_HW_ADDR",
            "OFPPMFC_BAD_CONFIG",
            "OFPPMFC_BAD_ADVERTISE",
            "OFPPMFC_EPERM",
        ],
        8 => &["OFPTMFC_BAD_TABLE", "OFPTMFC_BAD_CONFIG", "OFPTMFC_EPERM"],
        9 => &["OFPQOFC_BAD_PORT", "OFPQOFC_BAD_QUEUE", "OFPQOFC_EPERM"],
        10 => &["OFPSCFC_BAD_FLAGS", "OFPSCFC_BAD_LEN", "OFPSCFC_EPERM"],
        11 => &["OFPRRFC_STALE", "OFPRRFC_UNSUP", "OFPRRFC_BAD_ROLE"],
        12 => &[
            "OFPMMFC_UNKNOWN",
            "OFPMMFC_METER_EXISTS",
            "OFPMMFC_INVALID_METER",
            "OFPMMFC_UNKNOWN_METER",
            "OFPMMFC_BAD_COMMAND",
            "OFPMMFC_BAD_FLAGS",
            "OFPMMFC_BAD_RATE",
            "OFPMMFC_BAD_BURST",
            "OFPMMFC_BAD_BAND",
            "OFPMMFC_BAD_BAND_VALUE",
            "OFPMMFC_OUT_OF_METERS",
            "OFPMMFC_OUT_OF_BANDS",
        ],
        13 => &[
            "OFPTFFC_BAD_TABLE",
            "OFPTFFC_BAD_METADATA",
            "OFPBPC_BAD_TYPE",
            "OFPBPC_BAD_LEN",
            "OFPBPC_BAD_VALUE",
            "OFPTFFC_EPERM",
        ],
        _ => return None,
    };
    table.get(code as usize).copied()
}

/// Names of experimenter errors OVS sends in OpenFlow 1.3: ONF (`exp_code` 2300.. bundle errors
/// and friends) and Nicira (`NX*`) codes.
pub fn experimenter_error_name(experimenter: u32, exp_code: u16) -> Option<&'static str> {
    match experimenter {
        ONF_VENDOR_ID => onf_error_name(exp_code),
        NX_VENDOR_ID => nx_error_name(exp_code),
        _ => None,
    }
}

fn onf_error_name(exp_code: u16) -> Option<&'static str> {
    const BUNDLE: [&str; 16] = [
        "OFPBFC_UNKNOWN",
        "OFPBFC_EPERM",
        "OFPBFC_BAD_ID",
        "OFPBFC_BUNDLE_EXIST",
        "OFPBFC_BUNDLE_CLOSED",
        "OFPBFC_OUT_OF_BUNDLES",
        "OFPBFC_BAD_TYPE",
        "OFPBFC_BAD_FLAGS",
        "OFPBFC_MSG_BAD_LEN",
        "OFPBFC_MSG_BAD_XID",
        "OFPBFC_MSG_UNSUP",
        "OFPBFC_MSG_CONFLICT",
        "OFPBFC_MSG_TOO_MANY",
        "OFPBFC_MSG_FAILED",
        "OFPBFC_TIMEOUT",
        "OFPBFC_BUNDLE_IN_PROGRESS",
    ];
    Some(match exp_code {
        2300..=2315 => BUNDLE[(exp_code - 2300) as usize],
        2360 => "OFPFMFC_BAD_PRIORITY",
        2370 => "OFPACFC_INVALID",
        2371 => "OFPACFC_UNSUPPORTED",
        2372 => "OFPACFC_EPERM",
        2600 => "OFPBIC_DUP_INST",
        2640 => "OFPBRC_MULTIPART_REQUEST_TIMEOUT",
        2641 => "OFPBRC_MULTIPART_REPLY_TIMEOUT",
        4250 => "OFPBAC_BAD_SET_MASK",
        4443 => "OFPBPC_TOO_MANY",
        4444 => "OFPBPC_DUP_TYPE",
        4445 => "OFPBPC_BAD_EXPERIMENTER",
        4446 => "OFPBPC_BAD_EXP_TYPE",
        4447 => "OFPBPC_BAD_EXP_VALUE",
        4448 => "OFPBPC_EPERM",
        _ => return None,
    })
}

fn nx_error_name(exp_code: u16) -> Option<&'static str> {
    Some(match exp_code {
        2 => "NXBRC_NXM_INVALID",
        3 => "NXBRC_NXM_BAD_TYPE",
        4 => "NXBRC_MUST_BE_ZERO",
        5 => "NXBRC_BAD_REASON",
        6 => "OFPMOFC_MONITOR_EXISTS",
        7 => "OFPMOFC_BAD_FLAGS",
        8 => "OFPMOFC_UNKNOWN_MONITOR",
        9 => "NXBRC_FM_BAD_EVENT",
        10 => "NXBRC_UNENCODABLE_ERROR",
        11 => "NXBAC_MUST_BE_ZERO",
        12 => "NXFMFC_HARDWARE",
        13 => "NXFMFC_BAD_TABLE_ID",
        15 => "NXBAC_BAD_CONJUNCTION",
        16 => "NXTTMFC_BAD_COMMAND",
        17 => "NXTTMFC_BAD_OPT_LEN",
        18 => "NXTTMFC_BAD_FIELD_IDX",
        19 => "NXTTMFC_TABLE_FULL",
        20 => "NXTTMFC_ALREADY_MAPPED",
        21 => "NXTTMFC_DUP_ENTRY",
        34 => "NXR_NOT_SUPPORTED",
        35 => "NXR_STALE",
        36 => "NXST_NOT_CONFIGURED",
        37 => "NXFMFC_INVALID_TLV_FIELD",
        38 => "NXTTMFC_INVALID_TLV_DEL",
        39 => "NXBAC_BAD_HEADER_TYPE",
        40 => "NXBAC_UNKNOWN_ED_PROP",
        41 => "NXBAC_BAD_ED_PROP",
        42 => "NXBAC_CT_DATAPATH_SUPPORT",
        43 => "NXBMC_CT_DATAPATH_SUPPORT",
        44 => "NXTFFC_DUP_TABLE",
        _ => return None,
    })
}

/// Every (code, name) pair the tables above know, for exhaustive checks.
pub fn known_error_codes() -> impl Iterator<Item = (ErrorCode, &'static str)> {
    let standard = (0u16..=13).flat_map(|t| {
        (0u16..32).filter_map(move |c| {
            error_name(t, c).map(|n| {
                (
                    ErrorCode::Standard {
                        err_type: t,
                        code: c,
                    },
                    n,
                )
            })
        })
    });
    let exp = [ONF_VENDOR_ID, NX_VENDOR_ID].into_iter().flat_map(|e| {
        (0u16..5000).filter_map(move |c| {
            experimenter_error_name(e, c).map(|n| {
                (
                    ErrorCode::Experimenter {
                        experimenter: e,
                        exp_code: c,
                    },
                    n,
                )
            })
        })
    });
    standard.chain(exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Runs the oracle, `ovs-ofctl ofp-print HEX` (installed by `scripts/setup.sh`).
    fn ofp_print(msg: &[u8]) -> String {
        let out = Command::new("ovs-ofctl")
            .args(["ofp-print", &hex(msg)])
            .output()
            .unwrap_or_else(|e| panic!("ovs-ofctl (run scripts/setup.sh): {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `table=0,priority=10,ip,actions=drop` as `ovs-ofctl -O OpenFlow13 parse-flow` encodes it.
    const FLOW_MOD: [u8; 64] = [
        0x04, 0x0e, 0x00, 0x40, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x0a, 0x80, 0x00, 0x0a, 0x02, 0x08, 0x00,
        0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn bundle_ctrl_bytes() {
        let mut out = Vec::new();
        let ctrl = BundleCtrl {
            bundle_id: 1,
            ctrl_type: BundleCtrlType::OpenRequest,
            flags: BundleFlags::ATOMIC | BundleFlags::ORDERED,
        };
        encode_bundle_ctrl(&mut out, 7, &ctrl);
        assert_eq!(
            out,
            [
                0x04, 0x04, 0x00, 0x18, 0, 0, 0, 7, 0x4f, 0x4e, 0x46, 0x00, 0, 0, 0x08, 0xfc, 0, 0,
                0, 1, 0, 0, 0, 3
            ]
        );
        let (h, d) = decode_bundle_ctrl(&out).unwrap();
        assert_eq!(h.xid, 7);
        assert_eq!(d, ctrl);
        assert_eq!(
            experimenter_of(&out),
            Some((ONF_VENDOR_ID, ONFT_BUNDLE_CONTROL))
        );
    }

    #[test]
    fn bundle_ctrl_all_types_match_ovs() {
        for t in 0..8u16 {
            let ctrl_type = BundleCtrlType::from_u16(t).unwrap();
            for flags in [
                BundleFlags::NONE,
                BundleFlags::ATOMIC,
                BundleFlags::ORDERED,
                BundleFlags::ATOMIC | BundleFlags::ORDERED,
            ] {
                let ctrl = BundleCtrl {
                    bundle_id: 0x1234_5678,
                    ctrl_type,
                    flags,
                };
                let mut out = Vec::new();
                encode_bundle_ctrl(&mut out, 0xabcd, &ctrl);
                assert_eq!(decode_bundle_ctrl(&out).unwrap().1, ctrl);
                let p = ofp_print(&out);
                let fl = match flags.bits() {
                    0 => " flags=0",
                    1 => " flags=atomic",
                    2 => " flags=ordered",
                    _ => " flags=atomic ordered",
                };
                let want = format!(
                    "ONFT_BUNDLE_CONTROL (OF1.3) (xid=0xabcd):\n bundle_id=0x12345678 type={}{}\n",
                    ctrl_type.name(),
                    fl
                );
                assert_eq!(p, want, "ofp-print of {}", hex(&out));
            }
        }
        assert!(BundleCtrlType::CommitRequest.reply() == BundleCtrlType::CommitReply);
        assert!(BundleCtrlType::CommitReply.is_reply());
        assert!(!BundleCtrlType::OpenRequest.is_reply());
    }

    #[test]
    fn bundle_add_wraps_and_rewrites_xid() {
        let mut out = vec![0xaa]; // existing content is kept
        append_bundle_add(
            &mut out,
            9,
            1,
            BundleFlags::ATOMIC | BundleFlags::ORDERED,
            &FLOW_MOD,
        )
        .unwrap();
        assert_eq!(out[0], 0xaa);
        let msg = &out[1..];
        assert_eq!(msg.len(), 24 + 64);
        assert_eq!(
            &msg[..24],
            &[
                0x04, 0x04, 0x00, 0x58, 0, 0, 0, 9, 0x4f, 0x4e, 0x46, 0x00, 0, 0, 0x08, 0xfd, 0, 0,
                0, 1, 0, 0, 0, 3
            ]
        );
        assert_eq!(&msg[24 + 4..24 + 8], &[0, 0, 0, 9]);
        assert_eq!(&msg[24 + 8..], &FLOW_MOD[8..]);
        let (h, add) = decode_bundle_add(msg).unwrap();
        assert_eq!(h.xid, 9);
        assert_eq!(add.bundle_id, 1);
        assert_eq!(add.flags, BundleFlags(3));
        assert_eq!(add.inner.len(), 64);
        assert!(add.properties.is_empty());

        assert_eq!(
            ofp_print(msg),
            "ONFT_BUNDLE_ADD_MESSAGE (OF1.3) (xid=0x9):\n bundle_id=0x1 flags=atomic ordered\n\
             OFPT_FLOW_MOD (OF1.3) (xid=0x9): ADD priority=10,ip actions=drop\n"
        );
    }

    #[test]
    fn bundle_add_rejects_bad_inner() {
        let mut out = vec![1, 2, 3];
        // Length field says 64 but only 63 bytes given.
        assert!(append_bundle_add(&mut out, 1, 1, BundleFlags::ATOMIC, &FLOW_MOD[..63]).is_err());
        // Wrong version.
        let mut v10 = FLOW_MOD;
        v10[0] = 1;
        assert_eq!(
            append_bundle_add(&mut out, 1, 1, BundleFlags::ATOMIC, &v10),
            Err(DecodeError::BadVersion(1))
        );
        // Too short for a header.
        assert!(append_bundle_add(&mut out, 1, 1, BundleFlags::ATOMIC, &[4, 0]).is_err());
        // Too long to wrap.
        let mut big = vec![0u8; MAX_BUNDLE_INNER_LEN + 1];
        big[0] = 4;
        big[1] = 14;
        let n = big.len() as u16;
        big[2..4].copy_from_slice(&n.to_be_bytes());
        assert!(append_bundle_add(&mut out, 1, 1, BundleFlags::ATOMIC, &big).is_err());
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn decoders_never_panic_on_truncation_or_garbage() {
        let mut ctrl = Vec::new();
        encode_bundle_ctrl(
            &mut ctrl,
            1,
            &BundleCtrl {
                bundle_id: 1,
                ctrl_type: BundleCtrlType::CommitReply,
                flags: BundleFlags::NONE,
            },
        );
        let mut add = Vec::new();
        append_bundle_add(&mut add, 5, 1, BundleFlags::ATOMIC, &FLOW_MOD).unwrap();
        let mut err = Vec::new();
        encode_error(
            &mut err,
            3,
            ErrorCode::Experimenter {
                experimenter: ONF_VENDOR_ID,
                exp_code: 2313,
            },
            &add,
        );
        for msg in [&ctrl, &add, &err] {
            for n in 0..msg.len() {
                let cut = &msg[..n];
                assert!(decode_bundle_ctrl(cut).is_err());
                assert!(decode_bundle_add(cut).is_err());
                assert!(decode_error(cut).is_err());
                // Same bytes with the header length patched to the cut length.
                if n >= 8 {
                    let mut m = cut.to_vec();
                    m[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                    let _ = decode_bundle_ctrl(&m);
                    let _ = decode_bundle_add(&m);
                    let _ = decode_error(&m);
                }
            }
        }
        // Bundle add whose inner xid differs.
        let mut bad = add.clone();
        bad[24 + 7] ^= 1;
        assert!(matches!(
            decode_bundle_add(&bad),
            Err(DecodeError::Invalid { .. })
        ));
        // Unknown control type.
        let mut bad = ctrl.clone();
        bad[21] = 9;
        assert!(matches!(
            decode_bundle_ctrl(&bad),
            Err(DecodeError::Unknown { .. })
        ));
        // Wrong experimenter type.
        assert!(decode_bundle_ctrl(&add).is_err());
        assert!(decode_bundle_add(&ctrl).is_err());
        // Pseudo-random garbage.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let len = (x % 80) as usize;
            let mut m = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                m.push(x as u8);
            }
            if m.len() > 1 {
                m[0] = 4;
            }
            let _ = decode_bundle_ctrl(&m);
            let _ = decode_bundle_add(&m);
            let _ = decode_error(&m);
            let _ = split_messages(&m).count();
            x = x.wrapping_add(7);
        }
    }

    #[test]
    fn split_concatenated() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&FLOW_MOD);
        encode_bundle_ctrl(
            &mut buf,
            2,
            &BundleCtrl {
                bundle_id: 1,
                ctrl_type: BundleCtrlType::OpenRequest,
                flags: BundleFlags::ATOMIC,
            },
        );
        let msgs: Vec<_> = split_messages(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].len(), 64);
        assert_eq!(msgs[1].len(), 24);
        let r: Vec<_> = split_messages(&buf[..70]).collect();
        assert_eq!(r.len(), 2);
        assert!(r[1].is_err());
        assert_eq!(split_messages(&[]).count(), 0);
    }

    #[test]
    fn error_decode_standard_and_experimenter() {
        let mut m = Vec::new();
        encode_error(
            &mut m,
            9,
            ErrorCode::Standard {
                err_type: 3,
                code: 2,
            },
            &FLOW_MOD[..8],
        );
        assert_eq!(
            m,
            [4, 1, 0, 20, 0, 0, 0, 9, 0, 3, 0, 2, 4, 14, 0, 64, 0, 0, 0, 1]
        );
        let e = decode_error(&m).unwrap();
        assert_eq!(e.header.xid, 9);
        assert_eq!(e.code.name(), Some("OFPBIC_BAD_TABLE_ID"));
        assert_eq!(e.code.type_name(), Some("OFPET_BAD_INSTRUCTION"));
        assert_eq!(e.offending_header().unwrap().length, 64);
        assert_eq!(e.code.to_string(), "OFPBIC_BAD_TABLE_ID");

        let m = [
            4, 1, 0, 16, 0, 0, 0, 9, 0xff, 0xff, 0x09, 0x09, 0x4f, 0x4e, 0x46, 0x00,
        ];
        let e = decode_error(&m).unwrap();
        assert_eq!(
            e.code,
            ErrorCode::Experimenter {
                experimenter: ONF_VENDOR_ID,
                exp_code: 2313
            }
        );
        assert_eq!(e.code.name(), Some("OFPBFC_MSG_FAILED"));
        assert!(e.code.is_bundle_error());
        assert!(e.data.is_empty());
        assert!(e.offending_header().is_none());
        let unknown = ErrorCode::Standard {
            err_type: 5,
            code: 99,
        };
        assert_eq!(unknown.to_string(), "OFPET_FLOW_MOD_FAILED(code=99)");
        assert!(decode_error(&FLOW_MOD).is_err());
    }

    /// Every name in the tables must be the one `ovs-ofctl ofp-print` prints for that code.
    #[test]
    fn error_names_match_ovs() {
        let codes: Vec<_> = known_error_codes().collect();
        assert!(codes.len() > 150, "{}", codes.len());
        // One ofp-parse run over a file holding every error message.
        let mut stream = Vec::new();
        for (i, (code, _)) in codes.iter().enumerate() {
            encode_error(&mut stream, i as u32 + 1, *code, &FLOW_MOD);
        }
        let path = std::env::temp_dir().join(format!("flowlib-errors-{}.bin", std::process::id()));
        std::fs::write(&path, &stream).unwrap();
        let out = Command::new("ovs-ofctl")
            .arg("ofp-parse")
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let out = match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => panic!("ovs-ofctl (run scripts/setup.sh): {e}"),
        };
        let printed: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("OFPT_ERROR"))
            .collect();
        assert_eq!(printed.len(), codes.len(), "{out}");
        for (i, ((code, name), line)) in codes.iter().zip(printed).enumerate() {
            let want = format!("OFPT_ERROR (OF1.3) (xid={:#x}): {name}", i + 1);
            assert_eq!(line, want, "{code:?}");
        }
    }
}
