//! The 8-byte OpenFlow header and the message type numbers kovs speaks (OpenFlow 1.3).

use super::{DecodeError, Reader};

/// OpenFlow 1.3 wire version.
pub const OFP13_VERSION: u8 = 0x04;
/// Size of the common header.
pub const HEADER_LEN: usize = 8;
/// Largest OpenFlow message: the length field is 16 bits.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// Nicira experimenter id (NX extensions).
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// Open Networking Foundation experimenter id (ONF extensions: bundles, flow monitor).
pub const ONF_VENDOR_ID: u32 = 0x4f4e_4600;

/// OpenFlow 1.3 message types (`ofp_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    Hello = 0,
    Error = 1,
    EchoRequest = 2,
    EchoReply = 3,
    Experimenter = 4,
    FeaturesRequest = 5,
    FeaturesReply = 6,
    GetConfigRequest = 7,
    GetConfigReply = 8,
    SetConfig = 9,
    PacketIn = 10,
    FlowRemoved = 11,
    PortStatus = 12,
    PacketOut = 13,
    FlowMod = 14,
    GroupMod = 15,
    PortMod = 16,
    TableMod = 17,
    MultipartRequest = 18,
    MultipartReply = 19,
    BarrierRequest = 20,
    BarrierReply = 21,
    QueueGetConfigRequest = 22,
    QueueGetConfigReply = 23,
    RoleRequest = 24,
    RoleReply = 25,
    GetAsyncRequest = 26,
    GetAsyncReply = 27,
    SetAsync = 28,
    MeterMod = 29,
}

impl MsgType {
    pub fn from_u8(v: u8) -> Option<MsgType> {
        use MsgType::*;
        const ALL: [MsgType; 30] = [
            Hello,
            Error,
            EchoRequest,
            EchoReply,
            Experimenter,
            FeaturesRequest,
            FeaturesReply,
            GetConfigRequest,
            GetConfigReply,
            SetConfig,
            PacketIn,
            FlowRemoved,
            PortStatus,
            PacketOut,
            FlowMod,
            GroupMod,
            PortMod,
            TableMod,
            MultipartRequest,
            MultipartReply,
            BarrierRequest,
            BarrierReply,
            QueueGetConfigRequest,
            QueueGetConfigReply,
            RoleRequest,
            RoleReply,
            GetAsyncRequest,
            GetAsyncReply,
            SetAsync,
            MeterMod,
        ];
        ALL.get(v as usize).copied()
    }
}

/// The common OpenFlow header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

impl Header {
    pub fn new(msg_type: MsgType, length: u16, xid: u32) -> Header {
        Header {
            version: OFP13_VERSION,
            msg_type: msg_type as u8,
            length,
            xid,
        }
    }

    /// Reads a header from the first 8 bytes; checks only that the length is sane.
    pub fn parse(buf: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(buf);
        let h = Header {
            version: r.u8()?,
            msg_type: r.u8()?,
            length: r.u16()?,
            xid: r.u32()?,
        };
        if (h.length as usize) < HEADER_LEN {
            return Err(DecodeError::BadLength {
                what: "ofp_header",
                len: h.length as usize,
            });
        }
        Ok(h)
    }

    pub fn write_to(&self, out: &mut [u8]) {
        out[0] = self.version;
        out[1] = self.msg_type;
        out[2..4].copy_from_slice(&self.length.to_be_bytes());
        out[4..8].copy_from_slice(&self.xid.to_be_bytes());
    }
}
