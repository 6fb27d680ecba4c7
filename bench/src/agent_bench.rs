//! Benchmarks of the running agent against a real private ovs-vswitchd: restart over installed
//! flows, per-pod latency, memory; and the delta path against `ovs-ofctl replace-flows`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowlib::batch::Batch;
use flowlib::conn::{BundleOptions, ConnOptions, Connection, Event};
use flowlib::wire::flow::FlowModCommand;
use flowlib::wire::message::{
    encode_flow_monitor_request, monitor_flags, FlowUpdate, Message, MultipartReply,
};
use flowlib::wire::{Field, Match};
use kovs_tests::{AgentProcess, OvsSandbox, SandboxOptions};
use pipelines::flowset::FlowSet;

use crate::compile_bench::round;

/// A Kubernetes List (JSON) of `nodes` nodes, `subnets` overlay subnets and `pods` pods spread
/// over them; pods `extra..` (on node0, in subnet 0) are listed too, for latency samples.
pub fn state_json(pods: usize, nodes: usize, subnets: usize, extra: usize) -> String {
    let mut items = Vec::with_capacity(pods + nodes + subnets + extra);
    for i in 0..nodes {
        items.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("node{i}")},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("172.18.{}.{}", i / 250, 1 + i % 250)}]}
        }));
    }
    for s in 0..subnets {
        items.push(serde_json::json!({
            "apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": format!("subnet-{s}")},
            "spec": {"cidrBlock": format!("10.{}.0.0/16", s + 1), "gateway": format!("10.{}.0.1", s + 1)}
        }));
    }
    let pod = |idx: usize, node: usize, s: usize, k: usize| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{idx}"), "namespace": "default", "annotations": {
                "ovn.kubernetes.io/ip_address": format!("10.{}.{}.{}", s + 1, 1 + k / 250, 2 + k % 250),
                "ovn.kubernetes.io/mac_address": format!("00:01:{:02x}:{:02x}:{:02x}:{:02x}", (idx >> 24) & 0xff, (idx >> 16) & 0xff, (idx >> 8) & 0xff, idx & 0xff),
                "ovn.kubernetes.io/logical_switch": format!("subnet-{s}"),
            }},
            "spec": {"nodeName": format!("node{node}")}
        })
    };
    for idx in 0..pods {
        items.push(pod(idx, idx % nodes, idx % subnets, idx / subnets));
    }
    for j in 0..extra {
        let idx = pods + j;
        items.push(pod(idx, 0, 0, pods / subnets + 1 + j));
    }
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

pub struct RunningAgent(AgentProcess);

impl RunningAgent {
    pub fn start(
        agent: &Path,
        sb: &OvsSandbox,
        state: &Path,
        tag: &str,
    ) -> Result<RunningAgent, String> {
        let mut cmd = std::process::Command::new(agent);
        cmd.args(["run", "--node", "node0", "--state"])
            .arg(state)
            .arg("--ovs-rundir")
            .arg(sb.dir())
            .args(["--datapath", "netdev", "--metrics-addr", "127.0.0.1:0"])
            .env(
                "KOVS_LOG",
                std::env::var("KOVS_BENCH_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            );
        AgentProcess::spawn(cmd, sb.dir().join(format!("agent-{tag}.log")))
            .map(RunningAgent)
            .map_err(|e| format!("kovs-agent: {e}"))
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    pub fn log_text(&self) -> String {
        self.0.log()
    }

    /// Waits for the `ready` line; returns the time since start.
    pub fn wait_ready(&self, within: Duration) -> Result<Duration, String> {
        if self.0.wait_log(" ready", within) {
            Ok(self.0.started().elapsed())
        } else {
            Err(format!(
                "agent not ready after {within:?}:\n{}",
                self.0.log()
            ))
        }
    }

    pub fn stop(self) {
        self.0.stop();
    }
}

pub fn agent_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = me.with_file_name("kovs-agent");
    p.exists().then_some(p.clone()).ok_or(format!(
        "{} not found: cargo build --release -p kovs-agent",
        p.display()
    ))
}

/// Sums the flow_mods of every `batch` line of an agent log.
fn flow_mods_in(log: &str) -> u64 {
    let mut n = 0;
    for l in log.lines().filter(|l| l.contains(" batch ")) {
        for key in ["adds=", "modifies=", "deletes="] {
            if let Some(v) = l
                .split(key)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
            {
                n += v;
            }
        }
    }
    n
}

fn rss_bytes(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A `kB` line of `/proc/PID/status`, in bytes.
fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn installed_flows(sb: &OvsSandbox) -> Result<usize, String> {
    let agg = sb
        .ofctl(&["dump-aggregate", &sb.mgmt_target("br-int")])
        .map_err(|e| e.to_string())?;
    agg.split("flow_count=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or(format!("unexpected dump-aggregate output: {agg}"))
}

/// `kovs-bench restart --flows N`: agent restart over N installed flows.
pub fn restart(flows: usize) -> Result<serde_json::Value, String> {
    let agent = agent_binary()?;
    let (nodes, subnets) = (100, 50);
    let pods = flows / 3;
    let sb = OvsSandbox::start(SandboxOptions {
        netns: false,
        bridges: vec![],
    })
    .map_err(|e| e.to_string())?;
    let state = sb.dir().join("state.json");
    std::fs::write(&state, state_json(pods, nodes, subnets, 0)).map_err(|e| e.to_string())?;
    let first = RunningAgent::start(&agent, &sb, &state, "first")?;
    let first_ready = first.wait_ready(Duration::from_secs(120))?;
    let n = installed_flows(&sb)?;
    first.stop();
    let second = RunningAgent::start(&agent, &sb, &state, "second")?;
    let ready = second.wait_ready(Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(200));
    let rss = rss_bytes(second.pid());
    let (anon, file, peak) = (
        status_kb(second.pid(), "RssAnon:"),
        status_kb(second.pid(), "RssFile:"),
        status_kb(second.pid(), "VmHWM:"),
    );
    let log = second.log_text();
    second.stop();
    let mods = flow_mods_in(&log);
    let load_ms = log
        .lines()
        .find(|l| l.contains(" ready"))
        .map(|_| ready.as_secs_f64() * 1e3)
        .unwrap_or(0.0);
    Ok(serde_json::json!({
        "bench": "restart",
        "flows": n,
        "flow_mods_sent": mods,
        "ready_ms": round(load_ms, 1),
        "first_start_ready_ms": round(first_ready.as_secs_f64() * 1e3, 1),
        "agent_rss_bytes": rss,
        "rss_bytes_per_flow": round(rss as f64 / n.max(1) as f64, 1),
        "rss_anon_bytes": anon,
        "rss_file_bytes": file,
        "peak_rss_bytes": peak,
    }))
}

/// How long the delta bench lets a switch settle after installing the starting flows.
const SETTLE: Duration = Duration::from_secs(1);

/// `kovs-bench delta --flows N --change-pct P`: a node holding N compiled flows; a state change
/// (pods changing their MAC) touching P% of them. kovs: the compiler's incremental delta sent
/// as one bundle. ovs-ofctl: `--bundle replace-flows` with the node's new flow table as text
/// (its own dump and diff), on another switch holding the same flows.
pub fn delta(flows: usize, pct: f64) -> Result<serde_json::Value, String> {
    use crate::synth::{cluster, node_name, pod_object, Shape};
    use pipelines::model::{Change, Object};
    use pipelines::{Compiler, NodeConfig, TunnelType};
    // Overlay pods elsewhere give three flows here, underlay ones none: ~2.5 per pod overall.
    let shape = Shape {
        pods: flows * 2 / 5,
        nodes: 100,
        subnets: 50,
    };
    let mut compiler = Compiler::new(
        NodeConfig::new(node_name(0), TunnelType::Geneve),
        cluster(&shape),
    );
    let old: Vec<String> = bridge0_text(&compiler.flows());
    let n = old.len();
    // Pods on other nodes (three flows each here), spread over the set.
    let want = ((n as f64) * pct / 100.0 / 3.0).round().max(1.0) as usize;
    let step = (shape.pods / want).max(1);
    let changes: Vec<Change> = (0..want)
        .map(|k| {
            let idx = 1 + k * step;
            let mut p = pod_object(idx, &shape);
            p.metadata.annotations.insert(
                "ovn.kubernetes.io/mac_address",
                format!(
                    "02:99:{:02x}:{:02x}:{:02x}:{:02x}",
                    (idx >> 24) & 0xff,
                    (idx >> 16) & 0xff,
                    (idx >> 8) & 0xff,
                    idx & 0xff
                ),
            );
            Change::Apply(Object::Pod(p))
        })
        .collect();

    // kovs
    let sb = OvsSandbox::start(SandboxOptions::default()).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (kovs_ms, compile_ms, touched) = rt.block_on(async {
        let conn = Connection::connect(&sb.mgmt_target("br-int"), ConnOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        flowlib::client::ensure_tlv_maps(&conn, &[geneve_tlv()])
            .await
            .map_err(|e| e.to_string())?;
        let mut b = Batch::with_capacity(n * 120, n);
        for f in compiler.flows().iter().filter(|f| f.bridge() == 0) {
            let _ = b.push(|out| f.encode_flow_mod(FlowModCommand::Add, 0, out));
        }
        let out = conn
            .commit_bundle(b.iter(), &BundleOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        if !out.is_ok() {
            return Err(out.to_string());
        }
        // The change comes long after the install in a cluster: let the switch finish what the
        // install left it (freeing replaced rules, revalidation) before timing, as for ofctl.
        tokio::time::sleep(SETTLE).await;
        // Measured: compile the change incrementally, send the delta in one bundle.
        let t = Instant::now();
        let d = compiler.apply(changes);
        let compile_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut b = Batch::with_capacity(d.len() * 120, d.len());
        for (cmd, fl) in [
            (FlowModCommand::DeleteStrict, &d.delete),
            (FlowModCommand::Add, &d.add),
            (FlowModCommand::ModifyStrict, &d.modify),
        ] {
            for f in fl.iter().filter(|f| f.bridge() == 0) {
                let _ = b.push(|out| f.encode_flow_mod(cmd, 0, out));
            }
        }
        let out = conn
            .commit_bundle(b.iter(), &BundleOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if !out.is_ok() {
            return Err(out.to_string());
        }
        Ok::<_, String>((ms, compile_ms, b.len()))
    })?;
    let now = installed_flows(&sb)?;
    let expected = compiler.flow_counts().bridge(0);
    if now != expected {
        return Err(format!(
            "kovs: switch holds {now} flows, expected {expected}"
        ));
    }
    drop(sb);

    // ovs-ofctl replace-flows on another switch holding the same old flows
    let new = bridge0_text(&compiler.flows());
    let sb = OvsSandbox::start(SandboxOptions::default()).map_err(|e| e.to_string())?;
    let write = |name: &str, fl: &[String]| -> Result<String, String> {
        let p = sb.dir().join(name);
        let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(|e| e.to_string())?);
        for f in fl {
            writeln!(w, "{f}").map_err(|e| e.to_string())?;
        }
        Ok(p.display().to_string())
    };
    let old_file = write("old.flows", &old)?;
    let new_file = write("new.flows", &new)?;
    let target = sb.mgmt_target("br-int");
    sb.ofctl(&[
        "add-tlv-map",
        &target,
        "{class=0x0102,type=0x80,len=4}->tun_metadata0",
    ])
    .map_err(|e| e.to_string())?;
    sb.ofctl(&["--bundle", "add-flows", &target, &old_file])
        .map_err(|e| e.to_string())?;
    std::thread::sleep(SETTLE);
    let t = Instant::now();
    sb.ofctl(&["--bundle", "replace-flows", &target, &new_file])
        .map_err(|e| e.to_string())?;
    let ofctl_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(serde_json::json!({
        "bench": "delta",
        "flows": n,
        "flow_mods": touched,
        "kovs_ms": round(kovs_ms, 2),
        "kovs_compile_ms": round(compile_ms, 2),
        "ofctl_ms": round(ofctl_ms, 1),
        "ratio": round(kovs_ms / ofctl_ms, 4),
    }))
}

fn geneve_tlv() -> flowlib::wire::message::TlvMap {
    use pipelines::tables::*;
    flowlib::wire::message::TlvMap {
        option_class: GENEVE_OPT_CLASS,
        option_type: GENEVE_OPT_TYPE,
        option_len: GENEVE_OPT_LEN,
        index: GENEVE_OPT_INDEX as u16,
    }
}

fn bridge0_text(set: &FlowSet) -> Vec<String> {
    set.iter()
        .filter(|f| f.bridge() == 0)
        .filter_map(|f| f.to_flow().ok().map(|f| f.to_string()))
        .collect()
}

/// One OVSDB transaction over a unix socket (no ovs-vsctl process in the measurement).
fn ovsdb_transact(db: &Path, ops: serde_json::Value) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(db).map_err(|e| e.to_string())?;
    let req = serde_json::json!({"method": "transact", "params": std::iter::once(serde_json::json!("Open_vSwitch")).chain(ops.as_array().cloned().unwrap_or_default()).collect::<Vec<_>>(), "id": 1});
    s.write_all(req.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("ovsdb closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf) {
            if v.get("id") == Some(&serde_json::json!(1)) {
                return Ok(v);
            }
            buf.clear();
        }
    }
}

/// `kovs-bench pod-latency --pods N [--nodes M]`: on node0 of a cluster of N pods over M nodes
/// (default 100), whose own pods (N/M) are running with their ports bound, a new pod's port is added (one OVSDB
/// transaction, as a CNI does) and timed until its classifier flow is in OVS, seen by a flow
/// monitor of our own; then the pod goes (its port is deleted) and the next sample comes, so the
/// node keeps its size. Two times per sample: from the port appearing (OVSDB reports its ofport,
/// seen by an OVSDB monitor of our own) and from the OVSDB request (adds ovs-vswitchd's own work
/// of creating the port).
pub fn pod_latency(
    pods: usize,
    nodes: usize,
    samples: usize,
    kind: PortKind,
) -> Result<serde_json::Value, String> {
    let nodes = nodes.max(1);
    let agent = agent_binary()?;
    let sb = OvsSandbox::start(SandboxOptions {
        netns: true,
        bridges: vec!["br-int".into()],
    })
    .map_err(|e| e.to_string())?;
    let state = sb.dir().join("state.json");
    std::fs::write(&state, state_json(pods, nodes, 50, samples)).map_err(|e| e.to_string())?;
    let a = RunningAgent::start(&agent, &sb, &state, "latency")?;
    a.wait_ready(Duration::from_secs(120))?;
    // node0's own pods (state_json puts pod i on node i % nodes).
    let resident: Vec<(String, String)> = (0..pods)
        .filter(|i| i % nodes == 0)
        .map(|i| (format!("rp{i}"), format!("pod-{i}.default")))
        .collect();
    let names: Vec<String> = (0..samples).map(|j| format!("lp{j}")).collect();
    let resident_names: Vec<String> = resident.iter().map(|(n, _)| n.clone()).collect();
    kind.prepare(&sb, &resident_names)?;
    kind.prepare(&sb, &names)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let db = sb.db_sock();
    let (mut from_port, mut from_request) = (Vec::with_capacity(samples), Vec::new());
    rt.block_on(async {
        let mut ofports = OfportWatch::start(&db)?;
        let conn = Connection::connect(&sb.mgmt_target("br-int"), ConnOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let mut events = conn.take_events().ok_or("no events")?;
        let mut req = Vec::new();
        encode_flow_monitor_request(7, monitor_flags::ADD, 0, &Match::new(), 0, &mut req);
        conn.multipart(req)
            .await
            .map_err(|e| format!("flow monitor: {e}"))?;
        // The node's running pods first, untimed.
        if !resident.is_empty() {
            kind.add_ports(&sb, "br-int", &resident)?;
            // Each pod has two classifier flows (IP and ARP): count ports, not flows.
            let mut bound = std::collections::HashSet::new();
            while bound.len() < resident.len() {
                let Some((ports, _)) = classified(&mut events, Duration::from_secs(30)).await
                else {
                    return Err(format!(
                        "only {} of {} resident pods got flows within 30 s",
                        bound.len(),
                        resident.len()
                    ));
                };
                bound.extend(ports);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for (j, name) in names.iter().enumerate() {
            let iface_id = format!("pod-{}.default", pods + j);
            let ops = kind.add_port_ops("br-int", name, &iface_id);
            let t0 = Instant::now();
            let db2 = db.clone();
            tokio::task::spawn_blocking(move || ovsdb_transact(&db2, ops))
                .await
                .map_err(|e| e.to_string())??;
            let (ofport, t_port) = ofports
                .wait(name, Duration::from_secs(5))
                .await
                .ok_or(format!("{name} got no ofport within 5 s"))?;
            let t_flow = loop {
                let Some((ports, t)) = classified(&mut events, Duration::from_secs(5)).await else {
                    return Err(format!(
                        "no flow for {iface_id} (ofport {ofport}) within 5 s"
                    ));
                };
                if ports.contains(&ofport) {
                    break t;
                }
            };
            from_port.push(t_flow.saturating_duration_since(t_port).as_secs_f64() * 1e3);
            from_request.push((t_flow - t0).as_secs_f64() * 1e3);
            // The pod goes; the next one comes to a node of the same size.
            sb.vsctl(&["del-port", "br-int", name])
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<(), String>(())
    })?;
    // The agent's own account of each port and batch, for finding where the time went.
    if std::env::var_os("KOVS_BENCH_SHOW_LOG").is_some() {
        eprintln!("{}", a.log_text());
    }
    a.stop();
    let pick = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        round(v[((v.len() as f64 - 1.0) * q).round() as usize], 2)
    };
    Ok(serde_json::json!({
        "bench": "pod-latency",
        "pods": pods,
        "nodes": nodes,
        "node_ports": resident_names.len() + 1,
        "port_type": kind.as_str(),
        "samples": from_port.len(),
        "p50_ms": pick(&mut from_port, 0.5),
        "p99_ms": pick(&mut from_port, 0.99),
        "max_ms": pick(&mut from_port, 1.0),
        "from_request_p50_ms": pick(&mut from_request, 0.5),
        "from_request_p99_ms": pick(&mut from_request, 0.99),
        "from_request_max_ms": pick(&mut from_request, 1.0),
    }))
}

/// The in_ports of the pod classifier flows (table 0, priority 200) in the next flow monitor
/// update that has any, and when it arrived; `None` after `within`.
async fn classified(
    events: &mut tokio::sync::mpsc::Receiver<Event>,
    within: Duration,
) -> Option<(Vec<i64>, Instant)> {
    let deadline = Instant::now() + within;
    let mut ports = Vec::new();
    while ports.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Event::Message(f) = tokio::time::timeout(left, events.recv()).await.ok()?? else {
            continue;
        };
        let Ok((
            _,
            Message::MultipartReply {
                body: MultipartReply::FlowMonitor(ups),
                ..
            },
        )) = Message::decode(f.as_slice())
        else {
            continue;
        };
        ports.extend(ups.iter().filter_map(|u| match u {
            FlowUpdate::Added(full) if full.table == 0 && full.priority == 200 => {
                full.matches.get(Field::InPort).map(|m| m.value as i64)
            }
            _ => None,
        }));
    }
    Some((ports, Instant::now()))
}

/// Ofports as ovsdb-server reports them, by interface name, with when they were seen: an OVSDB
/// `monitor` of the Interface table read on a thread of its own, so the time is taken on arrival.
struct OfportWatch {
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, i64, Instant)>,
    seen: std::collections::HashMap<String, (i64, Instant)>,
}

impl OfportWatch {
    fn start(db: &Path) -> Result<OfportWatch, String> {
        let mut s = UnixStream::connect(db).map_err(|e| format!("{}: {e}", db.display()))?;
        let req = serde_json::json!({"method": "monitor", "id": "ofports", "params":
            ["Open_vSwitch", null, {"Interface": {"columns": ["name", "ofport"]}}]});
        s.write_all(req.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut echo = s.try_clone().map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let values = serde_json::Deserializer::from_reader(std::io::BufReader::new(s))
                .into_iter::<serde_json::Value>();
            for v in values {
                let Ok(v) = v else { return };
                let now = Instant::now();
                if v["method"] == "echo" {
                    let reply =
                        serde_json::json!({"id": v["id"], "result": v["params"], "error": null});
                    let _ = echo.write_all(reply.to_string().as_bytes());
                    continue;
                }
                let rows = if v["method"] == "update" {
                    &v["params"][1]["Interface"]
                } else {
                    &v["result"]["Interface"]
                };
                for row in rows.as_object().into_iter().flat_map(|m| m.values()) {
                    let new = &row["new"];
                    if let (Some(name), Some(ofport)) =
                        (new["name"].as_str(), new["ofport"].as_i64())
                    {
                        if ofport > 0 && tx.send((name.to_string(), ofport, now)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(OfportWatch {
            rx,
            seen: Default::default(),
        })
    }

    /// The first ofport seen for `name` since the last call for it, and when.
    async fn wait(&mut self, name: &str, within: Duration) -> Option<(i64, Instant)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(hit) = self.seen.remove(name) {
                return Some(hit);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let (n, port, t) = tokio::time::timeout(left, self.rx.recv()).await.ok()??;
            self.seen.entry(n).or_insert((port, t));
        }
    }
}

/// What backs a benchmark's pod port: an OVS internal port (a tap device ovs-vswitchd creates
/// while it adds the port), or the host end of a veth pair made beforehand, as a CNI plugin does
/// (Kube-OVN's CNI adds the host end of the pod's veth to br-int).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    Internal,
    Veth,
}

impl PortKind {
    pub fn parse(s: &str) -> Result<PortKind, String> {
        match s {
            "internal" => Ok(PortKind::Internal),
            "veth" => Ok(PortKind::Veth),
            _ => Err(format!("--port-type {s}: want veth or internal")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Internal => "internal",
            PortKind::Veth => "veth",
        }
    }

    /// Creates what must exist before the port is added (untimed): for a veth, the pair, both
    /// ends up, inside the sandbox's netns (deleted with it). One `ip -batch` for all names.
    fn prepare(self, sb: &OvsSandbox, names: &[String]) -> Result<(), String> {
        if self == PortKind::Internal || names.is_empty() {
            return Ok(());
        }
        if sb.netns().is_none() {
            return Err("veth ports need a sandbox with its own netns".into());
        }
        let mut batch = String::new();
        for n in names {
            batch.push_str(&format!(
                "link add {n} type veth peer name {n}p\nlink set {n} up\nlink set {n}p up\n"
            ));
        }
        let file = sb.dir().join("veths.batch");
        std::fs::write(&file, batch).map_err(|e| e.to_string())?;
        let out = sb
            .exec("ip", &["-batch", &file.display().to_string()])
            .map_err(|e| format!("ip -batch: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip -batch: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Adds `(name, iface-id)` ports to `bridge` in one `ovs-vsctl` call (setup, untimed).
    fn add_ports(
        self,
        sb: &OvsSandbox,
        bridge: &str,
        ports: &[(String, String)],
    ) -> Result<(), String> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = Vec::new();
        for (name, iface_id) in ports {
            args.extend(
                [
                    "--",
                    "add-port",
                    bridge,
                    name,
                    "--",
                    "set",
                    "interface",
                    name,
                ]
                .map(String::from),
            );
            if self == PortKind::Internal {
                args.push("type=internal".into());
            }
            args.push(format!("external_ids:iface-id={iface_id}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sb.vsctl(&args).map(drop).map_err(|e| e.to_string())
    }

    /// One OVSDB transaction adding port `name` to `bridge`, bound to `iface_id` (as a CNI binds
    /// a pod): an internal interface, or the existing device `name` (type "", a system port).
    fn add_port_ops(self, bridge: &str, name: &str, iface_id: &str) -> serde_json::Value {
        let mut iface = serde_json::json!({"name": name,
            "external_ids": ["map", [["iface-id", iface_id]]]});
        if self == PortKind::Internal {
            iface["type"] = "internal".into();
        }
        serde_json::json!([
            {"op": "insert", "table": "Interface", "row": iface, "uuid-name": "i"},
            {"op": "insert", "table": "Port", "row": {"name": name, "interfaces": ["named-uuid", "i"]}, "uuid-name": "p"},
            {"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                "mutations": [["ports", "insert", ["set", [["named-uuid", "p"]]]]]}
        ])
    }
}

/// `kovs-bench port-add-stall --ports N [--samples K]`: no agent runs. On a userspace-datapath
/// bridge already holding N internal ports, one more is added (one OVSDB transaction) and a
/// barrier round trip is polled for 80 ms; the worst one is how long ovs-vswitchd's OpenFlow
/// channel stalled. This is the floor under `pod-latency`, whose pods are internal ports too.
pub fn port_add_stall(
    ports: usize,
    samples: usize,
    kind: PortKind,
) -> Result<serde_json::Value, String> {
    let samples = samples.max(1);
    let sb = OvsSandbox::start(SandboxOptions {
        netns: true,
        bridges: vec!["br-int".into()],
    })
    .map_err(|e| e.to_string())?;
    let names: Vec<String> = (0..ports).map(|i| format!("lp{i}")).collect();
    let extra: Vec<String> = (0..samples).map(|k| format!("x{k}")).collect();
    kind.prepare(&sb, &names)?;
    kind.prepare(&sb, &extra)?;
    let existing: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), format!("{n}.bench")))
        .collect();
    kind.add_ports(&sb, "br-int", &existing)?;
    std::thread::sleep(Duration::from_secs(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let db = sb.db_sock();
    let (idle, mut stalls) = rt.block_on(async {
        let conn = Connection::connect(&sb.mgmt_target("br-int"), ConnOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let barrier_ms = || async {
            let t = Instant::now();
            conn.barrier().await.map_err(|e| e.to_string())?;
            Ok::<f64, String>(t.elapsed().as_secs_f64() * 1e3)
        };
        let mut idle = Vec::with_capacity(50);
        for _ in 0..50 {
            idle.push(barrier_ms().await?);
        }
        let mut stalls = Vec::with_capacity(samples);
        for name in &extra {
            let ops = kind.add_port_ops("br-int", name, &format!("{name}.bench"));
            let db2 = db.clone();
            tokio::task::spawn_blocking(move || ovsdb_transact(&db2, ops))
                .await
                .map_err(|e| e.to_string())??;
            let (t0, mut worst) = (Instant::now(), 0f64);
            while t0.elapsed() < Duration::from_millis(80) {
                worst = worst.max(barrier_ms().await?);
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            stalls.push(worst);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, String>((idle, stalls))
    })?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    let mut idle = idle;
    let idle_ms = median(&mut idle);
    let stall_p50 = median(&mut stalls);
    Ok(serde_json::json!({
        "bench": "port-add-stall",
        "ports": ports,
        "port_type": kind.as_str(),
        "samples": stalls.len(),
        "idle_barrier_ms": round(idle_ms, 3),
        "stall_p50_ms": round(stall_p50, 1),
        "stall_max_ms": round(stalls[stalls.len() - 1], 1),
    }))
}

/// `kovs-bench memory --flows N`: live heap of each part of the agent's state for a node
/// holding ~N flows (counting allocator), to see where memory goes.
pub fn memory(flows: usize) -> Result<serde_json::Value, String> {
    use crate::alloc_count::live_bytes;
    let pods = flows / 3;
    let dir = std::env::temp_dir().join(format!("kovs-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("state.json");
    std::fs::write(&file, state_json(pods, 100, 50, 0)).map_err(|e| e.to_string())?;
    let b0 = live_bytes();
    let loaded = pipelines::model::load_path(&file);
    let b1 = live_bytes();
    let objects = {
        let all = loaded; // the rest (the location index) is dropped here
        all.objects
    };
    let b2 = live_bytes();
    // What the agent holds between changes: the compiler (validated state, plan, the few raw
    // objects it cannot do without), after the loaded objects are gone.
    let cfg = pipelines::NodeConfig::new("node0", pipelines::TunnelType::Geneve);
    let compiler = pipelines::Compiler::new(cfg, objects);
    let b3 = live_bytes();
    // Made only for a resync or `kovs-agent compile`, then dropped.
    let set = compiler.flows();
    let b4 = live_bytes();
    let _ = std::fs::remove_dir_all(&dir);
    let n = set.len() as f64;
    Ok(serde_json::json!({
        "bench": "memory",
        "flows": set.len(),
        "pods": pods,
        "loaded_bytes_per_flow": round((b1 - b0) as f64 / n, 1),
        "objects_bytes_per_flow": round((b2 - b0) as f64 / n, 1),
        "compiler_bytes_per_flow": round(b3.saturating_sub(b0) as f64 / n, 1),
        "flowset_bytes_per_flow": round((b4 - b3) as f64 / n, 1),
    }))
}
