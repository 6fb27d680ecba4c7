//! flowlib's switch connection against a real, private ovs-vswitchd.
//!
//! Every test starts its own sandbox and speaks OpenFlow 1.3 to the bridge's `.mgmt` socket.
//! Flow mods are hand-encoded here (the connection layer works on raw frames).

use std::future::Future;
use std::time::{Duration, Instant};

use flowlib::conn::{
    BundleOptions, CommitMode, ConnOptions, ConnState, Connection, Error, Event, Switch,
    SwitchOptions,
};
use flowlib::wire::MsgType;
use kovs_tests::{OvsSandbox, SandboxOptions};

const BR: &str = "br-int";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn sandbox() -> OvsSandbox {
    OvsSandbox::start(SandboxOptions::default()).expect("start OVS sandbox")
}

/// Runs `f` with a 60 s bound so a hang fails the test instead of blocking the suite.
fn run<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("test step timed out")
    })
}

async fn connect(sb: &OvsSandbox) -> Connection {
    Connection::connect(&sb.mgmt_target(BR), ConnOptions::default())
        .await
        .expect("connect to br-int.mgmt")
}

// --- hand-encoded OpenFlow 1.3 messages -------------------------------------------------------

const OFPFC_ADD: u8 = 0;
const OFPFC_DELETE_STRICT: u8 = 4;

/// `table=T,priority=P,ip,nw_dst=D actions=drop` or `... actions=goto_table:G`, as
/// `ovs-ofctl -O OpenFlow13 parse-flow` encodes it (xid left 0: the connection sets it).
fn flow_mod(
    command: u8,
    table: u8,
    priority: u16,
    nw_dst: [u8; 4],
    goto: Option<u8>,
    flags: u16,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(80);
    v.extend_from_slice(&[4, 14, 0, 0, 0, 0, 0, 0]); // header, length patched below
    v.extend_from_slice(&[0; 16]); // cookie, cookie_mask
    v.extend_from_slice(&[table, command, 0, 0, 0, 0]);
    v.extend_from_slice(&priority.to_be_bytes());
    v.extend_from_slice(&[0xff; 12]); // buffer_id, out_port, out_group: none/any
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    // OXM match: eth_type=0x0800, ipv4_dst=D; 18 bytes padded to 24.
    v.extend_from_slice(&[0, 1, 0, 18, 0x80, 0, 0x0a, 2, 8, 0, 0x80, 0, 0x18, 4]);
    v.extend_from_slice(&nw_dst);
    v.extend_from_slice(&[0; 6]);
    if let Some(t) = goto {
        v.extend_from_slice(&[0, 1, 0, 8, t, 0, 0, 0]); // OFPIT_GOTO_TABLE
    }
    let len = v.len() as u16;
    v[2..4].copy_from_slice(&len.to_be_bytes());
    v
}

fn add(table: u8, priority: u16, nw_dst: [u8; 4]) -> Vec<u8> {
    flow_mod(OFPFC_ADD, table, priority, nw_dst, None, 0)
}

fn ip(i: u32) -> [u8; 4] {
    (0x0a00_0000 + i).to_be_bytes()
}

fn dump_line(table: u8, priority: u16, nw_dst: [u8; 4], actions: &str) -> String {
    let t = if table == 0 {
        String::new()
    } else {
        format!("table={table}, ")
    };
    let [a, b, c, d] = nw_dst;
    format!("{t}priority={priority},ip,nw_dst={a}.{b}.{c}.{d} actions={actions}")
}

/// OFPT_GROUP_MOD add of an empty ALL group.
fn group_add(id: u32) -> Vec<u8> {
    let mut v = vec![4, 15, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&id.to_be_bytes());
    v
}

/// OFPT_METER_MOD add: kbps, one drop band.
fn meter_add(id: u32, rate_kbps: u32) -> Vec<u8> {
    let mut v = vec![4, 29, 0, 32, 0, 0, 0, 0, 0, 0, 0, 1];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&[0, 1, 0, 16]);
    v.extend_from_slice(&rate_kbps.to_be_bytes());
    v.extend_from_slice(&[0; 8]);
    v
}

/// OFPMP_FLOW request for every flow in every table.
fn flow_stats_request() -> Vec<u8> {
    let mut v = vec![4, 18, 0, 56, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&[0xff, 0, 0, 0]); // table_id=all, pad
    v.extend_from_slice(&[0xff; 8]); // out_port, out_group: any
    v.extend_from_slice(&[0; 4 + 16]); // pad, cookie, cookie_mask
    v.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]); // empty OXM match
    v
}

/// Number of ofp_flow_stats entries in flow stats reply parts.
fn count_flow_stats(parts: &[flowlib::conn::Frame]) -> usize {
    let mut n = 0;
    for p in parts {
        let mut body = p.multipart_body().expect("multipart reply");
        while body.len() >= 2 {
            let len = u16::from_be_bytes([body[0], body[1]]) as usize;
            assert!(len >= 2 && len <= body.len(), "bad flow_stats length {len}");
            body = &body[len..];
            n += 1;
        }
    }
    n
}

// --- tests ------------------------------------------------------------------------------------

#[test]
fn connect_hello_features_echo_barrier_multipart() {
    let sb = sandbox();
    let rt = runtime();
    run(&rt, async {
        let conn = connect(&sb).await;
        let f = conn.features();
        assert_ne!(f.datapath_id, 0);
        assert_eq!(f.n_tables, 254);

        let rtt = conn.echo(b"kovs echo payload").await.expect("echo");
        assert!(rtt < Duration::from_secs(1));
        conn.barrier().await.expect("barrier");

        let r = conn
            .request(vec![4, MsgType::FeaturesRequest as u8, 0, 8, 0, 0, 0, 0])
            .await
            .expect("features request");
        assert!(r.is(MsgType::FeaturesReply));
        assert_eq!(&r.body()[..8], &f.datapath_id.to_be_bytes());

        // OFPMP_DESC: one part naming Open vSwitch.
        let parts = conn
            .multipart(vec![4, 18, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .await
            .expect("desc");
        assert_eq!(parts.len(), 1);
        let desc = String::from_utf8_lossy(parts[0].multipart_body().unwrap());
        assert!(desc.contains("Open vSwitch"), "{desc}");

        // An error goes to the request that caused it: OFPMP type 99 does not exist.
        match conn
            .multipart(vec![4, 18, 0, 16, 0, 0, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0])
            .await
        {
            Err(Error::Switch(e)) => assert_eq!(e.name(), Some("OFPBRC_BAD_STAT"), "{e}"),
            r => panic!("{r:?}"),
        }
        // Still usable afterwards.
        conn.barrier().await.expect("barrier after error");
        conn.close();
        assert!(matches!(conn.barrier().await, Err(Error::Closed(_))));
    });

    // Unreachable targets fail cleanly.
    run(&rt, async {
        let missing = format!("unix:{}/nope.mgmt", sb.dir().display());
        let r = Connection::connect(&missing, ConnOptions::default()).await;
        assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
        let r = Connection::connect("ssl:1.2.3.4:6653", ConnOptions::default()).await;
        assert!(matches!(r, Err(Error::BadTarget(_))), "{r:?}");
    });
}

#[test]
fn version_mismatch_is_a_clear_error() {
    let sb = sandbox();
    sb.vsctl(&["set", "bridge", BR, "protocols=OpenFlow10,OpenFlow11"])
        .expect("set protocols");
    let rt = runtime();
    let r = run(&rt, async {
        let mut last = None;
        // The bridge reconfigures asynchronously; allow it a moment.
        for _ in 0..50 {
            match Connection::connect(&sb.mgmt_target(BR), ConnOptions::default()).await {
                Err(Error::VersionMismatch { offered }) => return Ok(offered),
                r => last = Some(r),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last)
    });
    match r {
        Ok(offered) => {
            // OVS sends HELLO version 1.1 without a bitmap (1.0 and 1.1 are contiguous).
            assert!(offered.contains("OpenFlow 1.1"), "{offered}");
            assert!(!offered.contains("1.3"), "{offered}");
            let e = Error::VersionMismatch { offered };
            eprintln!("error shown to the user: {e}");
        }
        Err(last) => panic!("no version mismatch: {last:?}"),
    }
}

#[test]
fn bundle_of_flow_mods_commits() {
    let sb = sandbox();
    let rt = runtime();
    let mut want = Vec::new();
    let mut msgs = Vec::new();
    for i in 0..50u32 {
        let t = (i % 3) as u8 * 10;
        msgs.push(add(t, 100 + i as u16, ip(i)));
        want.push(dump_line(t, 100 + i as u16, ip(i), "drop"));
    }
    msgs.push(flow_mod(OFPFC_ADD, 0, 5, ip(999), Some(10), 0));
    want.push(dump_line(0, 5, ip(999), "goto_table:10"));
    want.sort();
    run(&rt, async {
        let conn = connect(&sb).await;
        let out = conn
            .commit_bundle(&msgs, &BundleOptions::default())
            .await
            .expect("commit");
        assert!(out.is_ok(), "{out}");
        assert_eq!(out.messages, 51);
    });
    assert_eq!(sb.dump_flows(BR).unwrap(), want);
}

/// Installs `base`, then runs `bad` (which holds an invalid message at `bad_index`) with
/// `mode`; returns the outcome and the table before/after.
fn run_bad_bundle(
    mode: CommitMode,
    bad: Vec<Vec<u8>>,
) -> (flowlib::conn::BundleOutcome, Vec<String>, Vec<String>) {
    let sb = sandbox();
    let rt = runtime();
    let base: Vec<Vec<u8>> = (0..5).map(|i| add(5, 200, ip(100 + i))).collect();
    run(&rt, async {
        let conn = connect(&sb).await;
        let out = conn
            .commit_bundle(&base, &BundleOptions::default())
            .await
            .unwrap();
        assert!(out.is_ok(), "{out}");
    });
    let before = sb.dump_flows(BR).unwrap();
    assert_eq!(before.len(), 5);
    let out = run(&rt, async {
        let conn = connect(&sb).await;
        let opts = BundleOptions {
            mode,
            ..BundleOptions::default()
        };
        let out = conn.commit_bundle(&bad, &opts).await.expect("commit");
        // The connection is still healthy.
        conn.barrier().await.unwrap();
        out
    });
    let after = sb.dump_flows(BR).unwrap();
    (out, before, after)
}

/// A batch whose message #3 is rejected by OVS at ADD time (goto_table backwards), also
/// deleting one of the base flows.
fn batch_with_bad_goto() -> Vec<Vec<u8>> {
    let mut bad: Vec<Vec<u8>> = (0..8).map(|i| add(5, 300, ip(200 + i))).collect();
    bad[3] = flow_mod(OFPFC_ADD, 5, 300, ip(250), Some(0), 0);
    bad.push(flow_mod(OFPFC_DELETE_STRICT, 5, 200, ip(100), None, 0));
    bad
}

#[test]
fn invalid_flow_mod_leaves_the_table_unchanged() {
    let (out, before, after) = run_bad_bundle(CommitMode::Validate, batch_with_bad_goto());
    eprintln!("{out}");
    assert!(!out.committed, "{out}");
    assert_eq!(out.rejected.len(), 1, "{out}");
    assert_eq!(out.rejected[0].index, 3);
    assert_eq!(out.rejected[0].error.name(), Some("OFPBIC_BAD_TABLE_ID"));
    // The error carries the offending message (the BUNDLE_ADD) with the same xid.
    let h = out.rejected[0].error.offending_header().unwrap();
    assert_eq!(h.xid, out.rejected[0].error.xid);
    assert_eq!(after, before);
}

/// Documents the OVS behaviour that makes `CommitMode::Validate` the default: with everything
/// pipelined, OVS drops the ADD it rejects and commits the rest.
#[test]
fn pipelined_bundle_commits_around_an_add_time_rejection() {
    let (out, before, after) = run_bad_bundle(CommitMode::Pipelined, batch_with_bad_goto());
    eprintln!("{out}");
    assert!(out.committed, "{out}");
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 3);
    assert_eq!(out.rejected[0].error.name(), Some("OFPBIC_BAD_TABLE_ID"));
    assert_ne!(after, before);
    assert_eq!(after.len(), 5 - 1 + 7);
}

/// Errors found at COMMIT time (here: a group that already exists) fail the whole bundle in
/// both modes, naming the message and adding OFPBFC_MSG_FAILED for the commit.
#[test]
fn commit_time_failure_rolls_back_the_bundle() {
    for mode in [CommitMode::Validate, CommitMode::Pipelined] {
        let bad = vec![
            add(5, 300, ip(300)),
            group_add(7), // already exists: the first bundle added it
            add(5, 300, ip(301)),
        ];
        let sb = sandbox();
        let rt = runtime();
        run(&rt, async {
            let conn = connect(&sb).await;
            let out = conn
                .commit_bundle(
                    [group_add(7), add(5, 200, ip(1))],
                    &BundleOptions::default(),
                )
                .await
                .unwrap();
            assert!(out.is_ok(), "{out}");
        });
        let before = sb.dump_flows(BR).unwrap();
        let out = run(&rt, async {
            let conn = connect(&sb).await;
            let opts = BundleOptions {
                mode,
                ..BundleOptions::default()
            };
            conn.commit_bundle(&bad, &opts).await.unwrap()
        });
        eprintln!("{mode:?}: {out}");
        assert!(!out.committed, "{out}");
        assert_eq!(out.rejected.len(), 1, "{out}");
        assert_eq!(out.rejected[0].index, 1);
        assert_eq!(out.rejected[0].error.name(), Some("OFPGMFC_GROUP_EXISTS"));
        assert_eq!(out.bundle_errors.len(), 1, "{out}");
        assert_eq!(out.bundle_errors[0].name(), Some("OFPBFC_MSG_FAILED"));
        assert_eq!(sb.dump_flows(BR).unwrap(), before);
    }
}

#[test]
fn send_batch_for_meter_mods() {
    let sb = sandbox();
    let rt = runtime();
    run(&rt, async {
        let conn = connect(&sb).await;
        // Meter mods cannot go in bundles: OVS refuses the ADD.
        let out = conn
            .commit_bundle([meter_add(1, 1000)], &BundleOptions::default())
            .await
            .unwrap();
        assert!(!out.committed);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].error.name(), Some("OFPBFC_MSG_UNSUP"));

        let out = conn
            .send_batch([
                meter_add(1, 1000),
                meter_add(2, 2000),
                meter_add(1, 500), // exists
                add(0, 10, ip(1)),
            ])
            .await
            .unwrap();
        assert_eq!(out.messages, 4);
        assert_eq!(out.rejected.len(), 1, "{out:?}");
        assert_eq!(out.rejected[0].index, 2);
        assert_eq!(out.rejected[0].error.name(), Some("OFPMMFC_METER_EXISTS"));
    });
    let meters = sb
        .ofctl(&["dump-meters", &sb.mgmt_target(BR)])
        .expect("dump-meters");
    assert!(meters.contains("meter=1 kbps"), "{meters}");
    assert!(meters.contains("meter=2 kbps"), "{meters}");
    assert_eq!(sb.dump_flows(BR).unwrap().len(), 1);
}

#[test]
fn ten_thousand_flow_bundle_streams() {
    let sb = sandbox();
    let rt = runtime();
    const N: u32 = 10_000;
    let (elapsed, dumped) = run(&rt, async {
        let conn = connect(&sb).await;
        let t0 = Instant::now();
        // Encoded lazily, one message at a time: only ~64 KB chunks are ever buffered.
        let out = conn
            .commit_bundle(
                (0..N).map(|i| add(20, 100, ip(i))),
                &BundleOptions::default(),
            )
            .await
            .expect("commit");
        let elapsed = t0.elapsed();
        assert!(out.is_ok(), "{out}");
        assert_eq!(out.messages, N as usize);
        // Read them back over the same connection: a multipart reply in many parts.
        let parts = conn.multipart(flow_stats_request()).await.expect("dump");
        assert!(parts.len() > 1, "{} parts", parts.len());
        (elapsed, count_flow_stats(&parts))
    });
    eprintln!("committed {N} flow_mods in one bundle in {elapsed:?}");
    assert_eq!(dumped, N as usize);
    assert_eq!(sb.dump_flows(BR).unwrap().len(), N as usize);
}

#[test]
fn port_status_events_are_delivered() {
    let sb = sandbox();
    let rt = runtime();
    let conn = run(&rt, connect(&sb));
    let mut events = conn.take_events().unwrap();
    sb.vsctl(&[
        "add-port",
        BR,
        "p1",
        "--",
        "set",
        "interface",
        "p1",
        "type=internal",
    ])
    .expect("add-port");
    run(&rt, async {
        loop {
            match events.recv().await {
                Some(Event::Message(f)) if f.is(MsgType::PortStatus) => {
                    // ofp_port_status: reason (0 = ADD), pad 7, ofp_port (name at 16).
                    let name = &f.body()[8 + 16..8 + 32];
                    if name.starts_with(b"p1\0") {
                        assert_eq!(f.body()[0], 0);
                        break;
                    }
                }
                Some(e) => eprintln!("other event: {e:?}"),
                None => panic!("event channel closed"),
            }
        }
    });
    drop(conn);
}

#[test]
fn reconnects_after_vswitchd_restart() {
    let mut sb = sandbox();
    let rt = runtime();
    let opts = SwitchOptions {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..SwitchOptions::default()
    };
    let sw = rt.block_on(async { Switch::start(&sb.mgmt_target(BR), opts).unwrap() });
    let mut events = sw.take_events().unwrap();
    let flows =
        |g: u32| -> Vec<Vec<u8>> { (0..10).map(|i| add(0, 100, ip(g * 100 + i))).collect() };

    let dpid = run(&rt, async {
        let Some(Event::Connected {
            generation,
            datapath_id,
        }) = events.recv().await
        else {
            panic!("expected Connected")
        };
        assert_eq!(generation, 1);
        let conn = sw.connection().await.unwrap();
        let out = conn
            .commit_bundle(flows(1), &BundleOptions::default())
            .await
            .unwrap();
        assert!(out.is_ok(), "{out}");
        datapath_id
    });
    assert_eq!(sb.dump_flows(BR).unwrap().len(), 10);

    sb.kill_vswitchd().expect("kill ovs-vswitchd");
    let t_down = Instant::now();
    run(&rt, async {
        match events.recv().await {
            Some(Event::Disconnected { generation, reason }) => {
                assert_eq!(generation, 1);
                eprintln!("disconnected: {reason}");
            }
            e => panic!("{e:?}"),
        }
        let mut st = sw.state();
        st.wait_for(|s| matches!(s, ConnState::Backoff { .. }))
            .await
            .unwrap();
        assert!(sw.current().is_none());
    });

    sb.start_vswitchd().expect("restart ovs-vswitchd");
    let new_conn = run(&rt, async {
        match events.recv().await {
            Some(Event::Connected {
                generation,
                datapath_id,
            }) => {
                assert_eq!(generation, 2);
                assert_eq!(datapath_id, dpid);
            }
            e => panic!("{e:?}"),
        }
        eprintln!("reconnected {:?} after the kill", t_down.elapsed());
        let conn = sw.connection().await.unwrap();
        // The Connected event can overtake the state watch: wait for the watch to agree.
        let mut st = sw.state();
        st.wait_for(|s| matches!(s, ConnState::Connected { generation, .. } if *generation >= 2))
            .await
            .unwrap();
        // The restarted vswitchd lost its flows: resync.
        let out = conn
            .commit_bundle(
                flows(1).into_iter().chain(flows(2)),
                &BundleOptions::default(),
            )
            .await
            .unwrap();
        assert!(out.is_ok(), "{out}");
        conn
    });
    assert_eq!(sb.dump_flows(BR).unwrap().len(), 20);
    sw.stop();
    assert!(new_conn.is_closed());
}

/// A transaction whose connection dies under it fails promptly instead of waiting forever.
#[test]
fn a_commit_fails_promptly_when_the_switch_dies_under_it() {
    let rt = runtime();
    let mut sb = sandbox();
    let conn = run(&rt, connect(&sb));
    let msgs: Vec<Vec<u8>> = (0..300_000u32).map(|i| add(20, 100, ip(i))).collect();
    let commit = rt.spawn(async move { conn.commit_bundle(msgs, &BundleOptions::default()).await });
    std::thread::sleep(Duration::from_millis(150));
    sb.kill_vswitchd().expect("kill ovs-vswitchd");
    let t = Instant::now();
    let out = run(&rt, async {
        tokio::time::timeout(Duration::from_secs(10), commit).await
    });
    let out = out
        .expect("the commit returned instead of hanging")
        .expect("task");
    assert!(
        out.is_err() || !out.as_ref().unwrap().committed,
        "{:?}",
        out.map(|o| o.to_string())
    );
    eprintln!("commit ended {:?} after the switch died", t.elapsed());
}
