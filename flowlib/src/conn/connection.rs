//! One OpenFlow 1.3 session: handshake, reader/writer/keepalive tasks, request/reply matching.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{self, EventSink, Frame, FrameBuf, PeerVersions};
use super::transport::{BoxRead, BoxWrite, Target};
use super::{Error, Event, Result};
use crate::wire::bundle::{self, ErrorCode};
use crate::wire::message::{self, SwitchConfig};
use crate::wire::{MsgType, Reader, OFP13_VERSION};

/// Tuning knobs of a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// Bound on socket connect + HELLO + FEATURES.
    pub connect_timeout: Duration,
    /// Send an ECHO_REQUEST when nothing was received for this long; `None` disables probing
    /// (the switch's own echo requests are always answered).
    pub echo_interval: Option<Duration>,
    /// Fail the connection when nothing at all arrives this long after a probe. Generous by
    /// default: ovs-vswitchd answers nothing while it commits a very large bundle.
    pub echo_timeout: Duration,
    /// Capacity of the write queue, in items (a request, or a chunk of up to ~64 KB of a
    /// batch). Senders wait when it is full.
    pub write_queue: usize,
    /// Capacity of the event queue; events beyond it are dropped and reported as
    /// [`Event::Lagged`].
    pub event_queue: usize,
    /// If set, the handshake sends SET_CONFIG with this `miss_send_len` (keeping the switch's
    /// fragment-handling flags, read with GET_CONFIG). OVS sends asynchronous messages
    /// (PORT_STATUS, PACKET_IN, FLOW_REMOVED) on service connections such as `<bridge>.mgmt`
    /// only once `miss_send_len` is nonzero. Default `Some(0xffff)` (`OFPCML_NO_BUFFER`:
    /// whole packets in PACKET_IN).
    pub miss_send_len: Option<u16>,
}

impl Default for ConnOptions {
    fn default() -> ConnOptions {
        ConnOptions {
            connect_timeout: Duration::from_secs(10),
            echo_interval: Some(Duration::from_secs(5)),
            echo_timeout: Duration::from_secs(30),
            write_queue: 256,
            event_queue: 4096,
            miss_send_len: Some(0xffff),
        }
    }
}

/// What the switch said in its FEATURES_REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
}

impl Features {
    fn parse(f: &Frame) -> Result<Features> {
        let mut r = Reader::new(f.body());
        Ok(Features {
            datapath_id: r.u64()?,
            n_buffers: r.u32()?,
            n_tables: r.u8()?,
            auxiliary_id: {
                let a = r.u8()?;
                r.skip(2)?;
                a
            },
            capabilities: r.u32()?,
        })
    }
}

/// A live OpenFlow 1.3 connection to a switch. Cheap to clone; all clones share the session.
/// The session ends when [`close`](Connection::close) is called, when the last clone is
/// dropped, or on any I/O, protocol or keepalive failure; pending requests then fail with
/// [`Error::Closed`] and [`closed`](Connection::closed) resolves.
#[derive(Clone)]
pub struct Connection {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    pub(super) data_tx: mpsc::Sender<Bytes>,
    features: Features,
    generation: Option<u64>,
    events_rx: Mutex<Option<mpsc::Receiver<Event>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.fail(Error::ClosedLocally);
    }
}

/// State shared by the handle and the tasks.
pub(super) struct Shared {
    pending: Mutex<Pending>,
    /// `None` while open, the reason once closed.
    status: watch::Sender<Option<Error>>,
    epoch: Instant,
    last_rx_nanos: AtomicU64,
    next_xid: AtomicU32,
    next_bundle_id: AtomicU32,
    next_owner: AtomicU64,
    events: Arc<EventSink>,
    /// Priority queue to the writer: echo replies and keepalive probes.
    ctrl_tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Pending {
    closed: Option<Error>,
    single: HashMap<u32, Waiter>,
    ranges: Vec<XidRange>,
}

enum Waiter {
    Reply(oneshot::Sender<Result<Frame>>),
    Multipart {
        parts: Vec<Frame>,
        tx: oneshot::Sender<Result<Vec<Frame>>>,
    },
}

/// A block of xids whose every reply/error goes to one transaction.
struct XidRange {
    owner: u64,
    start: u32,
    len: u32,
    tx: mpsc::UnboundedSender<Frame>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn switch_error(f: &Frame) -> Error {
    match f.error() {
        Some(e) => Error::Switch(e),
        None => Error::Protocol(format!(
            "malformed OFPT_ERROR ({} bytes) for xid {:#x}",
            f.as_slice().len(),
            f.xid()
        )),
    }
}

impl Pending {
    /// Routes a frame to whoever waits for its xid; gives it back if nobody does.
    fn route(&mut self, f: Frame) -> Option<Frame> {
        let xid = f.xid();
        if let Entry::Occupied(mut e) = self.single.entry(xid) {
            let is_err = f.is(MsgType::Error);
            let done = match e.get_mut() {
                Waiter::Reply(_) => true,
                Waiter::Multipart { parts, .. } => {
                    if !is_err && f.multipart_more() {
                        parts.push(f.clone());
                        false
                    } else {
                        true
                    }
                }
            };
            if done {
                match e.remove() {
                    Waiter::Reply(tx) => {
                        let _ = tx.send(if is_err { Err(switch_error(&f)) } else { Ok(f) });
                    }
                    Waiter::Multipart { mut parts, tx } => {
                        let _ = tx.send(if is_err {
                            Err(switch_error(&f))
                        } else {
                            parts.push(f);
                            Ok(parts)
                        });
                    }
                }
            }
            return None;
        }
        if let Some(r) = self
            .ranges
            .iter()
            .find(|r| xid.wrapping_sub(r.start) < r.len)
        {
            let _ = r.tx.send(f);
            return None;
        }
        Some(f)
    }
}

impl Shared {
    fn new(events: Arc<EventSink>, ctrl_tx: mpsc::Sender<Bytes>, first_xid: u32) -> Shared {
        Shared {
            pending: Mutex::new(Pending::default()),
            status: watch::channel(None).0,
            epoch: Instant::now(),
            last_rx_nanos: AtomicU64::new(0),
            next_xid: AtomicU32::new(first_xid),
            next_bundle_id: AtomicU32::new(1),
            next_owner: AtomicU64::new(1),
            events,
            ctrl_tx,
        }
    }

    /// Reserves `n` consecutive xids (never 0, never wrapping through 0: OVS sends its
    /// asynchronous messages with xid 0).
    pub(super) fn alloc_xids(&self, n: u32) -> u32 {
        let n = n.max(1);
        loop {
            let start = self.next_xid.fetch_add(n, Ordering::Relaxed);
            if start != 0 && start.checked_add(n).is_some() {
                return start;
            }
        }
    }

    pub(super) fn alloc_bundle_id(&self) -> u32 {
        self.next_bundle_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn new_owner(&self) -> u64 {
        self.next_owner.fetch_add(1, Ordering::Relaxed)
    }

    fn touch(&self) {
        let n = self.epoch.elapsed().as_nanos() as u64;
        self.last_rx_nanos.store(n, Ordering::Relaxed);
    }

    fn last_rx(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.last_rx_nanos.load(Ordering::Relaxed))
    }

    pub(super) fn closed_error(&self) -> Error {
        let reason = self.status.borrow().clone();
        Error::Closed(Arc::new(reason.unwrap_or(Error::ClosedLocally)))
    }

    fn register(self: &Arc<Self>, xid: u32, w: Waiter) -> Result<PendingGuard> {
        let mut p = lock(&self.pending);
        if p.closed.is_some() {
            drop(p);
            return Err(self.closed_error());
        }
        p.single.insert(xid, w);
        Ok(PendingGuard {
            shared: self.clone(),
            xid,
        })
    }

    pub(super) fn register_range(
        &self,
        owner: u64,
        start: u32,
        len: u32,
        tx: mpsc::UnboundedSender<Frame>,
    ) -> Result<()> {
        let mut p = lock(&self.pending);
        if p.closed.is_some() {
            drop(p);
            return Err(self.closed_error());
        }
        p.ranges.push(XidRange {
            owner,
            start,
            len,
            tx,
        });
        Ok(())
    }

    pub(super) fn unregister_ranges(&self, owner: u64) {
        lock(&self.pending).ranges.retain(|r| r.owner != owner);
    }

    /// Ends the session (first reason wins): fails every pending request and stops the tasks.
    pub(super) fn fail(&self, reason: Error) {
        let (single, ranges) = {
            let mut p = lock(&self.pending);
            if p.closed.is_some() {
                return;
            }
            p.closed = Some(reason.clone());
            (std::mem::take(&mut p.single), std::mem::take(&mut p.ranges))
        };
        match &reason {
            Error::ClosedLocally => tracing::debug!("OpenFlow connection closed locally"),
            r => tracing::warn!("OpenFlow connection failed: {r}"),
        }
        self.status.send_replace(Some(reason.clone()));
        let err = Error::Closed(Arc::new(reason));
        for (_, w) in single {
            match w {
                Waiter::Reply(tx) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Waiter::Multipart { tx, .. } => {
                    let _ = tx.send(Err(err.clone()));
                }
            }
        }
        drop(ranges); // transactions see their channel close
    }

    fn is_closed(&self) -> bool {
        self.status.borrow().is_some()
    }

    async fn wait_closed(&self) -> Error {
        let mut rx = self.status.subscribe();
        let r = match rx.wait_for(|s| s.is_some()).await {
            Ok(s) => s.clone().unwrap_or(Error::ClosedLocally),
            Err(_) => Error::ClosedLocally,
        };
        r
    }

    /// Handles one frame from the switch.
    fn dispatch(&self, f: Frame) {
        match f.kind() {
            Some(MsgType::EchoRequest) => {
                let reply = frame::echo(MsgType::EchoReply, f.xid(), f.body());
                if self.ctrl_tx.try_send(Bytes::from(reply)).is_err() {
                    tracing::warn!("control queue full: dropped an ECHO_REPLY");
                }
                return;
            }
            Some(MsgType::PacketIn | MsgType::FlowRemoved | MsgType::PortStatus) => {
                self.events.deliver(Event::Message(f));
                return;
            }
            Some(MsgType::Hello) => return,
            _ => {}
        }
        let unmatched = lock(&self.pending).route(f);
        if let Some(f) = unmatched {
            // Replies to our own keepalive probes are not news.
            if !f.is(MsgType::EchoReply) {
                self.events.deliver(Event::Message(f));
            }
        }
    }
}

/// Removes a pending single request when its future is dropped (cancellation safety).
struct PendingGuard {
    shared: Arc<Shared>,
    xid: u32,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        lock(&self.shared.pending).single.remove(&self.xid);
    }
}

/// Checks `msg` is one OpenFlow 1.3 message.
fn check(msg: &[u8]) -> Result<()> {
    bundle::check_single_message(msg)
        .map(|_| ())
        .map_err(|source| Error::InvalidMessage { index: 0, source })
}

impl Connection {
    /// Connects to `unix:PATH` or `tcp:HOST[:PORT]`, negotiates OpenFlow 1.3 and reads the
    /// switch's features.
    pub async fn connect(target: &str, opts: ConnOptions) -> Result<Connection> {
        let target: Target = target.parse()?;
        let (sink, rx) = EventSink::new(opts.event_queue);
        Self::connect_target(&target, &opts, Arc::new(sink), Some(rx), None).await
    }

    /// Runs the session over an already connected stream (tests, custom transports).
    pub async fn from_stream<S>(stream: S, opts: ConnOptions) -> Result<Connection>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let (sink, rx) = EventSink::new(opts.event_queue);
        let fut = Self::establish(
            Box::new(r),
            Box::new(w),
            &opts,
            Arc::new(sink),
            Some(rx),
            None,
        );
        tokio::time::timeout(opts.connect_timeout, fut)
            .await
            .map_err(|_| Error::Timeout("connecting (HELLO/FEATURES)"))?
    }

    pub(super) async fn connect_target(
        target: &Target,
        opts: &ConnOptions,
        sink: Arc<EventSink>,
        events_rx: Option<mpsc::Receiver<Event>>,
        generation: Option<u64>,
    ) -> Result<Connection> {
        let fut = async {
            let (r, w) = target.connect().await?;
            Self::establish(r, w, opts, sink, events_rx, generation).await
        };
        tokio::time::timeout(opts.connect_timeout, fut)
            .await
            .map_err(|_| Error::Timeout("connecting (socket/HELLO/FEATURES)"))?
    }

    async fn establish(
        mut r: BoxRead,
        w: BoxWrite,
        opts: &ConnOptions,
        sink: Arc<EventSink>,
        events_rx: Option<mpsc::Receiver<Event>>,
        generation: Option<u64>,
    ) -> Result<Connection> {
        const HELLO_XID: u32 = 1;
        const FEATURES_XID: u32 = 2;
        let mut w = BufWriter::with_capacity(64 * 1024, w);
        let mut fb = FrameBuf::new();

        w.write_all(&frame::hello(HELLO_XID)).await?;
        w.flush().await?;
        // The switch's first message must be its HELLO.
        let peer = fb.read_frame(&mut r).await?;
        if peer.is(MsgType::Error) {
            // OFPET_HELLO_FAILED, possibly in another version's header: read it raw.
            let body = peer.body();
            if body.len() >= 4 && body[..2] == [0, 0] {
                let text: String = String::from_utf8_lossy(&body[4..])
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                return Err(Error::VersionMismatch {
                    offered: format!(
                        "nothing compatible: it answered HELLO with HELLO_FAILED {text:?}"
                    ),
                });
            }
            return Err(switch_error(&peer));
        }
        if !peer.is(MsgType::Hello) {
            return Err(Error::Protocol(format!(
                "expected HELLO, got message type {}",
                peer.msg_type()
            )));
        }
        let versions = PeerVersions::parse(&peer);
        if !versions.supports_13() {
            let mut e = Vec::new();
            bundle::encode_error(
                &mut e,
                peer.xid(),
                ErrorCode::Standard {
                    err_type: 0,
                    code: 0,
                },
                b"kovs speaks only OpenFlow 1.3",
            );
            let _ = w.write_all(&e).await;
            let _ = w.flush().await;
            return Err(Error::VersionMismatch {
                offered: versions.describe(),
            });
        }

        w.write_all(&frame::empty_message(
            MsgType::FeaturesRequest,
            FEATURES_XID,
        ))
        .await?;
        w.flush().await?;
        let mut early = Vec::new();
        let reply = await_reply(&mut r, &mut w, &mut fb, FEATURES_XID, &mut early).await?;
        if !reply.is(MsgType::FeaturesReply) {
            return Err(Error::Protocol(format!(
                "FEATURES_REQUEST answered with message type {}",
                reply.msg_type()
            )));
        }
        let features = Features::parse(&reply)?;

        // OVS sends asynchronous messages on service (e.g. `.mgmt`) connections only after a
        // SET_CONFIG with a nonzero miss_send_len. Keep the switch-wide flags as they are.
        let mut next_xid = FEATURES_XID + 1;
        if let Some(miss_send_len) = opts.miss_send_len {
            let get_xid = next_xid;
            next_xid += 2;
            w.write_all(&frame::empty_message(MsgType::GetConfigRequest, get_xid))
                .await?;
            w.flush().await?;
            let reply = await_reply(&mut r, &mut w, &mut fb, get_xid, &mut early).await?;
            let mut rd = Reader::new(reply.body());
            let flags = rd.u16()?;
            let mut set = Vec::with_capacity(12);
            let cfg = SwitchConfig {
                flags,
                miss_send_len,
            };
            message::encode_set_config(cfg, get_xid + 1, &mut set);
            w.write_all(&set).await?;
            w.flush().await?;
        }

        // The session is up: from here on nothing can fail, so spawn the tasks.
        let (ctrl_tx, ctrl_rx) = mpsc::channel(64);
        let (data_tx, data_rx) = mpsc::channel(opts.write_queue.max(1));
        let shared = Arc::new(Shared::new(sink, ctrl_tx, next_xid));
        shared.touch();
        if let Some(generation) = generation {
            shared.events.deliver(Event::Connected {
                generation,
                datapath_id: features.datapath_id,
            });
        }
        tokio::spawn(writer_task(shared.clone(), w, data_rx, ctrl_rx));
        tokio::spawn(reader_task(shared.clone(), r, fb, early));
        if let Some(interval) = opts.echo_interval {
            tokio::spawn(keepalive_task(shared.clone(), interval, opts.echo_timeout));
        }
        Ok(Connection {
            inner: Arc::new(Inner {
                shared,
                data_tx,
                features,
                generation,
                events_rx: Mutex::new(events_rx),
            }),
        })
    }

    /// Which of its [`Switch`](super::Switch)'s connections this is (the first is 1), as in
    /// its `Connected` event; `None` for a connection made on its own.
    pub fn generation(&self) -> Option<u64> {
        self.inner.generation
    }

    /// The switch's FEATURES_REPLY.
    pub fn features(&self) -> &Features {
        &self.inner.features
    }

    pub fn datapath_id(&self) -> u64 {
        self.inner.features.datapath_id
    }

    /// The receiver of asynchronous events; `Some` only on the first call. Events are
    /// buffered from the start of the session (up to `event_queue`) until taken. For a
    /// connection handed out by a [`Switch`](super::Switch), use the switch's events instead
    /// (this returns `None`).
    pub fn take_events(&self) -> Option<mpsc::Receiver<Event>> {
        lock(&self.inner.events_rx).take()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// Resolves when the session ends, with the reason.
    pub async fn closed(&self) -> Error {
        self.inner.shared.wait_closed().await
    }

    /// Ends the session now. Queued messages not yet written are dropped: await a
    /// [`barrier`](Connection::barrier) first to be sure they went out.
    pub fn close(&self) {
        self.inner.shared.fail(Error::ClosedLocally);
    }

    /// Reserves a fresh xid (for messages sent with [`send_raw`](Connection::send_raw)).
    pub fn alloc_xid(&self) -> u32 {
        self.inner.shared.alloc_xids(1)
    }

    /// Queues bytes holding whole messages, as is (xids untouched). Waits while the write
    /// queue is full.
    pub async fn send_raw(&self, frames: Bytes) -> Result<()> {
        self.enqueue(frames).await
    }

    pub(super) async fn enqueue(&self, b: Bytes) -> Result<()> {
        if self.inner.shared.is_closed() {
            return Err(self.inner.shared.closed_error());
        }
        self.inner
            .data_tx
            .send(b)
            .await
            .map_err(|_| self.inner.shared.closed_error())
    }

    fn stamp(&self, mut msg: Vec<u8>) -> Result<(u32, Bytes)> {
        check(&msg)?;
        let xid = self.alloc_xid();
        msg[4..8].copy_from_slice(&xid.to_be_bytes());
        Ok((xid, Bytes::from(msg)))
    }

    /// Sends one message with a fresh xid (overwriting the one in `msg`) without waiting for
    /// anything; returns the xid. An error the switch sends for it arrives as an
    /// [`Event::Message`].
    pub async fn send(&self, msg: impl Into<Vec<u8>>) -> Result<u32> {
        let (xid, b) = self.stamp(msg.into())?;
        self.enqueue(b).await?;
        Ok(xid)
    }

    /// Sends a request with a fresh xid and returns the first message the switch sends with
    /// that xid. An `OFPT_ERROR` becomes `Err(Error::Switch)`. Only for messages that get a
    /// reply; cancel-safe (dropping the future forgets the request).
    pub async fn request(&self, msg: impl Into<Vec<u8>>) -> Result<Frame> {
        let (xid, b) = self.stamp(msg.into())?;
        let (tx, rx) = oneshot::channel();
        let _guard = self.inner.shared.register(xid, Waiter::Reply(tx))?;
        self.enqueue(b).await?;
        rx.await
            .unwrap_or_else(|_| Err(self.inner.shared.closed_error()))
    }

    /// Sends a multipart request and returns every reply part, in order (parts are collected
    /// until one without `OFPMPF_REPLY_MORE`).
    pub async fn multipart(&self, msg: impl Into<Vec<u8>>) -> Result<Vec<Frame>> {
        let (xid, b) = self.stamp(msg.into())?;
        let (tx, rx) = oneshot::channel();
        let _guard = self.inner.shared.register(
            xid,
            Waiter::Multipart {
                parts: Vec::new(),
                tx,
            },
        )?;
        self.enqueue(b).await?;
        rx.await
            .unwrap_or_else(|_| Err(self.inner.shared.closed_error()))
    }

    /// Sends a BARRIER_REQUEST and waits for its reply: everything sent before it has been
    /// processed (and its errors, if any, delivered) when this returns.
    pub async fn barrier(&self) -> Result<()> {
        let f = self
            .request(frame::empty_message(MsgType::BarrierRequest, 0))
            .await?;
        if f.is(MsgType::BarrierReply) {
            Ok(())
        } else {
            Err(Error::Protocol(format!(
                "BARRIER_REQUEST answered with message type {}",
                f.msg_type()
            )))
        }
    }

    /// Sends an ECHO_REQUEST with `payload`; returns the round-trip time. Checks the payload
    /// comes back unchanged.
    pub async fn echo(&self, payload: &[u8]) -> Result<Duration> {
        let t0 = Instant::now();
        let f = self
            .request(frame::echo(MsgType::EchoRequest, 0, payload))
            .await?;
        if !f.is(MsgType::EchoReply) || f.body() != payload {
            return Err(Error::Protocol("bad ECHO_REPLY".into()));
        }
        Ok(t0.elapsed())
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("datapath_id", &format_args!("{:#018x}", self.datapath_id()))
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// During the handshake: reads until the reply (or error) for `xid`, answering echo requests
/// and keeping anything else for the reader task.
async fn await_reply(
    r: &mut BoxRead,
    w: &mut BufWriter<BoxWrite>,
    fb: &mut FrameBuf,
    xid: u32,
    early: &mut Vec<Frame>,
) -> Result<Frame> {
    loop {
        let f = fb.read_frame(r).await?;
        if f.header().version != OFP13_VERSION {
            return Err(Error::Protocol(format!(
                "message with version {:#04x} after negotiating OpenFlow 1.3",
                f.header().version
            )));
        }
        if f.is(MsgType::EchoRequest) {
            w.write_all(&frame::echo(MsgType::EchoReply, f.xid(), f.body()))
                .await?;
            w.flush().await?;
        } else if f.xid() == xid && f.is(MsgType::Error) {
            return Err(switch_error(&f));
        } else if f.xid() == xid {
            return Ok(f);
        } else {
            early.push(f);
        }
    }
}

async fn writer_task(
    shared: Arc<Shared>,
    mut w: BufWriter<BoxWrite>,
    mut data_rx: mpsc::Receiver<Bytes>,
    mut ctrl_rx: mpsc::Receiver<Bytes>,
) {
    let work = async {
        loop {
            tokio::select! {
                biased;
                Some(b) = ctrl_rx.recv() => w.write_all(&b).await?,
                b = data_rx.recv() => match b {
                    Some(b) => w.write_all(&b).await?,
                    None => break,
                },
            }
            // Write whatever else is ready (control first), then flush once.
            loop {
                if let Ok(b) = ctrl_rx.try_recv() {
                    w.write_all(&b).await?;
                } else if let Ok(b) = data_rx.try_recv() {
                    w.write_all(&b).await?;
                } else {
                    break;
                }
            }
            w.flush().await?;
        }
        w.flush().await?;
        Ok::<(), std::io::Error>(())
    };
    let closed = shared.wait_closed();
    tokio::select! {
        r = work => match r {
            Ok(()) => shared.fail(Error::ClosedLocally),
            Err(e) => shared.fail(e.into()),
        },
        _ = closed => {}
    }
}

async fn reader_task(shared: Arc<Shared>, mut r: BoxRead, mut fb: FrameBuf, early: Vec<Frame>) {
    for f in early {
        shared.dispatch(f);
    }
    let work = async {
        loop {
            while let Some(f) = fb.next_frame()? {
                if f.header().version != OFP13_VERSION {
                    return Err(Error::Protocol(format!(
                        "message with version {:#04x} after negotiating OpenFlow 1.3",
                        f.header().version
                    )));
                }
                shared.dispatch(f);
            }
            if fb.fill(&mut r).await? == 0 {
                return Err::<(), Error>(Error::Eof);
            }
            shared.touch();
        }
    };
    let closed = shared.wait_closed();
    tokio::select! {
        r = work => shared.fail(r.err().unwrap_or(Error::Eof)),
        _ = closed => {}
    }
}

async fn keepalive_task(shared: Arc<Shared>, interval: Duration, timeout: Duration) {
    let work = async {
        let tick = (interval.min(timeout) / 4).max(Duration::from_millis(5));
        let mut probe_sent: Option<Instant> = None;
        loop {
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            let last = shared.last_rx();
            if let Some(sent) = probe_sent {
                if last >= sent {
                    probe_sent = None;
                } else if now.duration_since(sent) >= timeout {
                    return Error::KeepaliveTimeout(now.duration_since(last));
                }
            }
            if probe_sent.is_none() && now.duration_since(last) >= interval {
                let xid = shared.alloc_xids(1);
                let probe = frame::echo(MsgType::EchoRequest, xid, b"kovs");
                if shared.ctrl_tx.try_send(Bytes::from(probe)).is_ok() {
                    probe_sent = Some(now);
                }
            }
        }
    };
    let closed = shared.wait_closed();
    tokio::select! {
        e = work => shared.fail(e),
        _ = closed => {}
    }
}
