//! The kovs OVSDB client against real ovsdb-server (and ovs-vswitchd, which fills ofports)
//! from the sandbox harness; `ovs-vsctl` is the independent oracle.
//!
//! Latencies are printed, not asserted beyond generous bounds (2 shared cores): run with
//! `cargo test -p kovs-agent --test ovsdb -- --nocapture` to see them.

use kovs_agent::ovsdb;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kovs_tests::{unique_name, OvsSandbox, SandboxOptions};
use ovsdb::value::str_map;
use ovsdb::{
    Bridge, BridgeSpec, Client, Ensured, Error, Interface, OpenVSwitch, PortSpec, Vswitch, Watch,
    WatchEvent, WatchOptions, DB,
};
use serde_json::json;

/// Bound for anything that should take milliseconds.
const SLOW: Duration = Duration::from_secs(10);

fn sandbox() -> OvsSandbox {
    OvsSandbox::start(SandboxOptions::default()).expect("start sandbox")
}

fn target(sb: &OvsSandbox) -> String {
    format!("unix:{}", sb.db_sock().display())
}

/// `ovs-vsctl` without stalling the runtime's other worker (the watch task runs there).
fn vsctl(sb: &OvsSandbox, args: &[&str]) -> String {
    tokio::task::block_in_place(|| sb.vsctl(args))
        .unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e}"))
        .trim()
        .to_string()
}

/// Runs `ovs-vsctl --db=unix:SOCK --no-wait ARGS` as a child process, so the caller can watch
/// events while it runs.
fn spawn_vsctl(sock: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{}", sock.display()))
        .args(["--no-wait", "--timeout=10"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ovs-vsctl")
}

async fn wait_ok(child: tokio::process::Child) {
    let out = child.wait_with_output().await.expect("ovs-vsctl");
    assert!(out.status.success(), "ovs-vsctl failed: {}", out.status);
}

/// Polls `ok` until it holds; panics after 5 s.
async fn wait_until(mut ok: impl FnMut() -> bool, what: &str) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the first event matching `pred`, returning it and how long it took from `since`.
async fn next_matching<R: ovsdb::Row>(
    w: &mut Watch<R>,
    since: Instant,
    what: &str,
    mut pred: impl FnMut(&WatchEvent<R>) -> bool,
) -> (WatchEvent<R>, Duration) {
    let deadline = tokio::time::Instant::from_std(since) + SLOW;
    loop {
        match tokio::time::timeout_at(deadline, w.next()).await {
            Ok(Some(ev)) if pred(&ev) => return (ev, since.elapsed()),
            Ok(Some(_)) => {}
            Ok(None) => panic!("watch ended while waiting for {what}"),
            Err(_) => panic!("no {what} within {SLOW:?}"),
        }
    }
}

async fn snapshot<R: ovsdb::Row>(w: &mut Watch<R>) -> BTreeMap<ovsdb::Uuid, R> {
    match next_matching(w, Instant::now(), "snapshot", |_| true)
        .await
        .0
    {
        WatchEvent::Snapshot { rows, resync } => {
            assert!(!resync, "first snapshot is not a resync");
            rows
        }
        other => panic!("expected a snapshot first, got {other:?}"),
    }
}

/// Waits until a row matching `pred` is in the table with a valid ofport. Returns when the row
/// was first seen and when its ofport was (both from `since`), and the row. ovsdb-server may
/// fold ovs-vswitchd's ofport write into the insert notification, so either event may carry it.
async fn appears(
    w: &mut Watch<Interface>,
    since: Instant,
    pred: &dyn Fn(&Interface) -> bool,
) -> (Duration, Duration, Interface) {
    let mut seen = None;
    let (ev, numbered) = next_matching(w, since, "row with an ofport", |e| match e {
        WatchEvent::Insert(i) | WatchEvent::Modify { new: i, .. } if pred(i) => {
            seen.get_or_insert(since.elapsed());
            i.valid_ofport().is_some()
        }
        _ => false,
    })
    .await;
    let (WatchEvent::Insert(i) | WatchEvent::Modify { new: i, .. }) = ev else {
        unreachable!()
    };
    (seen.unwrap_or(numbered), numbered, i)
}

/// Polls `ovs-vsctl get ...` until it prints `want`.
async fn wait_vsctl(sb: &OvsSandbox, args: &[&str], want: &str) {
    let start = Instant::now();
    loop {
        let got = vsctl(sb, args);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < SLOW,
            "ovs-vsctl {args:?}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    format!(
        "n={n} mean={:?} p50={:?} p99={:?} max={:?}",
        total / n as u32,
        samples[n / 2],
        samples[(n * 99 / 100).min(n - 1)],
        samples[n - 1]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_basics_and_transact_latency() {
    let sb = sandbox();
    let (client, _notes) = Client::connect(&target(&sb)).await.expect("connect");
    let dbs = client.list_dbs().await.unwrap();
    assert!(dbs.iter().any(|d| d == DB), "{dbs:?}");
    let schema = client.get_schema(DB).await.unwrap();
    let ofport = &schema.tables["Interface"].columns["ofport"];
    assert!(!ofport.is_scalar() && ofport.max == Some(1));
    assert!(schema.tables["Open_vSwitch"].is_root && !schema.tables["Bridge"].is_root);
    client.echo().await.unwrap();
    match client.get_schema("nope").await {
        Err(Error::Rpc { method, .. }) => assert_eq!(method, "get_schema"),
        other => panic!("expected an RPC error, got {other:?}"),
    }
    // A failing operation reports its index and OVSDB's error.
    let bad = client
        .transact(
            DB,
            vec![
                json!({"op": "select", "table": "Bridge", "where": []}),
                json!({"op": "select", "table": "NoSuchTable", "where": []}),
            ],
        )
        .await;
    assert!(
        matches!(bad, Err(Error::Transaction { index: 1, .. })),
        "{bad:?}"
    );
    // monitor (RFC 7047 flavour): initial rows, then an `update` notification.
    let (mon, mut notes) = Client::connect(&target(&sb)).await.unwrap();
    let init = mon
        .monitor(DB, json!("m1"), json!({"Bridge": {"columns": ["name"]}}))
        .await
        .unwrap();
    let names: Vec<_> = init["Bridge"]
        .as_object()
        .unwrap()
        .values()
        .map(|u| u["new"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("br-int")]);
    vsctl(
        &sb,
        &["--no-wait", "set", "bridge", "br-int", "external_ids:x=1"],
    );
    vsctl(&sb, &["--no-wait", "add-br", "br-m"]);
    match tokio::time::timeout(SLOW, notes.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ovsdb::Notification::Update {
            monitor_id,
            updates,
        } => {
            assert_eq!(monitor_id, json!("m1"));
            let row = updates["Bridge"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap();
            assert_eq!(
                row["new"]["name"],
                json!("br-m"),
                "only monitored columns notify"
            );
        }
        other => panic!("{other:?}"),
    }
    mon.monitor_cancel(json!("m1")).await.unwrap();
    vsctl(&sb, &["--no-wait", "del-br", "br-m"]);
    mon.echo().await.unwrap();
    assert!(notes.try_recv().is_err(), "no updates after monitor_cancel");

    // Round trips: read-only transactions, then no-change writes.
    let vs = Vswitch::new(client.clone());
    let select = || {
        vec![json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["_uuid"]})]
    };
    for _ in 0..10 {
        client.transact(DB, select()).await.unwrap();
    }
    let mut reads = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        client.transact(DB, select()).await.unwrap();
        reads.push(t.elapsed());
    }
    vs.set_other_config("kovs-bench", "1").await.unwrap();
    let mut writes = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        vs.set_other_config("kovs-bench", "1").await.unwrap();
        writes.push(t.elapsed());
    }
    let mut ensures = Vec::new();
    vs.ensure_bridge(&BridgeSpec::new("br-lat", "netdev"))
        .await
        .unwrap();
    for _ in 0..100 {
        let t = Instant::now();
        let r = vs
            .ensure_bridge(&BridgeSpec::new("br-lat", "netdev"))
            .await
            .unwrap();
        assert_eq!(r, Ensured::Unchanged);
        ensures.push(t.elapsed());
    }
    println!("transact round trip, select Open_vSwitch: {}", stats(reads));
    println!(
        "transact round trip, no-change other_config mutate: {}",
        stats(writes)
    );
    println!(
        "ensure_bridge on an up-to-date bridge (1 read txn): {}",
        stats(ensures)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_bridge_creates_is_idempotent_and_leaves_foreign_bridges() {
    let sb = sandbox();
    let vs = Vswitch::connect(&target(&sb)).await.unwrap();
    let mut watch = Watch::<Bridge>::spawn(WatchOptions::new(&target(&sb)));
    let initial = snapshot(&mut watch).await;
    assert_eq!(
        initial
            .values()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>(),
        ["br-int"]
    );

    let spec = BridgeSpec::new("br-x", "netdev");
    assert_eq!(vs.ensure_bridge(&spec).await.unwrap(), Ensured::Created);
    assert_eq!(
        vsctl(
            &sb,
            &[
                "get",
                "bridge",
                "br-x",
                "datapath_type",
                "protocols",
                "fail_mode",
                "external_ids"
            ]
        ),
        "netdev\n[OpenFlow13]\nsecure\n{kovs-owner=kovs}"
    );
    assert_eq!(
        vsctl(&sb, &["list-ports", "br-x"]),
        "",
        "only the internal port"
    );
    assert_eq!(
        vsctl(&sb, &["get", "interface", "br-x", "type"]),
        "internal"
    );
    let (ev, _) = next_matching(&mut watch, Instant::now(), "br-x insert", |_| true).await;
    assert!(
        matches!(&ev, WatchEvent::Insert(b) if b.name == "br-x"),
        "{ev:?}"
    );
    // ovs-vswitchd accepted it: its OpenFlow management socket appears.
    let start = Instant::now();
    while !sb.mgmt_sock("br-x").exists() {
        assert!(start.elapsed() < SLOW, "ovs-vswitchd never created br-x");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The datapath ID is pinned, so a port with a lower MAC (the node port, an uplink) does not
    // change it; ovs-vswitchd would drop every OpenFlow connection if it did.
    let pinned = vsctl(&sb, &["get", "bridge", "br-x", "other_config:datapath-id"]);
    let pinned = pinned.trim_matches('"').to_string();
    assert!(
        pinned.len() == 16 && pinned.chars().all(|c| c.is_ascii_hexdigit()),
        "{pinned}"
    );
    let dpid = || {
        vsctl(&sb, &["get", "bridge", "br-x", "datapath_id"])
            .trim_matches('"')
            .to_string()
    };
    wait_until(
        || dpid() == pinned,
        "ovs-vswitchd uses the pinned datapath ID",
    )
    .await;
    vsctl(
        &sb,
        &[
            "add-port",
            "br-x",
            "lowmac",
            "--",
            "set",
            "interface",
            "lowmac",
            "type=internal",
            "mac=\"00:00:00:00:00:01\"",
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dpid(), pinned, "a low-MAC port changed the datapath ID");
    vsctl(&sb, &["del-port", "br-x", "lowmac"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while watch.try_next().is_some() {}

    // Idempotent: nothing written, so the monitor stays silent.
    assert_eq!(vs.ensure_bridge(&spec).await.unwrap(), Ensured::Unchanged);
    assert_eq!(vs.ensure_bridge(&spec).await.unwrap(), Ensured::Unchanged);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        watch.try_next(),
        None,
        "a no-change ensure_bridge wrote something"
    );

    // Drift on a kovs bridge is fixed, and only the drifted column is written.
    vsctl(
        &sb,
        &[
            "set",
            "bridge",
            "br-x",
            "fail_mode=standalone",
            "external_ids:note=hi",
        ],
    );
    assert_eq!(
        vs.ensure_bridge(&spec).await.unwrap(),
        Ensured::Updated(vec!["fail_mode"])
    );
    assert_eq!(
        vsctl(&sb, &["get", "bridge", "br-x", "fail_mode"]),
        "secure"
    );
    assert_eq!(
        vsctl(&sb, &["get", "bridge", "br-x", "external_ids:note"]),
        "hi"
    );
    // A kovs bridge without a pinned datapath ID (an older kovs made it) gets the one it has.
    vsctl(
        &sb,
        &["remove", "bridge", "br-x", "other_config", "datapath-id"],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let current = dpid();
    assert_eq!(
        vs.ensure_bridge(&spec).await.unwrap(),
        Ensured::Updated(vec!["other_config:datapath-id"])
    );
    assert_eq!(
        vsctl(&sb, &["get", "bridge", "br-x", "other_config:datapath-id"]).trim_matches('"'),
        current
    );

    // Someone else's bridge: reported, never modified.
    vsctl(
        &sb,
        &[
            "add-br",
            "br-f",
            "--",
            "set",
            "bridge",
            "br-f",
            "datapath_type=netdev",
        ],
    );
    let foreign = vs
        .ensure_bridge(&BridgeSpec::new("br-f", "netdev"))
        .await
        .unwrap();
    assert_eq!(
        foreign,
        Ensured::Foreign {
            mismatched: vec!["protocols", "fail_mode"]
        }
    );
    assert_eq!(
        vsctl(
            &sb,
            &[
                "get",
                "bridge",
                "br-f",
                "protocols",
                "fail_mode",
                "external_ids"
            ]
        ),
        "[]\n[]\n{}"
    );
    // The harness's br-int is foreign too, but already as kovs wants it.
    assert_eq!(
        vs.ensure_bridge(&BridgeSpec::new("br-int", "netdev"))
            .await
            .unwrap(),
        Ensured::Foreign { mismatched: vec![] }
    );
    // Its ports are off limits as well.
    let err = vs
        .ensure_port(&PortSpec::new("br-f", "br-f", "geneve"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotOwned { kind: "port", .. }),
        "{err}"
    );
    println!("ensure_port on a foreign port: {err}");
    assert!(matches!(
        vs.delete_port("br-f", "br-f").await,
        Err(Error::NotOwned { .. })
    ));
    assert_eq!(
        vsctl(&sb, &["get", "interface", "br-f", "type"]),
        "internal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_port_geneve_tunnel() {
    let sb = sandbox();
    let vs = Vswitch::connect(&target(&sb)).await.unwrap();
    vs.ensure_bridge(&BridgeSpec::new("br-x", "netdev"))
        .await
        .unwrap();
    let mut spec = PortSpec::new("br-x", "gnv0", "geneve");
    spec.options = str_map([("remote_ip", "flow"), ("key", "flow")]);
    spec.ofport_request = Some(1);
    assert_eq!(vs.ensure_port(&spec).await.unwrap(), Ensured::Created);
    wait_vsctl(&sb, &["get", "interface", "gnv0", "ofport"], "1").await;
    assert_eq!(
        vsctl(
            &sb,
            &["get", "interface", "gnv0", "type", "options", "error"]
        ),
        "geneve\n{key=flow, remote_ip=flow}\n[]"
    );
    assert_eq!(vsctl(&sb, &["list-ports", "br-x"]), "gnv0");
    assert_eq!(
        vsctl(&sb, &["get", "port", "gnv0", "external_ids:kovs-owner"]),
        "kovs"
    );
    assert_eq!(vs.ensure_port(&spec).await.unwrap(), Ensured::Unchanged);
    let got = vs.by_name::<Interface>("gnv0").await.unwrap().unwrap();
    assert_eq!(got.valid_ofport(), Some(1));

    // Changed options (and a new ofport) are applied to the kovs port.
    spec.options.insert("csum".into(), "true".into());
    spec.ofport_request = Some(5);
    assert_eq!(
        vs.ensure_port(&spec).await.unwrap(),
        Ensured::Updated(vec!["options", "ofport_request"])
    );
    assert_eq!(
        vsctl(&sb, &["get", "interface", "gnv0", "options"]),
        "{csum=\"true\", key=flow, remote_ip=flow}"
    );
    wait_vsctl(&sb, &["get", "interface", "gnv0", "ofport"], "5").await;
    // Wrong bridge, missing bridge.
    assert!(matches!(
        vs.ensure_port(&PortSpec {
            bridge: "br-int".into(),
            ..spec.clone()
        })
        .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        vs.ensure_port(&PortSpec {
            bridge: "br-none".into(),
            ..spec.clone()
        })
        .await,
        Err(Error::NotFound(_))
    ));

    assert!(vs.delete_port("br-x", "gnv0").await.unwrap());
    assert_eq!(vsctl(&sb, &["list-ports", "br-x"]), "");
    assert_eq!(
        vsctl(&sb, &["--if-exists", "get", "interface", "gnv0", "ofport"]),
        "",
        "Port and Interface rows are garbage-collected"
    );
    assert!(!vs.delete_port("br-x", "gnv0").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_monitor_sees_ports_appear_renumber_and_go() {
    let sb = sandbox();
    let sock = sb.db_sock();
    let mut watch = Watch::<Interface>::spawn(WatchOptions::new(&target(&sb)));
    let initial = snapshot(&mut watch).await;
    assert!(initial
        .values()
        .any(|i| i.name == "br-int" && i.iface_type == "internal"));
    let is_pod_a = |i: &Interface| i.iface_id() == Some("pod-a.default");

    // A CNI plugin adds a pod's port with ovs-vsctl; ovs-vswitchd then assigns its ofport.
    let start = Instant::now();
    let child = spawn_vsctl(
        &sock,
        &[
            "add-port",
            "br-int",
            "pod-a",
            "--",
            "set",
            "interface",
            "pod-a",
            "type=internal",
            "external_ids:iface-id=pod-a.default",
        ],
    );
    let (seen, numbered, a) = appears(&mut watch, start, &is_pod_a).await;
    wait_ok(child).await;
    let ofport = a.valid_ofport().unwrap();
    assert_eq!(
        vsctl(&sb, &["get", "interface", "pod-a", "ofport"]),
        ofport.to_string()
    );
    println!("monitor: pod-a row seen {seen:?}, with ofport {ofport} {numbered:?} after spawning ovs-vsctl");
    assert!(
        numbered < Duration::from_secs(1),
        "ofport took {numbered:?}"
    );

    // Renumber.
    let start = Instant::now();
    let child = spawn_vsctl(&sock, &["set", "interface", "pod-a", "ofport_request=42"]);
    // ovs-vswitchd removes the port and adds it again: record each step the monitor shows.
    let mut steps = vec![a.ofport];
    let (_, renumbered) = next_matching(&mut watch, start, "pod-a renumber", |e| match e {
        WatchEvent::Modify { old, new } if is_pod_a(new) => {
            assert_eq!(
                old.ofport,
                *steps.last().unwrap(),
                "old row is the cached one"
            );
            steps.push(new.ofport);
            new.ofport == Some(42)
        }
        _ => false,
    })
    .await;
    wait_ok(child).await;
    println!(
        "monitor: pod-a renumbered to 42 seen {renumbered:?} after spawning ovs-vsctl \
         (ofport steps {steps:?})"
    );

    // Gone.
    let start = Instant::now();
    let child = spawn_vsctl(&sock, &["del-port", "br-int", "pod-a"]);
    let (_, gone) = next_matching(
        &mut watch,
        start,
        "pod-a delete",
        |e| matches!(e, WatchEvent::Delete(i) if is_pod_a(i) && i.ofport == Some(42)),
    )
    .await;
    wait_ok(child).await;
    println!("monitor: pod-a deletion seen {gone:?} after spawning ovs-vsctl");
    assert!(renumbered < Duration::from_secs(1) && gone < Duration::from_secs(1));

    // Monitor latency without process start-up: from the start of our own ensure_port (a read
    // and a write transaction) to the Insert on the monitor connection, 20 times.
    let vs = Vswitch::connect(&target(&sb)).await.unwrap();
    let (mut calls, mut to_insert, mut to_ofport) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..20 {
        let name = format!("pod-{n}");
        let mut spec = PortSpec::new("br-int", &name, "internal");
        spec.external_ids = str_map([("iface-id", name.as_str())]);
        let start = Instant::now();
        vs.ensure_port(&spec).await.unwrap();
        calls.push(start.elapsed());
        let (seen, numbered, _) = appears(&mut watch, start, &|i| i.name == name).await;
        to_insert.push(seen);
        to_ofport.push(numbered);
    }
    println!(
        "monitor: ensure_port call (2 transactions): {}",
        stats(calls)
    );
    println!(
        "monitor: ensure_port start -> Insert event: {}",
        stats(to_insert)
    );
    println!(
        "monitor: ensure_port start -> ofport assigned by ovs-vswitchd: {}",
        stats(to_ofport)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_config_flow_restore_wait() {
    let sb = sandbox();
    let vs = Vswitch::connect(&target(&sb)).await.unwrap();
    let mut watch = Watch::<OpenVSwitch>::spawn(WatchOptions::new(&target(&sb)));
    snapshot(&mut watch).await;
    vs.set_other_config("flow-restore-wait", "true")
        .await
        .unwrap();
    let (ev, _) = next_matching(&mut watch, Instant::now(), "other_config update", |_| true).await;
    assert!(
        matches!(&ev, WatchEvent::Modify { new, .. } if new.other_config["flow-restore-wait"] == "true"),
        "{ev:?}"
    );
    // Setting it again is not a change: no update.
    vs.set_other_config("flow-restore-wait", "true")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(watch.try_next(), None);
    assert_eq!(
        vsctl(
            &sb,
            &["get", "open_vswitch", ".", "other_config:flow-restore-wait"]
        ),
        "\"true\""
    );
    let root = vs.open_vswitch().await.unwrap();
    assert_eq!(root.other_config["flow-restore-wait"], "true");
    vs.set_other_config("flow-restore-wait", "false")
        .await
        .unwrap();
    assert_eq!(
        vsctl(
            &sb,
            &["get", "open_vswitch", ".", "other_config:flow-restore-wait"]
        ),
        "\"false\""
    );
    vs.remove_other_config("flow-restore-wait").await.unwrap();
    vs.remove_other_config("flow-restore-wait").await.unwrap();
    assert_eq!(
        vsctl(
            &sb,
            &[
                "--if-exists",
                "get",
                "open_vswitch",
                ".",
                "other_config:flow-restore-wait"
            ]
        ),
        ""
    );
}

/// A bare ovsdb-server of our own, which the test can kill and restart at will (the harness
/// cannot restart its ovsdb-server). Unix sockets only, so no netns is needed.
struct OwnOvsdb {
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnOvsdb {
    fn new() -> OwnOvsdb {
        let dir = std::env::temp_dir().join(format!("kovs-odb-{}", unique_name("t")));
        fs::create_dir_all(&dir).unwrap();
        let db = dir.join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()
            .unwrap();
        assert!(st.success());
        OwnOvsdb { dir, child: None }
    }

    fn sock(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts ovsdb-server serving `DIR/<sock_name>` and waits until it accepts connections.
    fn start(&mut self, sock_name: &str) {
        self.start_with(sock_name, &[]);
    }

    /// As [`OwnOvsdb::start`], with more ovsdb-server arguments (e.g. another `--remote`).
    fn start_with(&mut self, sock_name: &str, extra: &[String]) {
        assert!(self.child.is_none());
        let sock = self.sock(sock_name);
        let child = Command::new("ovsdb-server")
            .arg(self.dir.join("conf.db"))
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg(format!(
                "--unixctl={}",
                self.dir.join("ovsdb-server.ctl").display()
            ))
            .arg(format!(
                "--log-file={}",
                self.dir.join("ovsdb-server.log").display()
            ))
            .args(["-vconsole:off", "-vsyslog:off"])
            .args(extra)
            .envs(
                ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"].map(|v| (v, &self.dir)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ovsdb-server");
        self.child = Some(child);
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                start.elapsed() < SLOW,
                "ovsdb-server never listened on {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: the socket file stays behind, connections are reset.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn vsctl(&self, sock_name: &str, args: &[&str]) {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.sock(sock_name).display()))
            .args(["--no-wait", "--timeout=10"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnOvsdb {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn names(rows: &BTreeMap<ovsdb::Uuid, Interface>) -> Vec<&str> {
    let mut n: Vec<&str> = rows.values().map(|i| i.name.as_str()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vswitch_connects_again_after_ovsdb_server_restart() {
    let mut odb = OwnOvsdb::new();
    odb.start("db.sock");
    odb.vsctl("db.sock", &["init"]);
    let target = format!("unix:{}", odb.sock("db.sock").display());
    let vs = Vswitch::connect(&target).await.unwrap();
    let clone = vs.clone();
    assert!(vs.is_connected());
    vs.ensure_bridge(&BridgeSpec::new("br0", "netdev"))
        .await
        .unwrap();

    odb.kill();
    wait_until(
        || !vs.is_connected(),
        "the client notices the server is gone",
    )
    .await;
    // While it is away, a transaction fails with the reason, and nothing hangs.
    assert!(vs.by_name::<Bridge>("br0").await.is_err());

    odb.start("db.sock");
    // The next transaction connects again, for every clone.
    let br = clone.by_name::<Bridge>("br0").await.unwrap();
    assert!(br.is_some(), "the database kept br0");
    assert!(vs.is_connected());
    vs.ensure_connected().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resyncs_after_ovsdb_server_restart() {
    let mut odb = OwnOvsdb::new();
    odb.start("db.sock");
    odb.vsctl("db.sock", &["init"]);
    odb.vsctl("db.sock", &["add-br", "br0", "--", "add-port", "br0", "p1"]);
    let target = format!("unix:{}", odb.sock("db.sock").display());
    let mut opts = WatchOptions::new(&target);
    opts.backoff_max = Duration::from_millis(400);
    let mut watch = Watch::<Interface>::spawn(opts);
    assert_eq!(names(&snapshot(&mut watch).await), ["br0", "p1"]);

    // Server dies: the watch says so.
    odb.kill();
    let killed = Instant::now();
    let (ev, noticed) = next_matching(&mut watch, killed, "disconnect", |_| true).await;
    assert!(matches!(ev, WatchEvent::Disconnected(_)), "{ev:?}");
    println!("watch: disconnect noticed {noticed:?} after SIGKILL ({ev:?})");

    // While it is away from its usual socket, the database changes (served elsewhere).
    odb.start("other.sock");
    odb.vsctl(
        "other.sock",
        &["add-port", "br0", "p2", "--", "del-port", "br0", "p1"],
    );
    odb.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Back: a fresh snapshot, flagged as a resync, with the changes it missed.
    odb.start("db.sock");
    let back = Instant::now();
    let (ev, resynced) = next_matching(&mut watch, back, "resync", |_| true).await;
    match ev {
        WatchEvent::Snapshot { rows, resync } => {
            assert!(resync);
            assert_eq!(names(&rows), ["br0", "p2"]);
        }
        other => panic!("expected a resync snapshot, got {other:?}"),
    }
    println!(
        "watch: resync snapshot {resynced:?} after ovsdb-server came back (backoff max 400ms)"
    );
    // And it keeps following changes.
    let t = Instant::now();
    odb.vsctl("db.sock", &["add-port", "br0", "p3"]);
    next_matching(
        &mut watch,
        t,
        "p3 insert",
        |e| matches!(e, WatchEvent::Insert(i) if i.name == "p3"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_target() {
    // A free port: bind, note, release (ovsdb-server binds it a moment later).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut odb = OwnOvsdb::new();
    odb.start_with("db.sock", &[format!("--remote=ptcp:{port}:127.0.0.1")]);
    odb.vsctl("db.sock", &["init"]);
    let target = format!("tcp:127.0.0.1:{port}");
    let start = Instant::now();
    let vs = loop {
        match Vswitch::connect(&target).await {
            Ok(vs) => break vs,
            Err(e) if start.elapsed() > SLOW => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert!(vs
        .client()
        .list_dbs()
        .await
        .unwrap()
        .iter()
        .any(|d| d == DB));
    assert_eq!(
        vs.ensure_bridge(&BridgeSpec::new("br0", "netdev"))
            .await
            .unwrap(),
        Ensured::Created
    );
    assert!(matches!(
        Client::connect("ssl:127.0.0.1:1").await,
        Err(Error::BadTarget(_))
    ));
}
