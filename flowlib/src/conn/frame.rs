//! Owned raw frames, the stream framer, events, and owned buffers of the few messages the
//! connection sends itself (HELLO, ECHO, BARRIER, FEATURES_REQUEST; `wire::message` encodes them).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::Error;
use crate::wire::bundle::{self, BundleCtrl, ErrorCode};
use crate::wire::message::{self, OFPHET_VERSIONBITMAP};
use crate::wire::{DecodeError, Header, MsgType, HEADER_LEN, OFP13_VERSION};

/// `OFPMPF_REPLY_MORE`: more multipart reply parts follow.
pub(crate) const OFPMPF_REPLY_MORE: u16 = 1;

/// One OpenFlow message as received or sent: the parsed header and the whole message's bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    header: Header,
    bytes: Bytes,
}

impl Frame {
    /// Wraps exactly one message (header length must equal `bytes.len()`).
    pub fn new(bytes: Bytes) -> Result<Frame, DecodeError> {
        let header = bundle::check_single_message(&bytes)?;
        Ok(Frame { header, bytes })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn xid(&self) -> u32 {
        self.header.xid
    }
    /// The raw `ofp_type` byte.
    pub fn msg_type(&self) -> u8 {
        self.header.msg_type
    }
    /// The message type, if it is one OpenFlow 1.3 defines.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u8(self.header.msg_type)
    }
    pub fn is(&self, t: MsgType) -> bool {
        self.header.msg_type == t as u8
    }
    /// The whole message, header included.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    /// The bytes after the 8-byte header.
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }
    /// `(experimenter, exp_type)` of an `OFPT_EXPERIMENTER` message.
    pub fn experimenter(&self) -> Option<(u32, u32)> {
        bundle::experimenter_of(&self.bytes)
    }
    /// The multipart type of a multipart request or reply (`OFPMP_*`, 0xffff = experimenter).
    pub fn multipart_type(&self) -> Option<u16> {
        if (self.is(MsgType::MultipartReply) || self.is(MsgType::MultipartRequest))
            && self.bytes.len() >= 16
        {
            Some(u16::from_be_bytes([self.bytes[8], self.bytes[9]]))
        } else {
            None
        }
    }
    /// The multipart flags of a multipart request or reply.
    pub fn multipart_flags(&self) -> Option<u16> {
        self.multipart_type()
            .map(|_| u16::from_be_bytes([self.bytes[10], self.bytes[11]]))
    }
    /// The body of a multipart reply part, after its 16-byte multipart header.
    pub fn multipart_body(&self) -> Option<&[u8]> {
        self.multipart_type().map(|_| &self.bytes[16..])
    }
    /// True for a multipart reply part with `OFPMPF_REPLY_MORE` set.
    pub fn multipart_more(&self) -> bool {
        self.is(MsgType::MultipartReply)
            && self
                .multipart_flags()
                .is_some_and(|f| f & OFPMPF_REPLY_MORE != 0)
    }
    /// The error carried by an `OFPT_ERROR` frame.
    pub fn error(&self) -> Option<OfError> {
        if !self.is(MsgType::Error) {
            return None;
        }
        let e = bundle::decode_error(&self.bytes).ok()?;
        let off = self.bytes.len() - e.data.len();
        Some(OfError {
            xid: self.header.xid,
            code: e.code,
            data: self.bytes.slice(off..),
        })
    }
    /// The body of an ONF bundle control message.
    pub fn bundle_ctrl(&self) -> Option<BundleCtrl> {
        bundle::decode_bundle_ctrl(&self.bytes).ok().map(|(_, c)| c)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field(
                "type",
                &self.kind().map_or(self.msg_type() as i32, |t| t as i32),
            )
            .field("xid", &self.xid())
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// An `OFPT_ERROR` from the switch, owned.
#[derive(Clone, PartialEq, Eq)]
pub struct OfError {
    /// The xid of the error message (= the xid of the request it is about).
    pub xid: u32,
    pub code: ErrorCode,
    /// The error's data: (the start of) the offending request, for request errors.
    pub data: Bytes,
}

impl OfError {
    /// OVS's name for the error, e.g. `OFPBIC_BAD_TABLE_ID`.
    pub fn name(&self) -> Option<&'static str> {
        self.code.name()
    }
    /// The header of the offending request in `data`.
    pub fn offending_header(&self) -> Option<Header> {
        Header::parse(&self.data).ok()
    }
}

impl fmt::Display for OfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            ErrorCode::Standard { err_type, code } => {
                write!(f, "{} (type {err_type}, code {code}", self.code)?
            }
            ErrorCode::Experimenter {
                experimenter,
                exp_code,
            } => write!(
                f,
                "{} (experimenter {experimenter:#010x}, code {exp_code}",
                self.code
            )?,
        }
        write!(f, ", xid {:#x})", self.xid)
    }
}

impl fmt::Debug for OfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OfError({self}, {} data bytes)", self.data.len())
    }
}

/// Something the switch said that no request was waiting for, or a connection milestone.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// An asynchronous message (PORT_STATUS, PACKET_IN, FLOW_REMOVED, ONF flow monitor updates,
    /// ...) or a reply/error whose xid matches no pending request (e.g. an error for a message
    /// sent with [`Connection::send`](super::Connection::send)).
    Message(Frame),
    /// The event queue was full and this many events were dropped: state learned from events
    /// may be stale, resync.
    Lagged(u64),
    /// ([`Switch`](super::Switch) only) A new connection is up; everything installed over an
    /// earlier connection may be stale (the switch may have restarted): resync.
    Connected { generation: u64, datapath_id: u64 },
    /// ([`Switch`](super::Switch) only) The connection of this generation went down.
    Disconnected { generation: u64, reason: Error },
}

/// Lossy, non-blocking event delivery into a bounded channel: the reader never waits on the
/// user. Drops are counted and reported with [`Event::Lagged`] once there is room again.
#[derive(Debug)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<Event>,
    dropped: AtomicU64,
}

impl EventSink {
    pub(crate) fn new(capacity: usize) -> (EventSink, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            EventSink {
                tx,
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    pub(crate) fn deliver(&self, ev: Event) {
        use mpsc::error::TrySendError;
        let lost = self.dropped.load(Ordering::Relaxed);
        if lost > 0 {
            match self.tx.try_send(Event::Lagged(lost)) {
                Ok(()) => {
                    self.dropped.fetch_sub(lost, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
        match self.tx.try_send(ev) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Splits a byte stream into frames. Frames are zero-copy slices of the read buffer.
#[derive(Debug)]
pub(crate) struct FrameBuf {
    buf: BytesMut,
}

const READ_CHUNK: usize = 64 * 1024;

impl FrameBuf {
    pub(crate) fn new() -> FrameBuf {
        FrameBuf {
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The next complete frame in the buffer, if any. A header with a length below 8 is an
    /// unrecoverable framing error.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = Header::parse(&self.buf[..HEADER_LEN])?;
        let len = header.length as usize;
        if self.buf.len() < len {
            return Ok(None);
        }
        let bytes = self.buf.split_to(len).freeze();
        Ok(Some(Frame { header, bytes }))
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    pub(crate) async fn fill<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        r: &mut R,
    ) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        r.read_buf(&mut self.buf).await
    }

    /// Reads until one frame is available. `Err(Error::Eof)` at end of stream.
    pub(crate) async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        r: &mut R,
    ) -> Result<Frame, Error> {
        loop {
            if let Some(f) = self.next_frame()? {
                return Ok(f);
            }
            if self.fill(r).await? == 0 {
                return Err(Error::Eof);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The few messages the connection sends itself, as owned buffers; `wire::message` encodes them.
// ---------------------------------------------------------------------------------------------

/// A header-only message (BARRIER_REQUEST, FEATURES_REQUEST, ...).
pub(crate) fn empty_message(t: MsgType, xid: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN);
    message::encode_empty(t, xid, &mut v);
    v
}

/// HELLO with one version bitmap element offering only OpenFlow 1.3.
pub(crate) fn hello(xid: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    message::encode_hello(xid, &mut v);
    v
}

/// ECHO_REQUEST/ECHO_REPLY with a payload.
pub(crate) fn echo(t: MsgType, xid: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    message::encode_echo(t, xid, payload, &mut v);
    v
}

/// What the peer's HELLO says about versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerVersions {
    /// The version field of the peer's HELLO header (its highest version).
    pub(crate) header_version: u8,
    /// Versions from the peer's version bitmap element, if it sent one.
    pub(crate) bitmap: Option<Vec<u8>>,
}

impl PeerVersions {
    pub(crate) fn parse(hello: &Frame) -> PeerVersions {
        let mut bitmap = None;
        let mut body = hello.body();
        // Elements: be16 type, be16 length (incl. 4-byte element header), padded to 8.
        while body.len() >= 4 {
            let t = u16::from_be_bytes([body[0], body[1]]);
            let len = u16::from_be_bytes([body[2], body[3]]) as usize;
            if len < 4 || len > body.len() {
                break;
            }
            if t == OFPHET_VERSIONBITMAP {
                let mut versions = Vec::new();
                for (word_idx, word) in body[4..len].chunks_exact(4).enumerate() {
                    let w = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
                    for bit in 0..32 {
                        // A version past 255 cannot be ours; truncated, bit 260 would read as 1.3.
                        match u8::try_from(word_idx * 32 + bit) {
                            Ok(v) if w & (1 << bit) != 0 => versions.push(v),
                            _ => {}
                        }
                    }
                }
                bitmap = Some(versions);
            }
            let padded = (len + 7) & !7;
            body = &body[padded.min(body.len())..];
        }
        PeerVersions {
            header_version: hello.header().version,
            bitmap,
        }
    }

    /// OpenFlow 1.3 negotiation: with a bitmap, 1.3 must be in it; without, the peer's highest
    /// version must be at least 1.3 (we then both speak min(ours, theirs) = 1.3).
    pub(crate) fn supports_13(&self) -> bool {
        match &self.bitmap {
            Some(v) => v.contains(&OFP13_VERSION),
            None => self.header_version >= OFP13_VERSION,
        }
    }

    pub(crate) fn describe(&self) -> String {
        fn name(v: u8) -> String {
            match v {
                1..=6 => format!("OpenFlow 1.{}", v - 1),
                _ => format!("version {v:#04x}"),
            }
        }
        match &self.bitmap {
            Some(v) if v.is_empty() => "no version (empty bitmap)".into(),
            Some(v) => v.iter().map(|&x| name(x)).collect::<Vec<_>>().join(", "),
            None => format!("up to {}", name(self.header_version)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_bitmap_versions_past_255_are_not_wrapped() {
        // A version bitmap of 9 words with only bit 260 (= 256 + 4) set: no version we speak.
        let mut msg = vec![OFP13_VERSION, MsgType::Hello as u8, 0, 0, 0, 0, 0, 1];
        msg.extend_from_slice(&OFPHET_VERSIONBITMAP.to_be_bytes());
        msg.extend_from_slice(&(4u16 + 9 * 4).to_be_bytes());
        let mut words = [0u32; 9];
        words[8] = 1 << 4;
        for w in words {
            msg.extend_from_slice(&w.to_be_bytes());
        }
        msg.resize(msg.len().div_ceil(8) * 8, 0);
        let len = msg.len() as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        let peer = PeerVersions::parse(&Frame::new(Bytes::from(msg)).unwrap());
        assert_eq!(peer.bitmap, Some(vec![]));
        assert!(!peer.supports_13());
    }
}
