//! `kovs-agent run`: keeps a real ovs-vswitchd in the desired state.
//!
//! One loop owns everything: the compiler, each bridge's installed flows, the port map. Inputs
//! (state files, OVSDB Interface updates, switch connection events and flow-monitor updates)
//! arrive on channels; bursts are drained before compiling, so events close together become
//! one delta and one bundle per bridge.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowlib::client::ensure_tlv_maps;
use flowlib::conn::{Connection, Event, Switch, SwitchOptions};
use flowlib::wire::message::{
    encode_flow_monitor_request, monitor_flags, FlowUpdate, Message, MultipartReply, TlvMap,
};
use flowlib::wire::Match;
use pipelines::flowset::BridgeId;
use pipelines::ids::{object_id, pod_object_id};
use pipelines::model::{Loaded, ObjectKind};
use pipelines::tables::*;
use pipelines::{Compiler, Delta, NodeConfig, TunnelType};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::observe::http::{self, HttpState};
use crate::observe::metrics::Metrics;
use crate::ovsdb::{BridgeSpec, Interface, PortSpec, Vswitch, Watch, WatchEvent, WatchOptions};
use crate::reconcile::flows::sync::{BridgeSync, SyncReport};
use crate::reconcile::node_port as nodeport;
use crate::reconcile::provider::{ProviderEvent, ProviderNetworks};
use crate::sources::files::StateWatcher;
use crate::sys::netlink::Netlink;

/// The longest one resync or delta may take before the connection is given up and redone.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often flows are compared by dump on a switch without a flow monitor.
const DRIFT_CHECK_PERIOD: Duration = Duration::from_secs(60);

/// The agent's settings; each flag also reads from the environment (Kube-OVN's names where it has them).
#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub state: Vec<String>,
    pub ovs_rundir: String,
    pub ovsdb: String,
    pub bridge: String,
    pub datapath: String,
    pub tunnel: TunnelType,
    pub encap_ip: Option<Ipv4Addr>,
    pub metrics_addr: SocketAddr,
    /// Provider-network status (Kube-OVN's node labels) written here as JSON, when set.
    pub status_file: Option<std::path::PathBuf>,
}

impl Config {
    pub fn datapath_type(&self) -> &str {
        if self.datapath == "netdev" {
            "netdev"
        } else {
            "system"
        }
    }

    pub fn mgmt(&self, bridge: &str) -> String {
        format!("unix:{}/{bridge}.mgmt", self.ovs_rundir)
    }
}

/// What comes into the loop.
enum Input {
    Switch(BridgeId, Event),
}

struct Bridge {
    sync: BridgeSync,
    switch: Switch,
    conn: Option<Connection>,
    /// A full resync is due (new connection, drift seen).
    resync_at: Option<Instant>,
    /// The connection (by generation) that last got a full sync: deltas go only to it.
    synced_generation: Option<u64>,
    /// A full sync has succeeded once (readiness).
    synced_once: bool,
    /// The connection (by generation) a flow monitor was requested on.
    monitored_generation: Option<u64>,
    /// The connection (by generation; 0: none) whose switch refused the flow monitor: its
    /// drift is found by the periodic comparison.
    monitor_refused: Arc<AtomicU64>,
}

/// Runs the agent until SIGTERM or Ctrl-C.
pub async fn run(cfg: Config) -> Result<(), String> {
    let metrics = Metrics::new();
    let http_state = HttpState::new(metrics.clone());
    let server = http::bind(cfg.metrics_addr)
        .await
        .map_err(|e| format!("--metrics-addr {}: {e}", cfg.metrics_addr))?;
    info!(addr = %server.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics /healthz /readyz /status");
    tokio::spawn(server.run(http_state.clone()));

    // OVSDB: the bridge, the tunnel port for the chosen type, the node port.
    let vs = connect_ovsdb(&cfg, &metrics).await;
    let tunnel_port = cfg.tunnel.port_name();
    vs.ensure_bridge(&BridgeSpec::new(&cfg.bridge, cfg.datapath_type()))
        .await
        .map_err(|e| format!("ovsdb: ensuring {}: {e}", cfg.bridge))?;
    for other in [TunnelType::Geneve, TunnelType::Vxlan, TunnelType::Stt] {
        if other != cfg.tunnel {
            // A restart with another tunnel type replaces kovs's old tunnel port.
            let _ = vs.delete_port(&cfg.bridge, &other.port_name()).await;
        }
    }
    let mut tp = PortSpec::new(&cfg.bridge, &tunnel_port, cfg.tunnel.name());
    tp.options.insert("remote_ip".into(), "flow".into());
    tp.options.insert("key".into(), "flow".into());
    if let Some(ip) = cfg.encap_ip {
        tp.options.insert("local_ip".into(), ip.to_string());
    }
    tp.ofport_request = Some(DEFAULT_TUNNEL_OFPORT);
    vs.ensure_port(&tp)
        .await
        .map_err(|e| format!("ovsdb: ensuring {tunnel_port}: {e}"))?;
    let mut np = PortSpec::new(&cfg.bridge, NODE_PORT_NAME, "internal");
    np.ofport_request = Some(DEFAULT_NODE_OFPORT);
    vs.ensure_port(&np)
        .await
        .map_err(|e| format!("ovsdb: ensuring {NODE_PORT_NAME}: {e}"))?;

    // Interfaces: iface-id -> ofport for pods, and the ofports of kovs's own ports.
    let mut iface_watch: Watch<Interface> = Watch::spawn(WatchOptions::new(&cfg.ovsdb));
    let mut ports = Ports::default();
    if let Some(WatchEvent::Snapshot { rows, .. }) = iface_watch.next().await {
        for r in rows.values() {
            ports.upsert(r);
        }
    }

    // State.
    let mut watcher = StateWatcher::new(&cfg.state);
    // Only the objects and errors are kept (the locations index every object by key).
    let Loaded {
        objects, errors, ..
    } = load_apart(&mut watcher)
        .ok_or("state: nothing to load")?
        .loaded;
    for e in &errors {
        warn!("state: {e}");
        metrics.error("state");
    }
    let mut node_cfg = NodeConfig::new(&cfg.node, cfg.tunnel);
    ports.fill(&mut node_cfg, &tunnel_port);
    let mut compiler = Compiler::new(node_cfg, objects);
    if !compiler.state().nodes.contains_key(&cfg.node) {
        warn!(node = %cfg.node, "this node is not in the state: no flows until it appears");
    }
    report_rejections(&compiler, &metrics);

    // Provider networks: NICs onto br-<pn>, then the patch ports joining them to br-int.
    let mut providers = ProviderNetworks::new(
        vs.clone(),
        cfg.node.clone(),
        cfg.datapath_type().to_string(),
    )
    .map_err(|e| format!("netlink: {e}"))?;
    for ev in providers.restore_all_orphans(compiler.state()).await {
        info!("provider network: {ev}");
    }
    sync_providers(&mut providers, &vs, &cfg, &compiler, &ports).await;

    // One switch connection per bridge, events merged into one channel.
    let (tx, mut rx) = mpsc::channel::<Input>(4096);
    let mut bridges: BTreeMap<BridgeId, Bridge> = BTreeMap::new();
    connect_bridge(&mut bridges, 0, &cfg.bridge, &cfg, &tx)?;
    connect_providers(&mut bridges, &mut compiler, &providers, &cfg, &tx)?;
    let mut last_status_file = String::new();
    write_status_file(&cfg, &providers, &mut last_status_file);

    // The host side of the node port.
    let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
    let mut node_port = NodePortSync::default();

    let mut tick = tokio::time::interval(Duration::from_millis(50));
    // Not `interval`: its first tick is immediate, which would dump every flow again right
    // after the start-up resync.
    let mut periodic = tokio::time::interval_at(
        tokio::time::Instant::now() + DRIFT_CHECK_PERIOD,
        DRIFT_CHECK_PERIOD,
    );
    let mut provider_retry = tokio::time::interval(Duration::from_secs(5));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut ready = false;
    let mut ready_reported = false;
    // Ports plugged while the agent runs whose pod's flows are not installed yet, with when the
    // port got its ofport: for kovs_pod_port_seconds. Bounded by the node's ports.
    let mut plugged_at: HashMap<String, Instant> = HashMap::new();
    loop {
        let mut changes = Vec::new();
        let mut port_events = Vec::new();
        let mut ports_seen = Instant::now();
        tokio::select! {
            _ = tick.tick() => {
                if let Some(r) = load_apart(&mut watcher) {
                    for e in &r.loaded.errors {
                        warn!("state: {e}");
                        metrics.error("state");
                    }
                    changes.extend(compiler.changes_from(&r.loaded.objects));
                }
            }
            _ = provider_retry.tick() => {
                // A missing NIC may have appeared; failed networks are retried.
                if providers.has_failures() {
                    sync_providers(&mut providers, &vs, &cfg, &compiler, &ports).await;
                    connect_providers(&mut bridges, &mut compiler, &providers, &cfg, &tx)?;
                    write_status_file(&cfg, &providers, &mut last_status_file);
                }
            }
            _ = periodic.tick() => {
                // Drift check for switches without a flow monitor: compare by dump.
                for b in bridges.values_mut() {
                    let current = b.conn.as_ref().and_then(Connection::generation);
                    let refused = b.monitor_refused.load(Ordering::Relaxed);
                    if b.monitored_generation != current || current == Some(refused) {
                        b.resync_at.get_or_insert_with(Instant::now);
                    }
                }
            }
            ev = iface_watch.next() => {
                ports_seen = Instant::now();
                if let Some(ev) = ev {
                    port_events.push(ev);
                }
                while let Some(ev) = iface_watch.try_next() {
                    port_events.push(ev);
                }
            }
            Some(input) = rx.recv() => {
                handle_switch_event(input, &mut bridges, &metrics);
                while let Ok(input) = rx.try_recv() {
                    handle_switch_event(input, &mut bridges, &metrics);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }

        // Ports: pods appear, move and vanish; kovs's own ports may be renumbered.
        let mut delta = Delta::default();
        let mut infra_changed = false;
        for ev in port_events {
            for (iface_id, ofport) in ports.apply(ev, &mut infra_changed) {
                tracing::debug!(%iface_id, ?ofport, "port");
                // Timed from when the port got (another) ofport; an update of other columns,
                // or the same ofport again after an OVSDB reconnect, is not a plug.
                match ofport {
                    Some(_) if compiler.config().ports.pods.get(&iface_id).copied() != ofport => {
                        plugged_at.insert(iface_id.clone(), ports_seen);
                    }
                    Some(_) => {}
                    None => {
                        plugged_at.remove(&iface_id);
                    }
                }
                delta.compose(compiler.set_port(&iface_id, ofport));
            }
        }
        if infra_changed {
            let mut c = compiler.config().clone();
            ports.fill(&mut c, &tunnel_port);
            if &c != compiler.config() {
                delta.compose(compiler.set_config(c));
            }
        }
        if !changes.is_empty() {
            let t = Instant::now();
            let n = changes.len();
            let kinds_touched = changes.iter().any(|c| match c {
                pipelines::model::Change::Apply(o) => o.kind() != ObjectKind::Pod,
                pipelines::model::Change::Delete(k) => k.kind != ObjectKind::Pod,
            });
            delta.compose(compiler.apply(changes));
            info!(
                changes = n,
                flows = delta.len(),
                compile_us = t.elapsed().as_micros() as u64,
                "state changed"
            );
            report_rejections(&compiler, &metrics);
            if kinds_touched {
                sync_providers(&mut providers, &vs, &cfg, &compiler, &ports).await;
                connect_providers(&mut bridges, &mut compiler, &providers, &cfg, &tx)?;
                write_status_file(&cfg, &providers, &mut last_status_file);
            }
        }
        metrics.set_pods_bound(compiler.config().ports.pods.len() as i64);
        node_port.sync(&nl, &compiler, &cfg.node, &metrics).await;

        // Send: a full resync where one is due, else the delta.
        let mut sent_any = !delta.is_empty();
        for b in bridges.values_mut() {
            // The Connected event can arrive before the switch handle holds the connection, or
            // after it (when another input was handled first). Either way a connection not yet
            // fully synced gets a full sync before any delta: what its switch holds is unknown
            // until dumped (e.g. ovs-vswitchd drops connections when the datapath ID changes).
            if b.conn.as_ref().is_none_or(|c| c.is_closed()) {
                b.conn = b.switch.current();
            }
            let Some(conn) = b.conn.clone() else {
                continue;
            };
            // One flow monitor per connection.
            if b.monitored_generation != conn.generation() {
                b.monitored_generation = conn.generation();
                let refused = b.monitor_refused.clone();
                let generation = conn.generation().unwrap_or(0);
                let c = conn.clone();
                tokio::spawn(async move {
                    // Drift: be told when anyone else changes flows.
                    let mut req = Vec::new();
                    let flags = monitor_flags::ADD | monitor_flags::DELETE | monitor_flags::MODIFY;
                    encode_flow_monitor_request(1, flags, 255, &Match::new(), 0, &mut req);
                    if let Err(e) = c.multipart(req).await {
                        warn!("flow monitor not available ({e}); drift is found by the periodic check");
                        refused.store(generation, Ordering::Relaxed);
                    }
                });
            }
            let t = Instant::now();
            let resync = match plan_send(
                conn.generation(),
                b.synced_generation,
                &mut b.resync_at,
                t,
                delta.is_empty(),
            ) {
                SendPlan::Nothing => continue,
                SendPlan::Full => true,
                SendPlan::Delta => false,
            };
            // Bounded: a connection that dies mid-transaction must not stall the loop.
            let work = async {
                if resync {
                    if b.sync.bridge == 0 {
                        // Flows that use the Geneve option need the TLV map first.
                        let tlv = TlvMap {
                            option_class: GENEVE_OPT_CLASS,
                            option_type: GENEVE_OPT_TYPE,
                            option_len: GENEVE_OPT_LEN,
                            index: GENEVE_OPT_INDEX as u16,
                        };
                        tracing::debug!(bridge = %b.sync.name, "ensuring the TLV map");
                        if let Err(e) = ensure_tlv_maps(&conn, &[tlv]).await {
                            warn!("geneve TLV map: {e}");
                            metrics.error("openflow");
                        }
                    }
                    tracing::debug!(bridge = %b.sync.name, "dumping installed flows");
                    let r = b.sync.sync_full(&conn, compiler.flows()).await;
                    if let Ok(r) = &r {
                        b.resync_at = None;
                        b.synced_generation = conn.generation();
                        info!(bridge = %b.sync.name, generation = conn.generation().unwrap_or(0), installed_before = r.installed_before, "resynced");
                    }
                    r
                } else {
                    b.sync.sync_delta(&conn, &delta).await
                }
            };
            let result = match tokio::time::timeout(SWITCH_TIMEOUT, work).await {
                Ok(r) => r,
                Err(_) => {
                    conn.close();
                    b.conn = None;
                    Err(format!(
                        "{}: no answer from the switch within {SWITCH_TIMEOUT:?}",
                        b.sync.name
                    ))
                }
            };
            sent_any = true;
            match result {
                Ok(r) => {
                    record(&metrics, &r, t.elapsed());
                    for f in &r.failed {
                        let who = describe_object(&compiler, f.object);
                        error!(bridge = %b.sync.name, object = %who, flow = %f.flow, error = %f.error, "the switch rejected a flow; the object's flows are left out");
                        metrics.error("openflow");
                    }
                    if r.flow_mods() > 0 || !b.synced_once {
                        info!(bridge = %b.sync.name, generation = conn.generation().unwrap_or(0), adds = r.adds, modifies = r.modifies, deletes = r.deletes, bundles = r.bundles, ms = t.elapsed().as_secs_f64() * 1e3, "batch");
                    }
                    b.synced_once |= resync;
                    if b.sync.bridge == 0 {
                        // Installed now: the plugged ports of valid local pods (the pod may
                        // have come after its port) whose flows the switch did not reject.
                        let failed = &b.sync.failed_objects;
                        plugged_at.retain(|iface_id, at| {
                            let installed = compiler
                                .local_pod(iface_id)
                                .is_some_and(|p| !failed.contains(&pod_object_id(&p)));
                            if installed {
                                metrics.pod_port_installed(at.elapsed().as_secs_f64());
                            }
                            !installed
                        });
                    }
                }
                Err(e) => {
                    warn!("{e}");
                    metrics.error("openflow");
                    // What the switch holds is unknown now: no more deltas until a full sync,
                    // which is retried after a pause.
                    b.synced_generation = None;
                    b.resync_at = Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }
        if !ready
            && bridges
                .values()
                .all(|b| b.synced_once && b.resync_at.is_none())
        {
            ready = true;
            http_state.set_ready(true);
            // Flows are back: ovs-vswitchd may leave flow-restore-wait.
            if let Err(e) = vs.remove_other_config("flow-restore-wait").await {
                warn!("ovsdb: clearing flow-restore-wait: {e}");
            }
            info!(flows = compiler.flow_counts().total(), "ready");
            release_freed_memory();
        }
        if sent_any || ready != ready_reported {
            update_flow_gauges(&metrics, compiler.flow_counts());
            http_state.set_status(status(&cfg, &compiler, &bridges, &providers, ready));
            ready_reported = ready;
        }
    }
    info!("stopping; flows stay installed");
    for b in bridges.values() {
        b.switch.stop();
    }
    Ok(())
}

/// What a bridge's connection gets in one round of the loop.
#[derive(Debug, PartialEq, Eq)]
enum SendPlan {
    Nothing,
    /// Dump and compare with the whole desired state.
    Full,
    Delta,
}

/// A connection gets deltas only after a full sync of its own (`synced_generation`): until then
/// what its switch holds is unknown, and a delta would be relative to flows it may not have.
/// Such a connection is due a full sync now, unless one is already scheduled (a retry after a
/// failure keeps its delay); meanwhile it gets nothing, as the sync will carry the delta (the
/// compiler's state has it already).
fn plan_send(
    conn_generation: Option<u64>,
    synced_generation: Option<u64>,
    resync_at: &mut Option<Instant>,
    now: Instant,
    delta_is_empty: bool,
) -> SendPlan {
    let unsynced = conn_generation != synced_generation;
    if unsynced {
        resync_at.get_or_insert(now);
    }
    if resync_at.is_some_and(|at| at <= now) {
        SendPlan::Full
    } else if unsynced || delta_is_empty {
        SendPlan::Nothing
    } else {
        SendPlan::Delta
    }
}

/// Polls the state files on a thread of its own. Parsing allocates a lot that lives only until
/// the compiler has taken the changes; on its own thread that goes to another malloc arena, so
/// it does not leave holes between the long-lived state's allocations (at 100k flows that was
/// ~20 MB of RSS).
fn load_apart(watcher: &mut StateWatcher) -> Option<crate::sources::files::Reload> {
    std::thread::scope(|s| s.spawn(|| watcher.poll()).join())
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Loading a large state parses it into temporary trees; give that memory back to the system
/// once (glibc keeps freed heap otherwise, and RSS is what operators see).
fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap structures.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn connect_ovsdb(cfg: &Config, metrics: &Metrics) -> Vswitch {
    let mut delay = Duration::from_millis(100);
    loop {
        match Vswitch::connect(&cfg.ovsdb).await {
            Ok(v) => {
                metrics.set_ovsdb_connected(true);
                return v;
            }
            Err(e) => {
                warn!("ovsdb {}: {e}; retrying in {delay:?}", cfg.ovsdb);
                metrics.error("ovsdb");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn handle_switch_event(input: Input, bridges: &mut BTreeMap<BridgeId, Bridge>, metrics: &Metrics) {
    let Input::Switch(id, ev) = input;
    let Some(b) = bridges.get_mut(&id) else {
        return;
    };
    match ev {
        Event::Connected { generation, .. } => {
            info!(bridge = %b.sync.name, generation, "connected");
            // The loop may hold this connection, or a newer one, already. What a connection
            // gets (a full sync first, a flow monitor) is decided by the loop, by generation.
            if b.conn.as_ref().and_then(Connection::generation) < Some(generation) {
                b.conn = b.switch.current();
            }
            metrics.set_switch_connected(true);
        }
        Event::Disconnected { generation, reason } => {
            warn!(bridge = %b.sync.name, %reason, "disconnected");
            // The loop may hold the next connection already.
            if b.conn
                .as_ref()
                .is_none_or(|c| c.generation() == Some(generation))
            {
                b.conn = None;
            }
            metrics.set_switch_connected(false);
            metrics.error("connection");
        }
        Event::Message(frame) => {
            // Flow monitor: someone else touched a kovs flow -> resync soon.
            if let Ok((
                _,
                Message::MultipartReply {
                    body: MultipartReply::FlowMonitor(updates),
                    ..
                },
            )) = Message::decode(frame.as_slice())
            {
                let foreign = updates.iter().any(|u| match u {
                    FlowUpdate::Added(f) | FlowUpdate::Deleted(f) | FlowUpdate::Modified(f) => {
                        is_kovs_cookie(f.cookie)
                    }
                    FlowUpdate::Abbrev { .. } => false,
                });
                if foreign && b.resync_at.is_none() {
                    info!(bridge = %b.sync.name, "a kovs flow was changed by someone else: repairing");
                    b.resync_at = Some(Instant::now() + Duration::from_millis(20));
                }
            }
        }
        Event::Lagged(n) => {
            warn!(bridge = %b.sync.name, dropped = n, "switch events dropped: resyncing");
            b.resync_at = Some(Instant::now());
        }
        _ => {}
    }
}

/// Ofports learned from OVSDB.
#[derive(Default)]
struct Ports {
    /// Interface name -> ofport (kovs's own ports).
    by_name: HashMap<String, u32>,
    /// iface-id -> ofport (pods).
    pods: HashMap<String, u32>,
    /// Interface name -> iface-id, to forget a pod when its interface goes.
    names: HashMap<String, String>,
}

impl Ports {
    fn upsert(&mut self, r: &Interface) -> Option<(String, Option<u32>)> {
        let ofport = r.valid_ofport();
        match ofport {
            Some(p) => self.by_name.insert(r.name.clone(), p),
            None => self.by_name.remove(&r.name),
        };
        let id = r.iface_id()?.to_string();
        self.names.insert(r.name.clone(), id.clone());
        match ofport {
            Some(p) => self.pods.insert(id.clone(), p),
            None => self.pods.remove(&id),
        };
        Some((id, ofport))
    }

    fn remove(&mut self, r: &Interface) -> Option<(String, Option<u32>)> {
        self.by_name.remove(&r.name);
        let id = self.names.remove(&r.name)?;
        self.pods.remove(&id);
        Some((id, None))
    }

    /// Applies a watch event; returns pod port changes and flags kovs-port changes.
    fn apply(&mut self, ev: WatchEvent<Interface>, infra: &mut bool) -> Vec<(String, Option<u32>)> {
        let infra_name = |n: &str| {
            n.starts_with(TUNNEL_PORT_PREFIX) || n == NODE_PORT_NAME || n.starts_with("patch-")
        };
        match ev {
            WatchEvent::Snapshot { rows, .. } => {
                let before: Vec<String> = self.pods.keys().cloned().collect();
                *self = Ports::default();
                let mut out = Vec::new();
                for r in rows.values() {
                    if let Some(c) = self.upsert(r) {
                        out.push(c);
                    }
                }
                for id in before {
                    if !self.pods.contains_key(&id) {
                        out.push((id, None));
                    }
                }
                *infra = true;
                out
            }
            WatchEvent::Insert(r) | WatchEvent::Modify { new: r, .. } => {
                if infra_name(&r.name) {
                    *infra = true;
                }
                self.upsert(&r).into_iter().collect()
            }
            WatchEvent::Delete(r) => {
                if infra_name(&r.name) {
                    *infra = true;
                }
                self.remove(&r).into_iter().collect()
            }
            WatchEvent::Disconnected(e) => {
                warn!("ovsdb interface monitor: {e}");
                Vec::new()
            }
        }
    }

    /// Puts the known ofports into a node configuration.
    fn fill(&self, c: &mut NodeConfig, tunnel_port: &str) {
        c.ports.tunnel = self
            .by_name
            .get(tunnel_port)
            .copied()
            .unwrap_or(DEFAULT_TUNNEL_OFPORT);
        c.ports.node_port = self
            .by_name
            .get(NODE_PORT_NAME)
            .copied()
            .unwrap_or(DEFAULT_NODE_OFPORT);
        c.ports.patches.clear();
        for (name, p) in &self.by_name {
            if let Some(pn) = name.strip_prefix("patch-int-") {
                c.ports.patches.insert(pn.to_string(), *p);
            }
        }
        c.ports.pods = self.pods.clone();
    }
}

/// Keeps `kovs0`'s host configuration equal to what the state asks for; retried on every pass
/// of the loop until it succeeds (the port appears a moment after OVSDB creates it).
#[derive(Default)]
struct NodePortSync {
    applied: Option<nodeport::Desired>,
    last_error: Option<String>,
}

impl NodePortSync {
    async fn sync(&mut self, nl: &Netlink, compiler: &Compiler, node: &str, metrics: &Metrics) {
        let want = nodeport::desired(compiler.state(), compiler.plan(), node);
        if want == self.applied {
            return;
        }
        let Some(w) = &want else {
            self.applied = None;
            return;
        };
        match nodeport::configure(nl, w).await {
            Ok(n) => {
                if n > 0 {
                    info!(port = NODE_PORT_NAME, ip = %w.ip, routes = w.routes.len(), changes = n, "node port configured");
                }
                self.applied = want;
                self.last_error = None;
            }
            Err(e) => {
                if self.last_error.as_deref() != Some(e.as_str()) {
                    warn!(port = NODE_PORT_NAME, "configuring the node port: {e}");
                    metrics.error("netlink");
                    self.last_error = Some(e);
                }
            }
        }
    }
}

/// Provider networks on this node: the NIC work (`provider.rs`), then the patch ports joining
/// each bridge to br-int, and the removal of patch ports whose network is gone.
async fn sync_providers(
    providers: &mut ProviderNetworks,
    vs: &Vswitch,
    cfg: &Config,
    compiler: &Compiler,
    ports: &Ports,
) {
    for ev in providers.reconcile(compiler.state()).await {
        match ev {
            ProviderEvent::Failed { .. } | ProviderEvent::RestoreFailed { .. } => {
                warn!("provider network: {ev}")
            }
            _ => info!("provider network: {ev}"),
        }
    }
    let plan = compiler.plan();
    for (pn, lp) in &plan.providers {
        let bridge = providers.bridge_name(pn).unwrap_or(&lp.bridge).to_string();
        let (a, b) = (patch_int_to_pn(pn), patch_pn_to_int(pn));
        let mut p1 = PortSpec::new(&cfg.bridge, &a, "patch");
        p1.options.insert("peer".into(), b.clone());
        p1.ofport_request = Some(lp.patch);
        let mut p2 = PortSpec::new(&bridge, &b, "patch");
        p2.options.insert("peer".into(), a.clone());
        p2.ofport_request = Some(PROVIDER_PATCH_OFPORT);
        for p in [p1, p2] {
            if let Err(e) = vs.ensure_port(&p).await {
                warn!(provider = %pn, "ovsdb: ensuring {}: {e}", p.name);
            }
        }
    }
    // br-int's end of a network that no longer applies here.
    for name in ports.by_name.keys() {
        if let Some(pn) = name.strip_prefix("patch-int-") {
            if !plan.providers.contains_key(pn) {
                if let Err(e) = vs.delete_port(&cfg.bridge, name).await {
                    warn!(provider = %pn, "ovsdb: deleting {name}: {e}");
                }
            }
        }
    }
}

/// Starts (or restarts, when its OVS name changed) the OpenFlow connection of each provider
/// bridge. With exchangeLinkName the OVS bridge is named after the NIC.
fn connect_providers(
    bridges: &mut BTreeMap<BridgeId, Bridge>,
    compiler: &mut Compiler,
    providers: &ProviderNetworks,
    cfg: &Config,
    tx: &mpsc::Sender<Input>,
) -> Result<(), String> {
    let wanted: Vec<(String, String)> = compiler
        .plan()
        .providers
        .iter()
        .map(|(pn, lp)| {
            (
                lp.bridge.clone(),
                providers.bridge_name(pn).unwrap_or(&lp.bridge).to_string(),
            )
        })
        .collect();
    for (compiled, ovs_name) in wanted {
        let id = compiler.bridge_id(&compiled);
        if bridges.get(&id).is_some_and(|b| b.sync.name == ovs_name) {
            continue;
        }
        if let Some(old) = bridges.remove(&id) {
            old.switch.stop();
        }
        connect_bridge(bridges, id, &ovs_name, cfg, tx)?;
    }
    Ok(())
}

fn connect_bridge(
    bridges: &mut BTreeMap<BridgeId, Bridge>,
    id: BridgeId,
    name: &str,
    cfg: &Config,
    tx: &mpsc::Sender<Input>,
) -> Result<(), String> {
    let sw = Switch::start(&cfg.mgmt(name), SwitchOptions::default()).map_err(|e| e.to_string())?;
    if let Some(mut ev) = sw.take_events() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                if tx.send(Input::Switch(id, e)).await.is_err() {
                    break;
                }
            }
        });
    }
    bridges.insert(
        id,
        Bridge {
            sync: BridgeSync::new(id, name),
            switch: sw,
            conn: None,
            resync_at: None,
            synced_generation: None,
            synced_once: false,
            monitored_generation: None,
            monitor_refused: Arc::new(AtomicU64::new(0)),
        },
    );
    Ok(())
}

/// `--status-file`: the provider networks' status (Kube-OVN's node labels), rewritten when it
/// changes (atomically: written aside, then renamed).
fn write_status_file(cfg: &Config, providers: &ProviderNetworks, last: &mut String) {
    let Some(path) = &cfg.status_file else {
        return;
    };
    let text = serde_json::to_string_pretty(&providers.status()).unwrap_or_default();
    if text == *last {
        return;
    }
    let tmp = path.with_extension("tmp");
    match std::fs::write(&tmp, &text).and_then(|_| std::fs::rename(&tmp, path)) {
        Ok(()) => *last = text,
        Err(e) => warn!("--status-file {}: {e}", path.display()),
    }
}

fn record(metrics: &Metrics, r: &SyncReport, total: Duration) {
    if r.bundles > 0 {
        metrics.bundle_committed(r.commit_time.as_secs_f64());
    }
    metrics.flow_mods(r.adds as u64, r.modifies as u64, r.deletes as u64);
    metrics.reconciled(total.as_secs_f64());
}

/// Flows per pipeline stage, from the desired set (which the switch holds once synced).
fn update_flow_gauges(metrics: &Metrics, counts: &pipelines::FlowCounts) {
    for s in Stage::ALL {
        metrics.set_flows(s.name(), counts.stage(s) as i64);
    }
}

fn report_rejections(compiler: &Compiler, metrics: &Metrics) {
    let mut by_kind: BTreeMap<&'static str, i64> =
        ObjectKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
    for e in &compiler.state().errors {
        *by_kind.entry(e.kind.as_str()).or_default() += 1;
    }
    for (k, n) in by_kind {
        metrics.set_rejected(k, n);
    }
    for e in &compiler.state().errors {
        warn!("rejected: {e}");
    }
}

/// Which object a cookie's object part names.
fn describe_object(compiler: &Compiler, object: u64) -> String {
    let s = compiler.state();
    for p in s.pods.values() {
        if pod_object_id(&p.id) == object {
            return format!("Pod {}", p.id);
        }
    }
    for n in s.subnets.keys() {
        if object_id("Subnet", "", n) == object {
            return format!("Subnet {n}");
        }
    }
    for n in s.nodes.keys() {
        if object_id("Node", "", n) == object {
            return format!("Node {n}");
        }
    }
    for n in s.provider_networks.keys() {
        if object_id("ProviderNetwork", "", n) == object {
            return format!("ProviderNetwork {n}");
        }
    }
    format!("object {object:#x}")
}

fn status(
    cfg: &Config,
    compiler: &Compiler,
    bridges: &BTreeMap<BridgeId, Bridge>,
    providers: &ProviderNetworks,
    ready: bool,
) -> serde_json::Value {
    let failed: Vec<String> = bridges
        .values()
        .flat_map(|b| {
            b.sync
                .failed_objects
                .iter()
                .map(|o| describe_object(compiler, *o))
        })
        .collect();
    serde_json::json!({
        "node": cfg.node,
        "ready": ready,
        "tunnelType": cfg.tunnel.name(),
        "flows": compiler.flow_counts().total(),
        "bridges": bridges.values().map(|b| serde_json::json!({
            "name": b.sync.name,
            "connected": b.conn.is_some(),
            "flows": compiler.flow_counts().bridge(b.sync.bridge),
        })).collect::<Vec<_>>(),
        "rejected": compiler.state().errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "failedObjects": failed,
        "podsBound": compiler.config().ports.pods.len(),
        "providerNetworks": providers.status(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_no_delta_before_its_own_full_sync() {
        let now = Instant::now();
        let later = now + Duration::from_millis(500);
        // A new connection (picked up before its Connected event): full sync, delta or not.
        let mut at = None;
        assert_eq!(
            plan_send(Some(2), Some(1), &mut at, now, false),
            SendPlan::Full
        );
        assert_eq!(at, Some(now));
        let mut at = None;
        assert_eq!(plan_send(Some(1), None, &mut at, now, true), SendPlan::Full);
        // Its retry is scheduled later: nothing until then, not the delta.
        let mut at = Some(later);
        assert_eq!(
            plan_send(Some(2), Some(1), &mut at, now, false),
            SendPlan::Nothing
        );
        assert_eq!(at, Some(later), "the retry keeps its delay");
        assert_eq!(
            plan_send(Some(2), Some(1), &mut at, later, false),
            SendPlan::Full
        );
        // The synced connection: deltas; a due resync (drift) wins.
        let mut at = None;
        assert_eq!(
            plan_send(Some(2), Some(2), &mut at, now, false),
            SendPlan::Delta
        );
        assert_eq!(
            plan_send(Some(2), Some(2), &mut at, now, true),
            SendPlan::Nothing
        );
        assert_eq!(at, None);
        let mut at = Some(now);
        assert_eq!(
            plan_send(Some(2), Some(2), &mut at, now, false),
            SendPlan::Full
        );
    }
}
