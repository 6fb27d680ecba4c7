//! `kovs-agent run`: keeps a real ovs-vswitchd, and the host side of it, in the desired state.
//!
//! One loop owns everything: the compiler, each bridge's session, the port map. Inputs arrive
//! on channels and timers — the state (files polled every 50 ms, or the Kubernetes API's
//! watch events, [`crate::sources::kube`]), OVSDB Interface updates (the
//! Interface monitor's task), switch events (one task per bridge, from flowlib's reconnecting
//! `Switch`) and flow-monitor refusals. Bursts are drained before compiling, so events close
//! together become one delta and one bundle per bridge. Each round then:
//! 1. applies port events and state changes to the compiler (one [`pipelines::Delta`]);
//! 2. when objects other than pods changed, reconciles provider networks and patch ports;
//! 3. brings the node port's host side to what the state asks for;
//! 4. lets each bridge's session decide what its connection gets ([`bridges::Bridges::send`]);
//! 5. reports readiness once every bridge has had a full sync.
//!
//! Start-up order: metrics server, OVSDB (br-int, the tunnel port, the node port), the
//! Interface monitor's first snapshot, the state, the compiler, provider networks (orphans
//! restored first), then the switch connections; the loop's first round makes the full syncs.

mod bridges;
pub mod cni_link;
mod providers;
pub mod readiness;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipelines::flowset::BR_INT;
use pipelines::model::{Change, Loaded, ObjectKind};
use pipelines::tables::{DEFAULT_NODE_OFPORT, DEFAULT_TUNNEL_OFPORT, NODE_PORT_NAME};
use pipelines::{Compiler, Delta, NodeConfig, TunnelType};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::cni::pod_network::{self, MtuInputs, NicType};
use crate::cni::server::CniServer;
use crate::observe::http::{self, HttpState};
use crate::observe::metrics::Metrics;
use crate::observe::status::{self, StatusFile};
use crate::ovsdb::{
    self, BridgeSpec, Interface, PortSpec, Vswitch, Watch, WatchEvent, WatchOptions,
};
use crate::reconcile::node_port::NodePortSync;
use crate::reconcile::provider::ProviderNetworks;
use crate::sources::files::StateWatcher;
use crate::sources::kube::KubeSource;
use crate::sources::ovsdb_ports::Ports;
use crate::sys::netlink::{self, Netlink};
use bridges::{Bridges, SwitchInput};
use cni_link::{CniQuery, LoopEnd};
use readiness::PodReadiness;

/// How often flows are compared by dump on a switch without a flow monitor.
const DRIFT_CHECK_PERIOD: Duration = Duration::from_secs(60);
/// How often the state files are checked for changes.
const STATE_POLL_PERIOD: Duration = Duration::from_millis(50);
/// How often provider networks that failed (e.g. a NIC not there yet) are tried again.
const PROVIDER_RETRY_PERIOD: Duration = Duration::from_secs(5);

/// Why the agent could not start (or stopped); the message is what the log shows.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--metrics-addr {addr}: {source}")]
    MetricsAddr {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("ovsdb: ensuring {what}: {source}")]
    Ovsdb { what: String, source: ovsdb::Error },
    #[error("netlink: {0}")]
    Netlink(#[from] netlink::Error),
    #[error("state: nothing to load")]
    NoState,
    #[error("{0}")]
    Kube(#[from] kovs_kube::Error),
    #[error("{0}")]
    Switch(#[from] flowlib::conn::Error),
    #[error("{0}")]
    Signal(std::io::Error),
    #[error("--cni-socket {}: {source}", path.display())]
    CniSocket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The agent's settings; each flag also reads from the environment (Kube-OVN's names where it has them).
#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub source: SourceConfig,
    pub ovs_rundir: String,
    pub ovsdb: String,
    pub bridge: String,
    pub datapath: String,
    pub tunnel: TunnelType,
    pub encap_ip: Option<Ipv4Addr>,
    pub metrics_addr: SocketAddr,
    /// Provider-network status (Kube-OVN's node labels) written here as JSON, when set.
    pub status_file: Option<std::path::PathBuf>,
    /// The CNI API's unix socket, when served.
    pub cni_socket: Option<std::path::PathBuf>,
    /// How pods' NICs are made when their annotation does not say.
    pub pod_nic_type: NicType,
}

/// Where the cluster state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// State files and directories (`--state`), watched.
    Files(Vec<String>),
    /// The Kubernetes API.
    Kube(kovs_kube::Endpoint),
}

/// The running source.
enum Source {
    Files(StateWatcher),
    Kube(Box<KubeSource>),
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

/// Runs the agent until SIGTERM or Ctrl-C.
pub async fn run(cfg: Config) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel::<SwitchInput>(4096);
    let (link, end) = match cfg.cni_socket {
        Some(_) => {
            let (link, end) = cni_link::link();
            (Some(link), Some(end))
        }
        None => (None, None),
    };
    let mut d = Daemon::start(cfg, tx, end).await?;
    if let (Some(link), Some(path)) = (link, d.cfg.cni_socket.clone()) {
        let server = Arc::new(CniServer {
            link,
            vs: d.vs.clone(),
            nl: Netlink::connect()?,
            bridge: d.cfg.bridge.clone(),
            metrics: d.metrics.clone(),
            containers: Default::default(),
        });
        let listener = http::bind_unix(&path)
            .await
            .map_err(|source| Error::CniSocket {
                path: path.clone(),
                source,
            })?;
        info!(path = %path.display(), "serving the CNI API");
        tokio::spawn(listener.serve(crate::cni::server::router(server)));
    }
    d.run(rx).await
}

/// What woke the loop.
enum Wake {
    StatePoll,
    ProviderRetry,
    DriftCheck,
    Ports(Vec<WatchEvent<Interface>>, Instant),
    Kube(Vec<kovs_kube::Input>),
    Switch(Vec<SwitchInput>),
    Cni(CniQuery),
    Stop,
}

/// Everything the loop owns.
struct Daemon {
    cfg: Config,
    metrics: Metrics,
    http: HttpState,
    vs: Vswitch,
    iface_watch: Watch<Interface>,
    ports: Ports,
    tunnel_port: String,
    source: Source,
    compiler: Compiler,
    providers: ProviderNetworks,
    bridges: Bridges,
    nl: Netlink,
    node_port: NodePortSync,
    status_file: StatusFile,
    ready: bool,
    ready_reported: bool,
    /// Whose flows br-int holds: kovs_pod_port_seconds, and waiters for a pod's flows.
    pods: PodReadiness,
    /// The CNI server's questions, when it runs.
    cni: Option<LoopEnd>,
    /// The MTU of the interface the tunnel leaves on (overlay pods get it less the overhead).
    underlay_mtu: u32,
}

impl Daemon {
    async fn start(
        cfg: Config,
        tx: mpsc::Sender<SwitchInput>,
        cni: Option<LoopEnd>,
    ) -> Result<Daemon, Error> {
        let metrics = Metrics::new();
        let http_state = HttpState::new(metrics.clone());
        let server = http::bind(cfg.metrics_addr)
            .await
            .map_err(|source| Error::MetricsAddr {
                addr: cfg.metrics_addr,
                source,
            })?;
        info!(addr = %server.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics /healthz /readyz /status");
        tokio::spawn(server.run(http_state.clone()));

        let vs = connect_ovsdb(&cfg, &metrics).await;
        let tunnel_port = cfg.tunnel.port_name();
        ensure_int_bridge(&vs, &cfg).await?;

        // Interfaces: iface-id -> ofport for pods, and the ofports of kovs's own ports.
        let mut iface_watch: Watch<Interface> = Watch::spawn(WatchOptions::new(&cfg.ovsdb));
        let mut ports = Ports::default();
        if let Some(WatchEvent::Snapshot { rows, .. }) = iface_watch.next().await {
            for r in rows.values() {
                ports.upsert(r);
            }
        }

        // State. Only the objects and errors are kept (the locations index every object).
        let (mut source, objects) = match &cfg.source {
            SourceConfig::Files(paths) => {
                let mut watcher = StateWatcher::new(paths);
                let Loaded {
                    objects, errors, ..
                } = load_apart(&mut watcher).ok_or(Error::NoState)?.loaded;
                for e in &errors {
                    warn!("state: {e}");
                    metrics.error("state");
                }
                (Source::Files(watcher), objects)
            }
            SourceConfig::Kube(endpoint) => {
                let (k, objects) = KubeSource::start(endpoint, &cfg.node, &metrics).await?;
                (Source::Kube(Box::new(k)), objects)
            }
        };
        let mut node_cfg = NodeConfig::new(&cfg.node, cfg.tunnel);
        ports.fill(&mut node_cfg, &tunnel_port);
        let compiler = Compiler::new(node_cfg, objects);
        if !compiler.state().nodes.contains_key(&cfg.node) {
            warn!(node = %cfg.node, "this node is not in the state: no flows until it appears");
        }
        report_rejections(&compiler, &metrics);
        if let Source::Kube(k) = &mut source {
            k.report_rejections(&compiler);
        }

        // Provider networks: NICs onto br-<pn>, then the patch ports joining them to br-int.
        let mut providers = ProviderNetworks::new(
            vs.clone(),
            cfg.node.clone(),
            cfg.datapath_type().to_string(),
        )?;
        for ev in providers.restore_all_orphans(compiler.state()).await {
            info!("provider network: {ev}");
        }
        let mut bridges = Bridges::new(tx);
        bridges.connect(BR_INT, &cfg.bridge, &cfg.mgmt(&cfg.bridge))?;
        let nl = Netlink::connect()?;
        let underlay_mtu = underlay_mtu(&nl).await;
        let mut d = Daemon {
            status_file: StatusFile::new(cfg.status_file.clone()),
            cfg,
            metrics,
            http: http_state,
            vs,
            iface_watch,
            ports,
            tunnel_port,
            source,
            compiler,
            providers,
            bridges,
            nl,
            node_port: NodePortSync::default(),
            ready: false,
            ready_reported: false,
            pods: PodReadiness::default(),
            cni,
            underlay_mtu,
        };
        d.sync_providers().await?;
        Ok(d)
    }

    async fn run(&mut self, mut switch_rx: mpsc::Receiver<SwitchInput>) -> Result<(), Error> {
        let mut state_poll = tokio::time::interval(STATE_POLL_PERIOD);
        // Not `interval`: its first tick is immediate, which would dump every flow again right
        // after the start-up resync.
        let mut drift = tokio::time::interval_at(
            tokio::time::Instant::now() + DRIFT_CHECK_PERIOD,
            DRIFT_CHECK_PERIOD,
        );
        let mut provider_retry = tokio::time::interval(PROVIDER_RETRY_PERIOD);
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::Signal)?;
        loop {
            let wake = tokio::select! {
                _ = state_poll.tick() => Wake::StatePoll,
                _ = provider_retry.tick() => Wake::ProviderRetry,
                _ = drift.tick() => Wake::DriftCheck,
                ev = self.iface_watch.next() => {
                    let seen = Instant::now();
                    let mut evs: Vec<_> = ev.into_iter().collect();
                    while let Some(ev) = self.iface_watch.try_next() {
                        evs.push(ev);
                    }
                    Wake::Ports(evs, seen)
                }
                Some(input) = switch_rx.recv() => {
                    let mut inputs = vec![input];
                    while let Ok(input) = switch_rx.try_recv() {
                        inputs.push(input);
                    }
                    Wake::Switch(inputs)
                }
                Some(q) = next_query(&mut self.cni) => Wake::Cni(q),
                Some(inputs) = next_kube(&mut self.source) => Wake::Kube(inputs),
                _ = tokio::signal::ctrl_c() => Wake::Stop,
                _ = sigterm.recv() => Wake::Stop,
            };
            let mut delta = Delta::default();
            // Whether the state or a provider network changed (the CNI server asks again).
            let mut state_changed = false;
            match wake {
                Wake::StatePoll => state_changed = self.reload_state(&mut delta).await?,
                Wake::Kube(inputs) => state_changed = self.kube_inputs(inputs, &mut delta).await?,
                Wake::ProviderRetry => {
                    // The transaction connection lost without the monitor noticing a restart.
                    if !self.vs.is_connected() {
                        self.ovsdb_reconnected().await?;
                    }
                    // A missing NIC may have appeared; failed networks are retried.
                    if self.providers.has_failures() {
                        self.sync_providers().await?;
                        state_changed = true;
                    }
                }
                Wake::DriftCheck => self.bridges.drift_check(),
                Wake::Ports(evs, seen) => {
                    if self.apply_port_events(evs, seen, &mut delta) {
                        self.ovsdb_reconnected().await?;
                    }
                }
                Wake::Switch(inputs) => {
                    for input in inputs {
                        self.bridges.handle(input, &self.metrics);
                    }
                }
                Wake::Cni(q) => self.answer(q),
                Wake::Stop => break,
            }
            if state_changed {
                if let Some(c) = &self.cni {
                    c.state.send_modify(|g| *g += 1);
                }
            }
            self.metrics
                .set_pods_bound(self.compiler.config().ports.pods.len() as i64);
            self.node_port
                .sync(
                    &self.nl,
                    self.compiler.intent().node_port.as_ref(),
                    &self.metrics,
                )
                .await;
            let sent = self
                .bridges
                .send(&self.compiler, &delta, &self.metrics)
                .await;
            if sent.int_bridge_updated {
                self.pod_ports_installed();
            }
            self.report(sent.any).await;
        }
        info!("stopping; flows stay installed");
        self.bridges.stop();
        Ok(())
    }

    /// State files: a reload is diffed against the compiler's state.
    /// Returns whether the compiler's state changed.
    async fn reload_state(&mut self, delta: &mut Delta) -> Result<bool, Error> {
        let Source::Files(watcher) = &mut self.source else {
            return Ok(false);
        };
        let Some(r) = load_apart(watcher) else {
            return Ok(false);
        };
        for e in &r.loaded.errors {
            warn!("state: {e}");
            self.metrics.error("state");
        }
        let changes = self.compiler.changes_from(&r.loaded.objects);
        drop(r);
        self.apply_changes(changes, delta).await
    }

    /// Watch events of the kube source: what the compiler does not hold yet.
    /// Returns whether the compiler's state changed.
    async fn kube_inputs(
        &mut self,
        inputs: Vec<kovs_kube::Input>,
        delta: &mut Delta,
    ) -> Result<bool, Error> {
        let Source::Kube(k) = &mut self.source else {
            return Ok(false);
        };
        let changes = k.changes(&self.compiler, inputs, &self.metrics);
        let changed = self.apply_changes(changes, delta).await?;
        if changed {
            if let Source::Kube(k) = &mut self.source {
                k.report_rejections(&self.compiler);
            }
        }
        Ok(changed)
    }

    /// Object changes into the compiler (one delta); provider networks are reconciled when
    /// anything but pods changed. Returns whether there was any change.
    async fn apply_changes(
        &mut self,
        changes: Vec<Change>,
        delta: &mut Delta,
    ) -> Result<bool, Error> {
        if changes.is_empty() {
            return Ok(false);
        }
        let t = Instant::now();
        let n = changes.len();
        let kinds_touched = changes.iter().any(|c| match c {
            Change::Apply(o) => o.kind() != ObjectKind::Pod,
            Change::Delete(k) => k.kind != ObjectKind::Pod,
        });
        delta.compose(self.compiler.apply(changes));
        info!(
            changes = n,
            flows = delta.len(),
            compile_us = t.elapsed().as_micros() as u64,
            "state changed"
        );
        report_rejections(&self.compiler, &self.metrics);
        if kinds_touched {
            self.sync_providers().await?;
        }
        Ok(true)
    }

    /// Ports: pods appear, move and vanish; kovs's own ports may be renumbered. Returns
    /// whether the Interface monitor came back after losing ovsdb-server.
    fn apply_port_events(
        &mut self,
        evs: Vec<WatchEvent<Interface>>,
        seen: Instant,
        delta: &mut Delta,
    ) -> bool {
        let mut infra_changed = false;
        let mut reconnected = false;
        for ev in evs {
            match &ev {
                WatchEvent::Snapshot { resync, .. } => reconnected |= *resync,
                WatchEvent::Disconnected(_) => self.metrics.set_ovsdb_connected(false),
                _ => {}
            }
            for (iface_id, ofport) in self.ports.apply(ev, &mut infra_changed) {
                tracing::debug!(%iface_id, ?ofport, "port");
                // Timed from when the port got (another) ofport; an update of other columns,
                // or the same ofport again after an OVSDB reconnect, is not a plug.
                match ofport {
                    Some(_)
                        if self.compiler.config().ports.pods.get(&iface_id).copied() != ofport =>
                    {
                        self.pods.plugged(&iface_id, seen);
                    }
                    Some(_) => {}
                    None => {
                        self.pods.unplugged(&iface_id);
                    }
                }
                delta.compose(self.compiler.set_port(&iface_id, ofport));
            }
        }
        if infra_changed {
            let mut c = self.compiler.config().clone();
            self.ports.fill(&mut c, &self.tunnel_port);
            if &c != self.compiler.config() {
                delta.compose(self.compiler.set_config(c));
            }
        }
        reconnected
    }

    /// ovsdb-server is back (restarted, maybe with another database): the transaction
    /// connection is made again, and what kovs keeps in OVSDB is ensured again.
    async fn ovsdb_reconnected(&mut self) -> Result<(), Error> {
        match self.vs.ensure_connected().await {
            Ok(()) => {
                info!("ovsdb: connected again");
                self.metrics.set_ovsdb_connected(true);
            }
            Err(e) => {
                // Tried again every PROVIDER_RETRY_PERIOD and on the next resync snapshot.
                warn!("ovsdb {}: {e}", self.cfg.ovsdb);
                self.metrics.set_ovsdb_connected(false);
                self.metrics.error("ovsdb");
                return Ok(());
            }
        }
        if let Err(e) = ensure_int_bridge(&self.vs, &self.cfg).await {
            warn!("{e}");
            self.metrics.error("ovsdb");
        }
        self.sync_providers().await
    }

    /// A question of the CNI server.
    fn answer(&mut self, q: CniQuery) {
        match q {
            CniQuery::Pod {
                namespace,
                name,
                reply,
            } => {
                let providers = &self.providers;
                let provider_mtu = |pn: &str| providers.mtu(pn);
                let mtu = MtuInputs {
                    tunnel: self.cfg.tunnel,
                    underlay_mtu: self.underlay_mtu,
                    provider_mtu: &provider_mtu,
                };
                let l = pod_network::lookup(
                    self.compiler.state(),
                    &self.cfg.node,
                    &namespace,
                    &name,
                    mtu,
                    self.cfg.pod_nic_type,
                );
                let _ = reply.send(l);
            }
            CniQuery::Flows { iface_id, reply } => {
                let (compiler, bridges) = (&self.compiler, &self.bridges);
                self.pods.wait(&iface_id, reply, &|id: &str| {
                    pod_flows_installed(compiler, bridges, id)
                });
            }
        }
    }

    /// br-int took a sync: the pods whose flows it now holds are timed and their waiters
    /// answered.
    fn pod_ports_installed(&mut self) {
        let (compiler, bridges) = (&self.compiler, &self.bridges);
        self.pods.synced(
            &|id: &str| pod_flows_installed(compiler, bridges, id),
            &self.metrics,
        );
    }

    /// Readiness, flow gauges and `/status`.
    async fn report(&mut self, sent_any: bool) {
        if !self.ready && self.bridges.all_ready() {
            self.ready = true;
            self.http.set_ready(true);
            if let Some(c) = &self.cni {
                c.ready.send_replace(true);
            }
            // Flows are back: ovs-vswitchd may leave flow-restore-wait.
            if let Err(e) = self.vs.remove_other_config("flow-restore-wait").await {
                warn!("ovsdb: clearing flow-restore-wait: {e}");
            }
            info!(flows = self.compiler.flow_counts().total(), "ready");
            release_freed_memory();
        }
        if sent_any || self.ready != self.ready_reported {
            bridges::update_flow_gauges(&self.metrics, self.compiler.flow_counts());
            self.http.set_status(status::status(
                &self.cfg.node,
                self.cfg.tunnel.name(),
                &self.compiler,
                self.bridges.views(),
                self.providers.status(),
                self.ready,
            ));
            self.ready_reported = self.ready;
        }
    }
}

/// The next watch events of the kube source; never, with state files.
async fn next_kube(source: &mut Source) -> Option<Vec<kovs_kube::Input>> {
    match source {
        Source::Kube(k) => k.next().await,
        Source::Files(_) => std::future::pending().await,
    }
}

/// The next question of the CNI server; never, without one.
async fn next_query(cni: &mut Option<LoopEnd>) -> Option<CniQuery> {
    match cni {
        Some(c) => c.queries.recv().await,
        None => std::future::pending().await,
    }
}

/// The MTU of the interface of the default route (the tunnel's way out), 1500 without one.
async fn underlay_mtu(nl: &Netlink) -> u32 {
    let routes = nl.all_routes().await.unwrap_or_default();
    let Some(oif) = routes
        .iter()
        .find(|r| !r.ipv6 && r.dst_len == 0 && r.table == 254)
        .and_then(|r| r.oif)
    else {
        return 1500;
    };
    match nl.link_by_index(oif).await {
        Ok(Some(link)) => link.mtu,
        _ => 1500,
    }
}

/// Whether br-int holds the flows of the pod whose port is `iface_id`: its last sync succeeded,
/// the port has an ofport, the pod is valid and on this node (it may have come after its port),
/// and the switch did not reject its flows.
fn pod_flows_installed(compiler: &Compiler, bridges: &Bridges, iface_id: &str) -> bool {
    bridges.is_synced(BR_INT)
        && compiler.config().ports.pods.contains_key(iface_id)
        && compiler.local_pod(iface_id).is_some_and(|p| {
            bridges
                .failed_objects(BR_INT)
                .is_none_or(|failed| !failed.contains(&pipelines::ids::pod_object_id(&p)))
        })
}

/// br-int, the tunnel port for the chosen type (another type's port removed), the node port.
async fn ensure_int_bridge(vs: &Vswitch, cfg: &Config) -> Result<(), Error> {
    let ovsdb_err = |what: &str| {
        let what = what.to_string();
        move |source| Error::Ovsdb { what, source }
    };
    vs.ensure_bridge(&BridgeSpec::new(&cfg.bridge, cfg.datapath_type()))
        .await
        .map_err(ovsdb_err(&cfg.bridge))?;
    for other in [TunnelType::Geneve, TunnelType::Vxlan, TunnelType::Stt] {
        if other != cfg.tunnel {
            // A restart with another tunnel type replaces kovs's old tunnel port.
            let _ = vs.delete_port(&cfg.bridge, &other.port_name()).await;
        }
    }
    let tunnel_port = cfg.tunnel.port_name();
    let mut tp = PortSpec::new(&cfg.bridge, &tunnel_port, cfg.tunnel.name());
    tp.options.insert("remote_ip".into(), "flow".into());
    tp.options.insert("key".into(), "flow".into());
    if let Some(ip) = cfg.encap_ip {
        tp.options.insert("local_ip".into(), ip.to_string());
    }
    tp.ofport_request = Some(DEFAULT_TUNNEL_OFPORT);
    vs.ensure_port(&tp).await.map_err(ovsdb_err(&tunnel_port))?;
    let mut np = PortSpec::new(&cfg.bridge, NODE_PORT_NAME, "internal");
    np.ofport_request = Some(DEFAULT_NODE_OFPORT);
    vs.ensure_port(&np)
        .await
        .map_err(ovsdb_err(NODE_PORT_NAME))?;
    Ok(())
}

/// Connects the transaction client, retrying with backoff (100 ms doubling to 5 s) until
/// ovsdb-server answers.
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

fn report_rejections(compiler: &Compiler, metrics: &Metrics) {
    let mut by_kind: std::collections::BTreeMap<&'static str, i64> =
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
