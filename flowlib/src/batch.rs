//! The batch writer: many encoded messages in one buffer, each checked against the size a
//! bundle can carry, handed out whole (for a transaction) or as socket-sized chunks, or framed
//! as a complete ONF bundle (OPEN, ADD×N, COMMIT) without the connection.

use crate::wire::bundle::{
    append_bundle_add, encode_bundle_ctrl, BundleCtrl, BundleCtrlType, BundleFlags,
    MAX_BUNDLE_INNER_LEN,
};
use crate::wire::FlowMod;

/// A message too large to travel in a bundle (65,535 bytes minus the bundle-add wrapper).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes does not fit in a bundle (max {max})")]
pub struct TooLarge {
    pub len: usize,
    pub max: usize,
}

/// Encoded messages back to back, with their boundaries.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn with_capacity(bytes: usize, messages: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(messages),
        }
    }

    /// Appends one message written by `encode` (which must append exactly one message).
    /// Returns its index. A message over the bundle limit is removed again and reported.
    #[inline]
    pub fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<usize, TooLarge> {
        let start = self.buf.len();
        encode(&mut self.buf);
        let len = self.buf.len() - start;
        if len > MAX_BUNDLE_INNER_LEN {
            self.buf.truncate(start);
            return Err(TooLarge {
                len,
                max: MAX_BUNDLE_INNER_LEN,
            });
        }
        self.ends.push(self.buf.len());
        Ok(self.ends.len() - 1)
    }

    /// Appends a FLOW_MOD (xid 0: transactions assign their own).
    #[inline]
    pub fn push_flow_mod(&mut self, fm: &FlowMod) -> Result<usize, TooLarge> {
        self.push(|out| fm.encode(0, out))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }
    /// All messages, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Message `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.buf[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// Runs of whole messages of at most `max` bytes each (a single larger message is its own
    /// run): what a writer hands to the socket at a time.
    pub fn chunks(&self, max: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0usize;
        let mut i = 0usize;
        std::iter::from_fn(move || {
            if i >= self.ends.len() {
                return None;
            }
            let mut end = self.ends[i];
            i += 1;
            while i < self.ends.len() && self.ends[i] - start <= max {
                end = self.ends[i];
                i += 1;
            }
            let chunk = &self.buf[start..end];
            start = end;
            Some(chunk)
        })
    }

    /// Frames the batch as one bundle: OPEN, ADD×N (xids `first_xid..`), COMMIT. Returns the
    /// next unused xid. The messages must be OpenFlow 1.3 (they are, from this crate).
    pub fn encode_bundle(
        &self,
        bundle_id: u32,
        flags: BundleFlags,
        first_xid: u32,
        out: &mut Vec<u8>,
    ) -> u32 {
        let mut xid = first_xid;
        let ctrl = |t| BundleCtrl {
            bundle_id,
            ctrl_type: t,
            flags,
        };
        out.reserve(self.buf.len() + self.len() * 24 + 48);
        encode_bundle_ctrl(out, xid, &ctrl(BundleCtrlType::OpenRequest));
        xid = xid.wrapping_add(1);
        for m in self.iter() {
            // Sizes were checked on push.
            let _ = append_bundle_add(out, xid, bundle_id, flags, m);
            xid = xid.wrapping_add(1);
        }
        encode_bundle_ctrl(out, xid, &ctrl(BundleCtrlType::CommitRequest));
        xid.wrapping_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Action, Flow, Instructions, Match};

    fn flow_mod(n: u32) -> FlowMod {
        let mut m = Match::new();
        m.reg(0, n);
        FlowMod::add(Flow::new(
            1,
            10,
            m,
            Instructions::apply([Action::output(n)]),
        ))
    }

    #[test]
    fn messages_come_back_whole_and_in_order() {
        let mut b = Batch::new();
        for n in 0..100 {
            assert_eq!(b.push_flow_mod(&flow_mod(n)).unwrap(), n as usize);
        }
        for (i, m) in b.iter().enumerate() {
            assert_eq!(FlowMod::decode(m).unwrap(), flow_mod(i as u32));
        }
    }

    #[test]
    fn chunks_split_only_between_messages() {
        let mut b = Batch::new();
        for n in 0..1000 {
            b.push_flow_mod(&flow_mod(n)).unwrap();
        }
        let one = b.get(0).unwrap().len();
        let chunks: Vec<&[u8]> = b.chunks(one * 7 + 3).collect();
        assert!(chunks
            .iter()
            .all(|c| c.len() <= one * 7 + 3 && c.len() % one == 0));
        assert_eq!(chunks.concat(), b.bytes());
    }

    #[test]
    fn oversized_messages_are_refused_and_leave_nothing() {
        let mut b = Batch::new();
        b.push_flow_mod(&flow_mod(1)).unwrap();
        let before = b.bytes().len();
        let actions: Vec<Action> = (0..5000).map(Action::output).collect();
        let big = FlowMod::add(Flow::new(1, 1, Match::new(), Instructions::apply(actions)));
        let err = b.push_flow_mod(&big).unwrap_err();
        assert!(err.len > err.max);
        assert_eq!(b.bytes().len(), before);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn bundle_framing_has_open_adds_commit() {
        let mut b = Batch::new();
        for n in 0..3 {
            b.push_flow_mod(&flow_mod(n)).unwrap();
        }
        let mut out = Vec::new();
        let next = b.encode_bundle(7, BundleFlags::ATOMIC | BundleFlags::ORDERED, 100, &mut out);
        assert_eq!(next, 105);
        let msgs: Vec<&[u8]> = crate::wire::message::split_messages(&out)
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(msgs.len(), 5);
        assert_eq!(msgs[0].len(), 24);
        assert_eq!(msgs[4].len(), 24);
        // Inner xid equals the outer one.
        assert_eq!(&msgs[1][4..8], &msgs[1][24 + 4..24 + 8]);
    }
}
