//! Transactions: a batch of encoded messages in one ONF bundle, streamed in chunks, with every
//! error mapped back to the index of the message in the batch.

use std::fmt;
use std::mem;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::connection::Connection;
use super::frame::{Frame, OfError};
use super::{Error, Result};
use crate::wire::bundle::{
    self, append_bundle_add, encode_bundle_ctrl, BundleCtrl, BundleCtrlType, BundleFlags,
};
use crate::wire::message;
use crate::wire::{DecodeError, MsgType};

/// Default size of the chunks a batch is written in.
pub const DEFAULT_CHUNK: usize = 64 * 1024;
/// Xids reserved at a time when the batch size is not known in advance.
const XID_BLOCK: u32 = 16 * 1024;
/// Upper bound on one xid reservation.
const MAX_XID_BLOCK: u32 = 1 << 20;

/// How a bundle is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// OPEN, ADD×N and a BARRIER are streamed; once the barrier reply is in (one round trip
    /// after the last ADD), COMMIT + BARRIER if OVS accepted every ADD, else DISCARD + BARRIER.
    /// Atomic for every kind of error. This is the default.
    ///
    /// Why: OVS rejects an ADD whose inner message does not decode (bad instruction, action or
    /// match, e.g. `goto_table` backwards → `OFPBIC_BAD_TABLE_ID`) *at ADD time*, drops it
    /// from the bundle, and a later COMMIT applies the rest.
    #[default]
    Validate,
    /// OPEN, ADD×N, COMMIT, BARRIER with no wait at all. Atomic only for errors OVS finds at
    /// commit time (table full, overlap, group exists, ...): an ADD rejected at ADD time is
    /// left out and the others are committed (the outcome names it in `rejected`).
    Pipelined,
}

/// Options of [`Connection::commit_bundle`].
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// Bundle flags; `ATOMIC | ORDERED` by default.
    pub flags: BundleFlags,
    pub mode: CommitMode,
    /// Bytes buffered before a chunk is handed to the writer.
    pub chunk_size: usize,
}

impl Default for BundleOptions {
    fn default() -> BundleOptions {
        BundleOptions {
            flags: BundleFlags::ATOMIC | BundleFlags::ORDERED,
            mode: CommitMode::Validate,
            chunk_size: DEFAULT_CHUNK,
        }
    }
}

/// A message of a batch the switch rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Position of the message in the batch (0-based).
    pub index: usize,
    pub error: OfError,
}

/// What happened to a bundle.
#[derive(Debug, Clone)]
pub struct BundleOutcome {
    pub bundle_id: u32,
    /// Number of messages in the batch.
    pub messages: usize,
    /// True if the switch confirmed the COMMIT.
    pub committed: bool,
    /// Every message the switch rejected, by index, in index order.
    pub rejected: Vec<Rejected>,
    /// Errors about the bundle itself (OPEN/COMMIT/DISCARD), e.g. `OFPBFC_MSG_FAILED` on the
    /// COMMIT when a message failed at commit time.
    pub bundle_errors: Vec<OfError>,
}

impl BundleOutcome {
    /// Committed with no error at all.
    pub fn is_ok(&self) -> bool {
        self.committed && self.rejected.is_empty() && self.bundle_errors.is_empty()
    }
}

impl fmt::Display for BundleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bundle {:#x}: {} of {} messages",
            self.bundle_id,
            if self.committed {
                "committed"
            } else {
                "NOT committed"
            },
            self.messages
        )?;
        for r in &self.rejected {
            write!(f, "; message #{} rejected: {}", r.index, r.error)?;
        }
        for e in &self.bundle_errors {
            write!(f, "; bundle error: {e}")?;
        }
        Ok(())
    }
}

/// What happened to a batch sent without a bundle.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub messages: usize,
    /// Every message the switch rejected, by index, in index order. The others were applied.
    pub rejected: Vec<Rejected>,
}

impl BatchOutcome {
    pub fn is_ok(&self) -> bool {
        self.rejected.is_empty()
    }
}

/// A run of consecutive message xids for consecutive batch indexes.
struct Run {
    xid: u32,
    len: u32,
    index: usize,
}

/// The streaming machinery shared by bundles and plain batches: xid blocks registered with the
/// reader (every reply/error for them comes to `rx`), a chunk buffer, and the collected frames.
struct Txn<'c> {
    conn: &'c Connection,
    owner: u64,
    tx: mpsc::UnboundedSender<Frame>,
    rx: mpsc::UnboundedReceiver<Frame>,
    block_size: u32,
    next: u32,
    left: u32,
    runs: Vec<Run>,
    buf: Vec<u8>,
    chunk: usize,
    frames: Vec<Frame>,
    /// Xids of the barrier replies received (a transaction sends at most three barriers).
    barrier_replies: Vec<u32>,
    /// Set while a bundle is open on the switch: dropping the transaction then discards it.
    open_bundle: Option<(u32, BundleFlags)>,
}

impl<'c> Txn<'c> {
    fn new(conn: &'c Connection, exact_len: Option<usize>, chunk: usize) -> Txn<'c> {
        let (tx, rx) = mpsc::unbounded_channel();
        let block_size = match exact_len {
            Some(n) => (n.saturating_add(8)).min(MAX_XID_BLOCK as usize) as u32,
            None => XID_BLOCK,
        };
        let chunk = chunk.clamp(1024, 16 * 1024 * 1024);
        Txn {
            conn,
            owner: conn.inner.shared.new_owner(),
            tx,
            rx,
            block_size,
            next: 0,
            left: 0,
            runs: Vec::new(),
            buf: Vec::with_capacity(chunk + 4096),
            chunk,
            frames: Vec::new(),
            barrier_replies: Vec::new(),
            open_bundle: None,
        }
    }

    fn xid(&mut self) -> Result<u32> {
        if self.left == 0 {
            let shared = &self.conn.inner.shared;
            let start = shared.alloc_xids(self.block_size);
            shared.register_range(self.owner, start, self.block_size, self.tx.clone())?;
            self.next = start;
            self.left = self.block_size;
        }
        let x = self.next;
        self.next = self.next.wrapping_add(1);
        self.left -= 1;
        Ok(x)
    }

    fn msg_xid(&mut self, index: usize) -> Result<u32> {
        let x = self.xid()?;
        match self.runs.last_mut() {
            Some(r) if r.xid.wrapping_add(r.len) == x && r.index + r.len as usize == index => {
                r.len += 1
            }
            _ => self.runs.push(Run {
                xid: x,
                len: 1,
                index,
            }),
        }
        Ok(x)
    }

    fn index_of(&self, xid: u32) -> Option<usize> {
        self.runs.iter().find_map(|r| {
            let off = xid.wrapping_sub(r.xid);
            (off < r.len).then(|| r.index + off as usize)
        })
    }

    fn collect(&mut self, f: Frame) {
        if f.is(MsgType::BarrierReply) {
            self.barrier_replies.push(f.xid());
        } else {
            self.frames.push(f);
        }
    }

    fn drain_ready(&mut self) {
        while let Ok(f) = self.rx.try_recv() {
            self.collect(f);
        }
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let chunk = mem::replace(&mut self.buf, Vec::with_capacity(self.chunk + 4096));
            self.conn.enqueue(Bytes::from(chunk)).await?;
            // Let the writer run even on a current-thread runtime while the caller computes.
            tokio::task::yield_now().await;
        }
        self.drain_ready();
        Ok(())
    }

    fn put_barrier(&mut self) -> Result<u32> {
        let x = self.xid()?;
        message::encode_empty(MsgType::BarrierRequest, x, &mut self.buf);
        Ok(x)
    }

    fn put_ctrl(&mut self, bundle_id: u32, t: BundleCtrlType, flags: BundleFlags) -> Result<u32> {
        let x = self.xid()?;
        encode_bundle_ctrl(
            &mut self.buf,
            x,
            &BundleCtrl {
                bundle_id,
                ctrl_type: t,
                flags,
            },
        );
        Ok(x)
    }

    /// Flushes and waits for the reply to the barrier with xid `b`, collecting every frame
    /// that arrives before it.
    async fn flush_and_wait(&mut self, b: u32) -> Result<()> {
        self.flush().await?;
        loop {
            // The reply may already have been collected by `drain_ready`.
            if self.barrier_replies.contains(&b) {
                return Ok(());
            }
            // The transaction keeps a sender of its own channel (to register more xids), so a
            // dying connection does not close it: watch the connection too.
            let conn = self.conn;
            tokio::select! {
                f = self.rx.recv() => match f {
                    None => return Err(conn.inner.shared.closed_error()),
                    Some(f) => self.collect(f),
                },
                e = conn.closed() => {
                    // Replies that arrived before the end still count.
                    while let Ok(f) = self.rx.try_recv() {
                        self.collect(f);
                    }
                    if self.barrier_replies.contains(&b) {
                        return Ok(());
                    }
                    return Err(Error::Closed(std::sync::Arc::new(e)));
                }
            }
        }
    }

    /// Sends DISCARD + BARRIER for the open bundle and waits.
    async fn discard(&mut self) -> Result<Option<u32>> {
        let Some((id, flags)) = self.open_bundle else {
            return Ok(None);
        };
        let d = self.put_ctrl(id, BundleCtrlType::DiscardRequest, flags)?;
        let b = self.put_barrier()?;
        self.flush_and_wait(b).await?;
        self.open_bundle = None;
        Ok(Some(d))
    }

    /// Splits the collected errors into per-message rejections and others.
    fn take_errors(&mut self) -> (Vec<Rejected>, Vec<OfError>, Vec<Frame>) {
        let mut rejected = Vec::new();
        let mut others = Vec::new();
        let mut replies = Vec::new();
        for f in mem::take(&mut self.frames) {
            if !f.is(MsgType::Error) {
                replies.push(f);
                continue;
            }
            let error = f.error().unwrap_or_else(|| OfError {
                xid: f.xid(),
                code: bundle::ErrorCode::Standard {
                    err_type: 1,
                    code: 6,
                },
                data: Bytes::new(),
            });
            match self.index_of(f.xid()) {
                Some(index) => rejected.push(Rejected { index, error }),
                None => others.push(error),
            }
        }
        rejected.sort_by_key(|r| r.index);
        (rejected, others, replies)
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        self.conn.inner.shared.unregister_ranges(self.owner);
        // Cancelled while a bundle was open: best-effort DISCARD (OVS would otherwise drop it
        // after its idle timeout).
        if let Some((id, flags)) = self.open_bundle.take() {
            let mut v = Vec::with_capacity(bundle::BUNDLE_CTRL_LEN);
            let xid = self.conn.alloc_xid();
            encode_bundle_ctrl(
                &mut v,
                xid,
                &BundleCtrl {
                    bundle_id: id,
                    ctrl_type: BundleCtrlType::DiscardRequest,
                    flags,
                },
            );
            let _ = self.conn.inner.data_tx.try_send(Bytes::from(v));
        }
    }
}

fn exact_len<I: Iterator>(it: &I) -> Option<usize> {
    match it.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo),
        _ => None,
    }
}

impl Connection {
    /// Installs `messages` (each one complete, encoded OpenFlow 1.3 message; its xid is
    /// replaced) as one ONF bundle: OPEN, one BUNDLE_ADD per message with its own fresh xid,
    /// COMMIT, BARRIER — streamed through the writer in chunks of `opts.chunk_size` bytes,
    /// so memory stays at one chunk whatever the batch size, and the socket is fed while the
    /// iterator computes (keep each message's computation well under OVS's 10 s bundle idle
    /// timeout). See [`CommitMode`] for when the COMMIT is sent.
    ///
    /// `Ok` means the switch answered: check [`BundleOutcome::committed`] and `rejected`.
    /// `Err` is a connection failure (the bundle may or may not have been committed) or a
    /// malformed message ([`Error::InvalidMessage`]; the bundle was discarded).
    pub async fn commit_bundle<I>(&self, messages: I, opts: &BundleOptions) -> Result<BundleOutcome>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let iter = messages.into_iter();
        let mut t = Txn::new(self, exact_len(&iter).map(|n| n + 4), opts.chunk_size);
        let flags = opts.flags;
        let bundle_id = self.inner.shared.alloc_bundle_id();
        t.put_ctrl(bundle_id, BundleCtrlType::OpenRequest, flags)?;
        t.open_bundle = Some((bundle_id, flags));
        let mut n = 0usize;
        for m in iter {
            let xid = t.msg_xid(n)?;
            if let Err(source) = append_bundle_add(&mut t.buf, xid, bundle_id, flags, m.as_ref()) {
                t.discard().await?;
                return Err(Error::InvalidMessage { index: n, source });
            }
            n += 1;
            if t.buf.len() >= t.chunk {
                t.flush().await?;
            }
        }

        let mut commit_xid = None;
        let mut discarded = false;
        match opts.mode {
            CommitMode::Pipelined => {
                commit_xid = Some(t.put_ctrl(bundle_id, BundleCtrlType::CommitRequest, flags)?);
                let b = t.put_barrier()?;
                t.flush_and_wait(b).await?;
            }
            CommitMode::Validate => {
                let b = t.put_barrier()?;
                t.flush_and_wait(b).await?;
                if t.frames.iter().any(|f| f.is(MsgType::Error)) {
                    t.discard().await?;
                    discarded = true;
                } else {
                    commit_xid =
                        Some(t.put_ctrl(bundle_id, BundleCtrlType::CommitRequest, flags)?);
                    let b = t.put_barrier()?;
                    t.flush_and_wait(b).await?;
                }
            }
        }
        t.open_bundle = None;

        let (rejected, bundle_errors, replies) = t.take_errors();
        let committed = !discarded
            && replies.iter().any(|f| {
                Some(f.xid()) == commit_xid
                    && f.bundle_ctrl()
                        .is_some_and(|c| c.ctrl_type == BundleCtrlType::CommitReply)
            });
        Ok(BundleOutcome {
            bundle_id,
            messages: n,
            committed,
            rejected,
            bundle_errors,
        })
    }

    /// [`commit_bundle`](Connection::commit_bundle) over a buffer of concatenated messages.
    /// The buffer is checked first: a malformed one sends nothing.
    pub async fn commit_bundle_concat(
        &self,
        messages: &[u8],
        opts: &BundleOptions,
    ) -> Result<BundleOutcome> {
        let n = count_messages(messages)?;
        let iter = bundle::split_messages(messages).filter_map(|m| m.ok());
        self.commit_bundle(ExactLen { iter, left: n }, opts).await
    }

    /// Sends `messages` one by one (no bundle; for what cannot go in a bundle, such as meter
    /// mods), each with a fresh xid, then a BARRIER, streamed in chunks like
    /// [`commit_bundle`](Connection::commit_bundle). Returns once the barrier reply is in,
    /// naming every rejected message; the others were applied. A malformed message stops the
    /// batch with [`Error::InvalidMessage`]: the ones before it were sent (and a barrier
    /// awaited), the rest were not.
    pub async fn send_batch<I>(&self, messages: I) -> Result<BatchOutcome>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let iter = messages.into_iter();
        let mut t = Txn::new(self, exact_len(&iter).map(|n| n + 1), DEFAULT_CHUNK);
        let mut n = 0usize;
        for m in iter {
            let m = m.as_ref();
            if let Err(source) = bundle::check_single_message(m) {
                let b = t.put_barrier()?;
                t.flush_and_wait(b).await?;
                return Err(Error::InvalidMessage { index: n, source });
            }
            let xid = t.msg_xid(n)?;
            let at = t.buf.len();
            t.buf.extend_from_slice(m);
            t.buf[at + 4..at + 8].copy_from_slice(&xid.to_be_bytes());
            n += 1;
            if t.buf.len() >= t.chunk {
                t.flush().await?;
            }
        }
        let b = t.put_barrier()?;
        t.flush_and_wait(b).await?;
        let (rejected, _, _) = t.take_errors();
        Ok(BatchOutcome {
            messages: n,
            rejected,
        })
    }
}

fn count_messages(buf: &[u8]) -> Result<usize> {
    let mut n = 0;
    for m in bundle::split_messages(buf) {
        let m = m.map_err(|source| Error::InvalidMessage { index: n, source })?;
        bundle::check_single_message(m)
            .map_err(|source: DecodeError| Error::InvalidMessage { index: n, source })?;
        n += 1;
    }
    Ok(n)
}

/// An iterator with a known length (so xids are reserved in one block).
struct ExactLen<I> {
    iter: I,
    left: usize,
}

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let x = self.iter.next()?;
        self.left = self.left.saturating_sub(1);
        Some(x)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
