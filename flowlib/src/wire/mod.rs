//! Sans-I/O OpenFlow 1.3 wire codec: typed messages to bytes and back.
//!
//! Encoding appends to a caller-owned `Vec<u8>` (reuse it and nothing allocates per message).
//! Decoding borrows the input, checks every length before reading, and never panics.

pub mod action;
pub mod bundle;
pub mod display;
pub mod flow;
pub mod header;
pub mod message;
pub mod oxm;

pub use action::{port, Action, Actions, Subfield};
pub use flow::{EncodedFlow, Flow, FlowMod, FlowModCommand, FlowStats, Instructions};
pub use header::*;
pub use message::Message;
pub use oxm::{Field, Match, MatchField};

use thiserror::Error;

/// Why bytes could not be decoded. Decoding never panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("bad length {len} in {what}")]
    BadLength { what: &'static str, len: usize },
    #[error("unsupported OpenFlow version {0:#04x}")]
    BadVersion(u8),
    #[error("unknown {what} {value:#x}")]
    Unknown { what: &'static str, value: u64 },
    #[error("invalid {what}: {detail}")]
    Invalid {
        what: &'static str,
        detail: &'static str,
    },
}

/// A bounds-checked big-endian cursor over borrowed bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take_named(n, "message")
    }
    pub fn take_named(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                need: n,
                have: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

/// Appends big-endian integers to a buffer.
pub(crate) trait PutBe {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_zeros(&mut self, n: usize);
    /// Overwrites a big-endian u16 at `at` (length back-patching).
    fn patch_u16(&mut self, at: usize, v: u16);
}

impl PutBe for Vec<u8> {
    #[inline]
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    #[inline]
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    #[inline]
    fn patch_u16(&mut self, at: usize, v: u16) {
        self[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// A small stack buffer: build a fixed-layout piece, then append it with one copy. Cheaper
/// than many small `Vec` pushes on the encode hot path.
pub(crate) struct Fixed<const N: usize> {
    pub b: [u8; N],
    pub n: usize,
}

impl<const N: usize> Fixed<N> {
    #[inline(always)]
    pub fn new() -> Self {
        Fixed { b: [0; N], n: 0 }
    }
    #[inline(always)]
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.b[self.n] = v;
        self.n += 1;
        self
    }
    #[inline(always)]
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    #[inline(always)]
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    #[inline(always)]
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    #[inline(always)]
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.b[self.n..self.n + v.len()].copy_from_slice(v);
        self.n += v.len();
        self
    }
    #[inline(always)]
    pub fn zeros(&mut self, k: usize) -> &mut Self {
        self.n += k;
        self
    }
    /// Pads to a multiple of 8 and patches a 16-bit length at `at` with the final size.
    #[inline(always)]
    pub fn pad8_len_at(&mut self, at: usize) -> &mut Self {
        self.n = (self.n + 7) & !7;
        let n = self.n as u16;
        self.b[at..at + 2].copy_from_slice(&n.to_be_bytes());
        self
    }
    #[inline(always)]
    pub fn append_to(&self, out: &mut Vec<u8>) {
        if self.n == N {
            // Constant size: the copy is inlined instead of a call to memcpy.
            out.extend_from_slice(&self.b);
        } else {
            out.extend_from_slice(&self.b[..self.n]);
        }
    }
}

/// Pads the buffer with zeros to a multiple of 8 bytes counted from `start`.
#[inline]
pub(crate) fn pad_to_8(buf: &mut Vec<u8>, start: usize) {
    let len = buf.len() - start;
    let padded = (len + 7) & !7;
    buf.put_zeros(padded - len);
}
