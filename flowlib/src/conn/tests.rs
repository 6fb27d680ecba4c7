//! Connection tests against a scripted fake switch (no OVS needed).

use std::time::Duration;

use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::UnixStream;

use super::frame::{self, FrameBuf};
use super::*;
use crate::wire::bundle::{
    self, decode_bundle_add, decode_bundle_ctrl, encode_bundle_ctrl, encode_error, BundleCtrl,
    BundleCtrlType, ErrorCode,
};
use crate::wire::{MsgType, PutBe, ONF_VENDOR_ID};

/// Starts a message the fake switch sends, with its final length given up front.
fn put_header(out: &mut Vec<u8>, t: MsgType, len: u16, xid: u32) {
    out.put_u8(crate::wire::OFP13_VERSION);
    out.put_u8(t as u8);
    out.put_u16(len);
    out.put_u32(xid);
}

/// The switch side of a socket pair.
struct Fake {
    r: ReadHalf<UnixStream>,
    w: WriteHalf<UnixStream>,
    fb: FrameBuf,
}

impl Fake {
    fn new(s: UnixStream) -> Fake {
        let (r, w) = tokio::io::split(s);
        Fake {
            r,
            w,
            fb: FrameBuf::new(),
        }
    }
    async fn read(&mut self) -> Frame {
        self.fb.read_frame(&mut self.r).await.expect("fake read")
    }
    async fn try_read(&mut self) -> Result<Frame> {
        self.fb.read_frame(&mut self.r).await
    }
    async fn write(&mut self, b: &[u8]) {
        self.w.write_all(b).await.expect("fake write");
    }
    async fn hello(&mut self, version: u8, bitmap: Option<u32>) {
        let mut v = Vec::new();
        let len = if bitmap.is_some() { 16 } else { 8 };
        v.extend_from_slice(&[version, 0, 0, len, 0, 0, 0, 1]);
        if let Some(b) = bitmap {
            v.extend_from_slice(&[0, 1, 0, 8]);
            v.extend_from_slice(&b.to_be_bytes());
        }
        self.write(&v).await;
    }
    /// Plays OVS's side of the handshake.
    async fn handshake(&mut self) {
        let h = self.read().await;
        assert!(h.is(MsgType::Hello));
        assert_eq!(
            h.as_slice(),
            &[4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x10]
        );
        self.hello(6, Some(0x7e)).await;
        let f = self.read().await;
        assert!(f.is(MsgType::FeaturesRequest));
        let mut v = Vec::new();
        put_header(&mut v, MsgType::FeaturesReply, 32, f.xid());
        v.extend_from_slice(&0x1234u64.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 254, 0, 0, 0, 0, 0, 0, 0x4f, 0, 0, 0, 0]);
        self.write(&v).await;
    }
    async fn reply_empty(&mut self, t: MsgType, xid: u32) {
        self.write(&frame::empty_message(t, xid)).await;
    }
    async fn error(&mut self, xid: u32, code: ErrorCode, data: &[u8]) {
        let mut v = Vec::new();
        encode_error(&mut v, xid, code, data);
        self.write(&v).await;
    }
    async fn ctrl_reply(&mut self, xid: u32, c: BundleCtrl) {
        let mut v = Vec::new();
        encode_bundle_ctrl(
            &mut v,
            xid,
            &BundleCtrl {
                ctrl_type: c.ctrl_type.reply(),
                flags: bundle::BundleFlags::NONE,
                ..c
            },
        );
        self.write(&v).await;
    }
}

fn quiet() -> ConnOptions {
    ConnOptions {
        echo_interval: None,
        miss_send_len: None,
        ..ConnOptions::default()
    }
}

async fn pair(opts: ConnOptions) -> (Connection, Fake) {
    let (a, b) = UnixStream::pair().unwrap();
    let mut fake = Fake::new(b);
    let (conn, ()) = tokio::join!(Connection::from_stream(a, opts), fake.handshake());
    (conn.expect("connect"), fake)
}

fn port_status(xid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    put_header(&mut v, MsgType::PortStatus, 80, xid);
    v.resize(80, 0);
    v
}

fn multipart_reply(xid: u32, more: bool, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_header(
        &mut v,
        MsgType::MultipartReply,
        (16 + body.len()) as u16,
        xid,
    );
    v.extend_from_slice(&[0, 0, 0, more as u8, 0, 0, 0, 0]);
    v.extend_from_slice(body);
    v
}

/// A minimal valid flow_mod; `tag` goes in the cookie so the fake can recognise it.
fn flow_mod(tag: u64) -> Vec<u8> {
    let mut v = Vec::new();
    put_header(&mut v, MsgType::FlowMod, 56, 0xdead);
    v.extend_from_slice(&tag.to_be_bytes());
    v.resize(56, 0);
    v[48..56].copy_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]);
    v
}

fn cookie_of(inner: &[u8]) -> u64 {
    u64::from_be_bytes(inner[8..16].try_into().unwrap())
}

const BAD_TABLE_ID: ErrorCode = ErrorCode::Standard {
    err_type: 3,
    code: 2,
};
const TABLE_FULL: ErrorCode = ErrorCode::Standard {
    err_type: 5,
    code: 1,
};

/// What the fake bundle engine saw.
#[derive(Debug, Default)]
struct Log {
    ctrl: Vec<BundleCtrlType>,
    adds: usize,
    committed: Vec<u64>,
    plain: Vec<u64>,
}

/// Plays OVS's bundle semantics: ADDs whose cookie is in `bad_add` fail at ADD time and are
/// left out; the COMMIT fails on the first message whose cookie is in `bad_commit`. Runs until
/// the connection closes or `stop_after` barriers were answered.
async fn bundle_engine(
    mut fake: Fake,
    bad_add: &[u64],
    bad_commit: &[u64],
    stop_after: usize,
) -> (Log, Fake) {
    let mut log = Log::default();
    let mut bundle: Vec<(u32, u64, Vec<u8>)> = Vec::new();
    let mut barriers = 0;
    while barriers < stop_after {
        let Ok(f) = fake.try_read().await else { break };
        match f.kind() {
            Some(MsgType::BarrierRequest) => {
                fake.reply_empty(MsgType::BarrierReply, f.xid()).await;
                barriers += 1;
            }
            Some(MsgType::FlowMod) => {
                let c = cookie_of(f.as_slice());
                if bad_add.contains(&c) {
                    fake.error(f.xid(), BAD_TABLE_ID, f.as_slice()).await;
                } else {
                    log.plain.push(c);
                }
            }
            Some(MsgType::Experimenter) => match f.experimenter() {
                Some((ONF_VENDOR_ID, bundle::ONFT_BUNDLE_ADD_MESSAGE)) => {
                    let (_, add) = decode_bundle_add(f.as_slice()).unwrap();
                    log.adds += 1;
                    let c = cookie_of(add.inner);
                    if bad_add.contains(&c) {
                        fake.error(f.xid(), BAD_TABLE_ID, f.as_slice()).await;
                    } else {
                        bundle.push((f.xid(), c, f.as_slice().to_vec()));
                    }
                }
                Some((ONF_VENDOR_ID, bundle::ONFT_BUNDLE_CONTROL)) => {
                    let (_, c) = decode_bundle_ctrl(f.as_slice()).unwrap();
                    log.ctrl.push(c.ctrl_type);
                    match c.ctrl_type {
                        BundleCtrlType::CommitRequest => {
                            if let Some((xid, _, msg)) =
                                bundle.iter().find(|(_, c, _)| bad_commit.contains(c))
                            {
                                let (xid, msg) = (*xid, msg.clone());
                                fake.error(xid, TABLE_FULL, &msg).await;
                                fake.error(
                                    f.xid(),
                                    ErrorCode::Experimenter {
                                        experimenter: ONF_VENDOR_ID,
                                        exp_code: 2313,
                                    },
                                    f.as_slice(),
                                )
                                .await;
                            } else {
                                log.committed.extend(bundle.iter().map(|b| b.1));
                                fake.ctrl_reply(f.xid(), c).await;
                            }
                            bundle.clear();
                        }
                        BundleCtrlType::DiscardRequest => {
                            bundle.clear();
                            fake.ctrl_reply(f.xid(), c).await;
                        }
                        _ => fake.ctrl_reply(f.xid(), c).await,
                    }
                }
                _ => panic!("unexpected experimenter message"),
            },
            other => panic!("unexpected message {other:?}"),
        }
    }
    (log, fake)
}

#[tokio::test]
async fn handshake_features_and_echo_both_ways() {
    let (conn, mut fake) = pair(quiet()).await;
    assert_eq!(conn.datapath_id(), 0x1234);
    assert_eq!(conn.features().n_tables, 254);
    assert_eq!(conn.features().capabilities, 0x4f);

    // The switch's echo request is answered with the same xid and payload.
    fake.write(&frame::echo(MsgType::EchoRequest, 77, b"ping"))
        .await;
    let r = fake.read().await;
    assert!(r.is(MsgType::EchoReply));
    assert_eq!(r.xid(), 77);
    assert_eq!(r.body(), b"ping");

    // Our echo.
    let (rtt, ()) = tokio::join!(conn.echo(b"abc"), async {
        let f = fake.read().await;
        assert!(f.is(MsgType::EchoRequest));
        let mut v = f.as_slice().to_vec();
        v[1] = MsgType::EchoReply as u8;
        fake.write(&v).await;
    });
    rtt.unwrap();
}

#[tokio::test]
async fn handshake_enables_async_messages_keeping_flags() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut fake = Fake::new(b);
    let opts = ConnOptions {
        echo_interval: None,
        ..ConnOptions::default()
    };
    let switch = async {
        fake.handshake().await;
        // An async message before the handshake ends is kept for the event stream.
        fake.write(&port_status(0)).await;
        let g = fake.read().await;
        assert!(g.is(MsgType::GetConfigRequest));
        let mut v = Vec::new();
        put_header(&mut v, MsgType::GetConfigReply, 12, g.xid());
        v.extend_from_slice(&[0, 2, 0, 0x80]); // flags: FRAG_REASM
        fake.write(&v).await;
        let s = fake.read().await;
        assert!(s.is(MsgType::SetConfig));
        assert_eq!(s.body(), &[0, 2, 0xff, 0xff]);
    };
    let (conn, ()) = tokio::join!(Connection::from_stream(a, opts), switch);
    let conn = conn.unwrap();
    let mut events = conn.take_events().unwrap();
    assert!(matches!(events.recv().await, Some(Event::Message(f)) if f.is(MsgType::PortStatus)));
    let (r, ()) = tokio::join!(conn.barrier(), async {
        let f = fake.read().await;
        assert!(f.xid() > 4, "handshake xids are not reused");
        fake.reply_empty(MsgType::BarrierReply, f.xid()).await;
    });
    r.unwrap();
}

#[tokio::test]
async fn replies_and_errors_are_routed_by_xid() {
    let (conn, mut fake) = pair(quiet()).await;
    let mut events = conn.take_events().unwrap();
    assert!(conn.take_events().is_none());
    let c2 = conn.clone();
    let a = tokio::spawn(async move {
        c2.request(frame::empty_message(MsgType::GetConfigRequest, 0))
            .await
    });
    let c3 = conn.clone();
    let b = tokio::spawn(async move { c3.barrier().await });
    let c4 = conn.clone();
    let c = tokio::spawn(async move {
        c4.request(frame::empty_message(MsgType::FeaturesRequest, 0))
            .await
    });
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(fake.read().await);
    }
    // Answer in reverse order; the features request gets an error.
    for f in got.iter().rev() {
        match f.kind() {
            Some(MsgType::GetConfigRequest) => {
                let mut v = Vec::new();
                put_header(&mut v, MsgType::GetConfigReply, 12, f.xid());
                v.extend_from_slice(&[0, 0, 0xff, 0xff]);
                fake.write(&v).await;
            }
            Some(MsgType::BarrierRequest) => fake.reply_empty(MsgType::BarrierReply, f.xid()).await,
            Some(MsgType::FeaturesRequest) => fake.error(f.xid(), BAD_TABLE_ID, f.as_slice()).await,
            k => panic!("{k:?}"),
        }
    }
    let ra = a.await.unwrap().unwrap();
    assert!(ra.is(MsgType::GetConfigReply));
    b.await.unwrap().unwrap();
    match c.await.unwrap() {
        Err(Error::Switch(e)) => {
            assert_eq!(e.name(), Some("OFPBIC_BAD_TABLE_ID"));
            assert_eq!(
                e.offending_header().unwrap().msg_type,
                MsgType::FeaturesRequest as u8
            );
            assert!(e
                .to_string()
                .starts_with("OFPBIC_BAD_TABLE_ID (type 3, code 2"));
        }
        r => panic!("{r:?}"),
    }
    // An error nobody waits for, and async messages, are events.
    fake.error(0x5555, BAD_TABLE_ID, &[]).await;
    fake.write(&port_status(0)).await;
    let e1 = events.recv().await.unwrap();
    assert!(matches!(&e1, Event::Message(f) if f.is(MsgType::Error) && f.xid() == 0x5555));
    let e2 = events.recv().await.unwrap();
    assert!(matches!(&e2, Event::Message(f) if f.is(MsgType::PortStatus)));
    // A message with a bad xid in the request is rewritten, not rejected.
    let x = conn
        .send(frame::empty_message(MsgType::BarrierRequest, 0))
        .await
        .unwrap();
    assert_eq!(fake.read().await.xid(), x);
    // Malformed input is refused before sending.
    assert!(matches!(
        conn.send(vec![4u8, 0, 0, 9, 0, 0, 0, 0]).await,
        Err(Error::InvalidMessage { .. })
    ));
}

#[tokio::test]
async fn multipart_replies_are_assembled() {
    let (conn, mut fake) = pair(quiet()).await;
    let mut events = conn.take_events().unwrap();
    let mut req = Vec::new();
    put_header(&mut req, MsgType::MultipartRequest, 16, 0);
    req.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let (parts, ()) = tokio::join!(conn.multipart(req), async {
        let f = fake.read().await;
        assert_eq!(f.multipart_type(), Some(1));
        fake.write(&multipart_reply(f.xid(), true, b"part1..."))
            .await;
        fake.write(&port_status(0)).await; // interleaved async message
        fake.write(&multipart_reply(f.xid(), true, b"part2..."))
            .await;
        fake.write(&multipart_reply(0, false, b"monitor.")).await; // unrelated: an event
        fake.write(&multipart_reply(f.xid(), false, b"part3..."))
            .await;
    });
    let parts = parts.unwrap();
    assert_eq!(parts.len(), 3);
    assert!(parts[0].multipart_more() && parts[1].multipart_more() && !parts[2].multipart_more());
    assert_eq!(parts[2].multipart_body(), Some(&b"part3..."[..]));
    assert!(matches!(events.recv().await, Some(Event::Message(f)) if f.is(MsgType::PortStatus)));
    assert!(
        matches!(events.recv().await, Some(Event::Message(f)) if f.is(MsgType::MultipartReply))
    );

    // An error on a later part fails the whole request.
    let mut req = Vec::new();
    put_header(&mut req, MsgType::MultipartRequest, 16, 0);
    req.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let (r, ()) = tokio::join!(conn.multipart(req), async {
        let f = fake.read().await;
        fake.write(&multipart_reply(f.xid(), true, b"")).await;
        fake.error(f.xid(), TABLE_FULL, &[]).await;
    });
    assert!(matches!(r, Err(Error::Switch(e)) if e.name() == Some("OFPFMFC_TABLE_FULL")));
}

#[tokio::test]
async fn version_negotiation() {
    // (header version, bitmap, accepted?)
    let cases = [
        (1u8, None, false),
        (3, None, false),
        (4, None, true),
        (6, None, true),
        (6, Some(0x7e_u32), true),
        (5, Some(0x22), false), // 1.0 and 1.4 only
        (4, Some(0x10), true),
    ];
    for (version, bitmap, ok) in cases {
        let (a, b) = UnixStream::pair().unwrap();
        let mut fake = Fake::new(b);
        let switch = async {
            let h = fake.read().await;
            assert!(h.is(MsgType::Hello));
            fake.hello(version, bitmap).await;
            if ok {
                let f = fake.read().await;
                let mut v = Vec::new();
                put_header(&mut v, MsgType::FeaturesReply, 32, f.xid());
                v.resize(32, 0);
                fake.write(&v).await;
            } else {
                let e = fake.read().await;
                let e = e.error().expect("HELLO_FAILED error");
                assert_eq!(e.name(), Some("OFPHFC_INCOMPATIBLE"));
            }
        };
        let (r, ()) = tokio::join!(Connection::from_stream(a, quiet()), switch);
        match (ok, r) {
            (true, Ok(_)) => {}
            (false, Err(Error::VersionMismatch { offered })) => {
                assert!(!offered.contains("1.3"), "{offered}");
                if version == 5 {
                    assert_eq!(offered, "OpenFlow 1.0, OpenFlow 1.4");
                }
            }
            (_, r) => panic!("version {version} bitmap {bitmap:?}: {r:?}"),
        }
    }
    // A switch that answers HELLO with HELLO_FAILED.
    let (a, b) = UnixStream::pair().unwrap();
    let mut fake = Fake::new(b);
    let (r, ()) = tokio::join!(Connection::from_stream(a, quiet()), async {
        fake.read().await;
        fake.error(
            1,
            ErrorCode::Standard {
                err_type: 0,
                code: 0,
            },
            b"no",
        )
        .await;
    });
    assert!(matches!(r, Err(Error::VersionMismatch { .. })), "{r:?}");
}

#[tokio::test]
async fn keepalive_probes_and_times_out() {
    let opts = ConnOptions {
        echo_interval: Some(Duration::from_millis(40)),
        echo_timeout: Duration::from_millis(300),
        ..quiet()
    };
    let (conn, mut fake) = pair(opts).await;
    // Answer probes for a while: the connection stays up.
    let t0 = std::time::Instant::now();
    let mut probes = 0;
    while t0.elapsed() < Duration::from_millis(400) {
        let f = tokio::time::timeout(Duration::from_secs(2), fake.read())
            .await
            .expect("a probe");
        assert!(f.is(MsgType::EchoRequest));
        let mut v = f.as_slice().to_vec();
        v[1] = MsgType::EchoReply as u8;
        fake.write(&v).await;
        probes += 1;
    }
    assert!(probes >= 3, "{probes}");
    assert!(!conn.is_closed());
    // Stop answering: the connection fails, pending requests fail too.
    let c2 = conn.clone();
    let pending = tokio::spawn(async move { c2.barrier().await });
    let reason = tokio::time::timeout(Duration::from_secs(2), conn.closed())
        .await
        .expect("closed");
    assert!(matches!(reason, Error::KeepaliveTimeout(_)), "{reason}");
    match pending.await.unwrap() {
        Err(Error::Closed(r)) => assert!(matches!(*r, Error::KeepaliveTimeout(_))),
        r => panic!("{r:?}"),
    }
    assert!(matches!(conn.barrier().await, Err(Error::Closed(_))));
    // The socket is closed: the fake sees EOF after the queued bytes.
    loop {
        match fake.try_read().await {
            Ok(_) => continue,
            Err(Error::Eof) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn garbage_from_the_switch_fails_the_connection() {
    let (conn, mut fake) = pair(quiet()).await;
    let c2 = conn.clone();
    let pending = tokio::spawn(async move { c2.barrier().await });
    fake.read().await;
    fake.write(&[4, 21, 0, 4, 0, 0, 0, 0]).await; // length 4 < 8
    let reason = conn.closed().await;
    assert!(matches!(reason, Error::Decode(_)), "{reason}");
    assert!(matches!(pending.await.unwrap(), Err(Error::Closed(_))));

    // Wrong version after negotiation.
    let (conn, mut fake) = pair(quiet()).await;
    fake.write(&[1, 2, 0, 8, 0, 0, 0, 0]).await;
    assert!(matches!(conn.closed().await, Error::Protocol(_)));

    // EOF.
    let (conn, fake) = pair(quiet()).await;
    drop(fake);
    assert!(matches!(conn.closed().await, Error::Eof));
}

#[tokio::test]
async fn cancelled_request_is_forgotten() {
    let (conn, mut fake) = pair(quiet()).await;
    let mut events = conn.take_events().unwrap();
    let r = tokio::time::timeout(Duration::from_millis(50), conn.barrier()).await;
    assert!(r.is_err());
    let f = fake.read().await;
    fake.reply_empty(MsgType::BarrierReply, f.xid()).await;
    assert!(
        matches!(events.recv().await, Some(Event::Message(g)) if g.xid() == f.xid()),
        "a late reply is an event"
    );
}

#[tokio::test]
async fn events_overflow_is_reported_as_lagged() {
    let opts = ConnOptions {
        event_queue: 2,
        ..quiet()
    };
    let (conn, mut fake) = pair(opts).await;
    for _ in 0..5 {
        fake.write(&port_status(0)).await;
    }
    // The barrier reply proves the five were processed.
    let (r, ()) = tokio::join!(conn.barrier(), async {
        let f = fake.read().await;
        fake.reply_empty(MsgType::BarrierReply, f.xid()).await;
    });
    r.unwrap();
    let mut events = conn.take_events().unwrap();
    assert!(matches!(events.recv().await, Some(Event::Message(_))));
    assert!(matches!(events.recv().await, Some(Event::Message(_))));
    fake.write(&port_status(0)).await;
    assert!(matches!(events.recv().await, Some(Event::Lagged(3))));
    assert!(matches!(events.recv().await, Some(Event::Message(_))));
}

#[tokio::test]
async fn bundle_validate_discards_when_an_add_is_rejected() {
    let (conn, fake) = pair(quiet()).await;
    let engine = tokio::spawn(async move { bundle_engine(fake, &[2, 4], &[], 2).await });
    let msgs: Vec<Vec<u8>> = (0..6).map(flow_mod).collect();
    let out = conn
        .commit_bundle(&msgs, &BundleOptions::default())
        .await
        .unwrap();
    assert!(!out.committed);
    assert!(!out.is_ok());
    assert_eq!(out.messages, 6);
    let idx: Vec<usize> = out.rejected.iter().map(|r| r.index).collect();
    assert_eq!(idx, [2, 4]);
    assert_eq!(out.rejected[0].error.name(), Some("OFPBIC_BAD_TABLE_ID"));
    assert!(out.bundle_errors.is_empty());
    assert!(out.to_string().contains("NOT committed"), "{out}");
    let (log, _) = engine.await.unwrap();
    assert_eq!(
        log.ctrl,
        [BundleCtrlType::OpenRequest, BundleCtrlType::DiscardRequest]
    );
    assert_eq!(log.adds, 6);
    assert!(log.committed.is_empty());
}

#[tokio::test]
async fn bundle_commits_and_reports_commit_time_failures() {
    let (conn, fake) = pair(quiet()).await;
    // 3 bundles: validate ok, validate with a commit-time failure, pipelined with an
    // add-time failure (OVS semantics: the rest is committed).
    let engine = tokio::spawn(async move { bundle_engine(fake, &[105], &[13], 5).await });
    let msgs: Vec<Vec<u8>> = (0..10).map(flow_mod).collect();
    let out = conn
        .commit_bundle(msgs.iter(), &BundleOptions::default())
        .await
        .unwrap();
    assert!(out.is_ok(), "{out}");
    assert_eq!(out.bundle_id, 1);

    let msgs: Vec<Vec<u8>> = (10..20).map(flow_mod).collect();
    let out = conn
        .commit_bundle(&msgs, &BundleOptions::default())
        .await
        .unwrap();
    assert!(!out.committed);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 3);
    assert_eq!(out.rejected[0].error.name(), Some("OFPFMFC_TABLE_FULL"));
    assert_eq!(out.bundle_errors.len(), 1);
    assert_eq!(out.bundle_errors[0].name(), Some("OFPBFC_MSG_FAILED"));
    assert_eq!(out.bundle_id, 2);

    let concat: Vec<u8> = (100..110).flat_map(flow_mod).collect();
    let opts = BundleOptions {
        mode: CommitMode::Pipelined,
        ..BundleOptions::default()
    };
    let out = conn.commit_bundle_concat(&concat, &opts).await.unwrap();
    assert!(out.committed);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 5);

    let (log, _) = engine.await.unwrap();
    use BundleCtrlType::*;
    assert_eq!(
        log.ctrl,
        [
            OpenRequest,
            CommitRequest,
            OpenRequest,
            CommitRequest,
            OpenRequest,
            CommitRequest
        ]
    );
    let mut want: Vec<u64> = (0..10).collect();
    want.extend((100..110).filter(|&c| c != 105));
    assert_eq!(log.committed, want);
}

#[tokio::test]
async fn malformed_message_in_a_bundle_discards_it() {
    let (conn, fake) = pair(quiet()).await;
    let engine = tokio::spawn(async move { bundle_engine(fake, &[], &[], 1).await });
    let mut msgs: Vec<Vec<u8>> = (0..5).map(flow_mod).collect();
    msgs[3].truncate(40);
    let r = conn.commit_bundle(&msgs, &BundleOptions::default()).await;
    assert!(
        matches!(r, Err(Error::InvalidMessage { index: 3, .. })),
        "{r:?}"
    );
    let (log, _) = engine.await.unwrap();
    assert_eq!(
        log.ctrl,
        [BundleCtrlType::OpenRequest, BundleCtrlType::DiscardRequest]
    );
    assert_eq!(log.adds, 3);
    // A malformed concatenated buffer sends nothing.
    let mut concat: Vec<u8> = (0..3).flat_map(flow_mod).collect();
    concat.pop();
    let r = conn
        .commit_bundle_concat(&concat, &BundleOptions::default())
        .await;
    assert!(
        matches!(r, Err(Error::InvalidMessage { index: 2, .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn large_bundle_streams_in_chunks() {
    let opts = ConnOptions {
        write_queue: 4,
        ..quiet()
    };
    let (conn, fake) = pair(opts).await;
    let engine = tokio::spawn(async move { bundle_engine(fake, &[], &[], 2).await });
    // Lazily encoded: no Vec of messages.
    let n = 50_000u64;
    let out = conn
        .commit_bundle((0..n).map(flow_mod), &BundleOptions::default())
        .await
        .unwrap();
    assert!(out.is_ok(), "{out}");
    assert_eq!(out.messages, n as usize);
    let (log, _) = engine.await.unwrap();
    assert_eq!(log.committed.len(), n as usize);
    assert!(log.committed.iter().copied().eq(0..n));
}

#[tokio::test]
async fn send_batch_names_rejected_messages() {
    let (conn, fake) = pair(quiet()).await;
    let engine = tokio::spawn(async move { bundle_engine(fake, &[1, 7], &[], 1).await });
    let out = conn.send_batch((0..10).map(flow_mod)).await.unwrap();
    assert_eq!(out.messages, 10);
    let idx: Vec<usize> = out.rejected.iter().map(|r| r.index).collect();
    assert_eq!(idx, [1, 7]);
    let (log, _) = engine.await.unwrap();
    assert_eq!(log.plain, [0, 2, 3, 4, 5, 6, 8, 9]);
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_socket() {
    let (conn, mut fake) = pair(quiet()).await;
    drop(conn);
    let r = tokio::time::timeout(Duration::from_secs(2), fake.try_read())
        .await
        .unwrap();
    assert!(matches!(r, Err(Error::Eof)), "{r:?}");
}

#[tokio::test]
async fn switch_reconnects_and_announces_generations() {
    let dir = std::env::temp_dir().join(format!("flowlib-sw-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("sw.sock");
    let _ = std::fs::remove_file(&path);
    let opts = SwitchOptions {
        conn: quiet(),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..SwitchOptions::default()
    };
    // Nothing listens yet: the switch backs off and retries.
    let sw = Switch::start(&format!("unix:{}", path.display()), opts).unwrap();
    let mut events = sw.take_events().unwrap();
    let mut state = sw.state();
    state
        .wait_for(|s| matches!(s, ConnState::Backoff { attempt, .. } if *attempt >= 2))
        .await
        .unwrap();
    assert!(sw.current().is_none());

    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    for generation in 1..=3u64 {
        let (s, _) = listener.accept().await.unwrap();
        let mut fake = Fake::new(s);
        fake.handshake().await;
        match events.recv().await {
            Some(Event::Connected {
                generation: g,
                datapath_id,
            }) => {
                assert_eq!(g, generation);
                assert_eq!(datapath_id, 0x1234);
            }
            e => panic!("{e:?}"),
        }
        let conn = sw.connection().await.unwrap();
        assert_eq!(conn.generation(), Some(generation));
        let (r, ()) = tokio::join!(conn.barrier(), async {
            let f = fake.read().await;
            fake.reply_empty(MsgType::BarrierReply, f.xid()).await;
        });
        r.unwrap();
        assert!(sw.state().borrow().is_connected());
        drop(fake); // the switch goes away
        match events.recv().await {
            Some(Event::Disconnected {
                generation: g,
                reason,
            }) => {
                assert_eq!(g, generation);
                assert!(matches!(reason, Error::Eof), "{reason}");
            }
            e => panic!("{e:?}"),
        }
        assert!(conn.is_closed());
    }
    sw.stop();
    assert!(matches!(*sw.state().borrow(), ConnState::Stopped));
    assert!(matches!(sw.connection().await, Err(Error::Stopped)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression: a barrier reply that arrives while the chunk is still being handed over must
/// not be lost (it used to be swallowed by the drain after the flush, hanging the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_replies_are_never_lost() {
    let (conn, fake) = pair(quiet()).await;
    let rounds = 300;
    let engine = tokio::spawn(async move { bundle_engine(fake, &[], &[], 3 * rounds).await });
    for i in 0..rounds {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            conn.commit_bundle([flow_mod(i as u64)], &BundleOptions::default()),
        )
        .await
        .expect("commit hung")
        .unwrap();
        assert!(out.is_ok(), "{out}");
        let b = tokio::time::timeout(Duration::from_secs(5), conn.send_batch([flow_mod(1)]))
            .await
            .expect("batch hung")
            .unwrap();
        assert!(b.is_ok());
    }
    let (log, _) = engine.await.unwrap();
    assert_eq!(log.committed.len(), rounds);
}

/// The switch goes away after taking a whole bundle but before answering its barrier: the
/// commit must fail, not wait forever (the transaction's own channel never closes).
#[tokio::test]
async fn a_commit_fails_when_the_switch_vanishes_before_the_barrier_reply() {
    let (conn, mut fake) = pair(quiet()).await;
    let eater = tokio::spawn(async move {
        // Read OPEN, the ADDs and the BARRIER, then hang up without a word.
        loop {
            let f = fake.read().await;
            if f.is(MsgType::BarrierRequest) {
                break;
            }
        }
        drop(fake);
    });
    let msgs: Vec<Vec<u8>> = (0..4).map(flow_mod).collect();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.commit_bundle(&msgs, &BundleOptions::default()),
    )
    .await
    .expect("the commit returned instead of hanging");
    assert!(r.is_err(), "{r:?}");
    eater.await.unwrap();
}
