//! The I/O side of each bridge's OpenFlow session: the reconnecting switch handle, the
//! connection in use, and carrying out what the bridge's [`BridgeSession`] asks for. Every
//! decision (what a connection gets, and when) is the session's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowlib::client::ensure_tlv_maps;
use flowlib::conn::{Connection, Event, Switch, SwitchOptions};
use flowlib::wire::message::{
    encode_flow_monitor_request, monitor_flags, Message, MultipartReply, TlvMap,
};
use flowlib::wire::Match;
use pipelines::flowset::{BridgeId, BR_INT};
use pipelines::tables::{
    Stage, GENEVE_OPT_CLASS, GENEVE_OPT_INDEX, GENEVE_OPT_LEN, GENEVE_OPT_TYPE,
};
use pipelines::{Compiler, Delta};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::observe::metrics::Metrics;
use crate::observe::status::{describe_object, BridgeView};
use crate::reconcile::flows::session::{Action, BridgeSession, Phase};
use crate::reconcile::flows::sync::{self, BridgeSync, SyncReport};

/// The longest one full sync or delta may take before the connection is given up and redone.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the switch side sends the loop.
pub enum SwitchInput {
    Event(BridgeId, Event),
    /// The switch of connection `generation` refused the flow monitor.
    MonitorRefused(BridgeId, u64),
}

/// One bridge: its session (decisions) and its connection (I/O).
struct Bridge {
    session: BridgeSession,
    sync: BridgeSync,
    switch: Switch,
    conn: Option<Connection>,
}

/// What one round of sending did.
#[derive(Default)]
pub struct Sent {
    /// Something was sent (or tried) on some bridge.
    pub any: bool,
    /// br-int took a full sync or a delta: its installed flows changed.
    pub int_bridge_updated: bool,
}

/// Every bridge kovs programs, by the compiler's bridge id.
pub struct Bridges {
    map: BTreeMap<BridgeId, Bridge>,
    events: mpsc::Sender<SwitchInput>,
}

impl Bridges {
    pub fn new(events: mpsc::Sender<SwitchInput>) -> Bridges {
        Bridges {
            map: BTreeMap::new(),
            events,
        }
    }

    /// The OVS name of bridge `id`, if it is connected to.
    pub fn name(&self, id: BridgeId) -> Option<&str> {
        self.map.get(&id).map(|b| b.sync.name.as_str())
    }

    /// Starts the switch connection of bridge `id` named `name` in OVS (management socket
    /// `mgmt`), replacing one of another name.
    pub fn connect(
        &mut self,
        id: BridgeId,
        name: &str,
        mgmt: &str,
    ) -> Result<(), flowlib::conn::Error> {
        if let Some(old) = self.map.remove(&id) {
            old.switch.stop();
        }
        let switch = Switch::start(mgmt, SwitchOptions::default())?;
        if let Some(mut ev) = switch.take_events() {
            let tx = self.events.clone();
            tokio::spawn(async move {
                while let Some(e) = ev.recv().await {
                    if tx.send(SwitchInput::Event(id, e)).await.is_err() {
                        break;
                    }
                }
            });
        }
        self.map.insert(
            id,
            Bridge {
                session: BridgeSession::new(),
                sync: BridgeSync::new(id, name),
                switch,
                conn: None,
            },
        );
        Ok(())
    }

    /// Feeds a switch event to its bridge's session.
    pub fn handle(&mut self, input: SwitchInput, metrics: &Metrics) {
        let now = Instant::now();
        let (id, ev) = match input {
            SwitchInput::MonitorRefused(id, generation) => {
                if let Some(b) = self.map.get_mut(&id) {
                    b.session.monitor_refused(generation);
                }
                return;
            }
            SwitchInput::Event(id, ev) => (id, ev),
        };
        let Some(b) = self.map.get_mut(&id) else {
            return;
        };
        match ev {
            Event::Connected { generation, .. } => {
                info!(bridge = %b.sync.name, generation, "connected");
                // The handle may hold this connection, or a newer one, already.
                if b.conn.as_ref().and_then(Connection::generation) < Some(generation) {
                    b.conn = b.switch.current();
                }
                b.session.connected(generation, now);
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
                b.session.disconnected(generation);
                metrics.error("connection");
            }
            Event::Message(frame) => {
                if let Ok((
                    _,
                    Message::MultipartReply {
                        body: MultipartReply::FlowMonitor(updates),
                        ..
                    },
                )) = Message::decode(frame.as_slice())
                {
                    let was = b.session.repair_scheduled();
                    b.session.flows_changed(&updates, now);
                    if !was && b.session.repair_scheduled() {
                        info!(bridge = %b.sync.name, "a kovs flow was changed by someone else: repairing");
                    }
                }
            }
            Event::Lagged(n) => {
                warn!(bridge = %b.sync.name, dropped = n, "switch events dropped: resyncing");
                b.session.events_lost(now);
            }
            _ => {}
        }
        metrics.set_switch_connected(self.all_connected());
    }

    /// Every bridge has a connection up (`kovs_switch_connected`).
    pub fn all_connected(&self) -> bool {
        self.map
            .values()
            .all(|b| b.session.connected_generation().is_some())
    }

    /// The periodic drift check (for switches without a working flow monitor).
    pub fn drift_check(&mut self) {
        let now = Instant::now();
        for b in self.map.values_mut() {
            b.session.drift_check(now);
        }
    }

    /// Every bridge has had a full sync and none is due.
    pub fn all_ready(&self) -> bool {
        self.map.values().all(|b| b.session.is_ready())
    }

    /// Bridge `id`'s switch holds the desired flows as of the last round (its last sync
    /// succeeded on the current connection).
    pub fn is_synced(&self, id: BridgeId) -> bool {
        self.map
            .get(&id)
            .is_some_and(|b| b.session.phase() == Phase::Synced)
    }

    /// Objects whose flows the switch of bridge `id` rejected.
    pub fn failed_objects(&self, id: BridgeId) -> Option<&std::collections::HashSet<u64>> {
        self.map.get(&id).map(|b| &b.sync.failed_objects)
    }

    pub fn views(&self) -> impl Iterator<Item = BridgeView<'_>> + Clone {
        self.map.iter().map(|(id, b)| BridgeView {
            name: &b.sync.name,
            id: *id,
            connected: b.conn.is_some(),
            failed_objects: &b.sync.failed_objects,
        })
    }

    pub fn stop(&self) {
        for b in self.map.values() {
            b.switch.stop();
        }
    }

    /// Carries out what each bridge's session asks for: flow monitors, full syncs, `delta`.
    pub async fn send(&mut self, compiler: &Compiler, delta: &Delta, metrics: &Metrics) -> Sent {
        let mut sent = Sent {
            any: !delta.is_empty(),
            ..Sent::default()
        };
        for (&id, b) in self.map.iter_mut() {
            // The Connected event can come before or after the handle holds the connection.
            if b.conn.as_ref().is_none_or(|c| c.is_closed()) {
                b.conn = b.switch.current();
            }
            if let Some(g) = b.conn.as_ref().and_then(Connection::generation) {
                b.session.connected(g, Instant::now());
            }
            while let Some(action) = b.session.poll(Instant::now(), !delta.is_empty()) {
                let Some(conn) = b.conn.clone() else {
                    break;
                };
                match action {
                    Action::RequestMonitor { generation } => {
                        request_monitor(conn, id, generation, self.events.clone());
                    }
                    Action::FullSync { generation } | Action::Delta { generation } => {
                        let full = matches!(action, Action::FullSync { .. });
                        let t = Instant::now();
                        let result =
                            sync_once(&mut b.sync, &conn, full, compiler, delta, metrics).await;
                        if matches!(result, Err(sync::Error::Timeout { .. })) {
                            conn.close();
                            b.conn = None;
                        }
                        sent.any = true;
                        let first = !b.session.has_synced();
                        b.session
                            .sync_finished(generation, result.is_ok(), Instant::now());
                        match result {
                            Ok(r) => {
                                if full {
                                    info!(bridge = %b.sync.name, generation, installed_before = r.installed_before, "resynced");
                                }
                                record(metrics, &r, t.elapsed());
                                for f in &r.failed {
                                    let who = describe_object(compiler, f.object);
                                    error!(bridge = %b.sync.name, object = %who, flow = %f.flow, error = %f.error, "the switch rejected a flow; the object's flows are left out");
                                    metrics.error("openflow");
                                }
                                if r.flow_mods() > 0 || first {
                                    info!(bridge = %b.sync.name, generation, adds = r.adds, modifies = r.modifies, deletes = r.deletes, bundles = r.bundles, ms = t.elapsed().as_secs_f64() * 1e3, "batch");
                                }
                                sent.int_bridge_updated |= id == BR_INT;
                            }
                            Err(e) => {
                                warn!("{e}");
                                metrics.error("openflow");
                            }
                        }
                        // One sync per bridge and round; what is due next comes next round.
                        break;
                    }
                }
            }
        }
        metrics.set_switch_connected(self.all_connected());
        sent
    }
}

/// A full sync (TLV map first on br-int, then dump and diff) or the delta, bounded by
/// [`SWITCH_TIMEOUT`]: a connection that dies mid-transaction must not stall the loop.
async fn sync_once(
    sync: &mut BridgeSync,
    conn: &Connection,
    full: bool,
    compiler: &Compiler,
    delta: &Delta,
    metrics: &Metrics,
) -> Result<SyncReport, sync::Error> {
    let name = sync.name.clone();
    let work = async {
        if !full {
            return sync.sync_delta(conn, delta).await;
        }
        if sync.bridge == BR_INT {
            // Flows that use the Geneve option need the TLV map first.
            let tlv = TlvMap {
                option_class: GENEVE_OPT_CLASS,
                option_type: GENEVE_OPT_TYPE,
                option_len: GENEVE_OPT_LEN,
                index: GENEVE_OPT_INDEX as u16,
            };
            tracing::debug!(bridge = %sync.name, "ensuring the TLV map");
            if let Err(e) = ensure_tlv_maps(conn, &[tlv]).await {
                warn!("geneve TLV map: {e}");
                metrics.error("openflow");
            }
        }
        tracing::debug!(bridge = %sync.name, "dumping installed flows");
        sync.sync_full(conn, compiler.flows()).await
    };
    tokio::time::timeout(SWITCH_TIMEOUT, work)
        .await
        .unwrap_or(Err(sync::Error::Timeout {
            bridge: name,
            after: SWITCH_TIMEOUT,
        }))
}

/// Asks connection `generation` for flow monitor updates (someone else changing flows); a
/// refusal goes back to the loop, where the session turns to periodic comparison.
fn request_monitor(
    conn: Connection,
    id: BridgeId,
    generation: u64,
    events: mpsc::Sender<SwitchInput>,
) {
    tokio::spawn(async move {
        let mut req = Vec::new();
        let flags = monitor_flags::ADD | monitor_flags::DELETE | monitor_flags::MODIFY;
        encode_flow_monitor_request(1, flags, 255, &Match::new(), 0, &mut req);
        if let Err(e) = conn.multipart(req).await {
            warn!("flow monitor not available ({e}); drift is found by the periodic check");
            let _ = events
                .send(SwitchInput::MonitorRefused(id, generation))
                .await;
        }
    });
}

fn record(metrics: &Metrics, r: &SyncReport, total: Duration) {
    if r.bundles > 0 {
        metrics.bundle_committed(r.commit_time.as_secs_f64());
    }
    metrics.flow_mods(r.adds as u64, r.modifies as u64, r.deletes as u64);
    metrics.reconciled(total.as_secs_f64());
}

/// Flows per pipeline stage, from the desired set (which the switch holds once synced).
pub fn update_flow_gauges(metrics: &Metrics, counts: &pipelines::FlowCounts) {
    for s in Stage::ALL {
        metrics.set_flows(s.name(), counts.stage(s) as i64);
    }
}
