//! Desired vs installed flows for one bridge, kept equal with atomic bundles.
//!
//! What is installed is learned from a dump when a connection comes up (so a restarted agent
//! sends only the difference) and dropped once the switch holds the desired set; from then on
//! each change of the desired set is sent as its delta. Only flows whose cookie carries kovs's
//! mark are ever read, changed or deleted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flowlib::batch::Batch;
use flowlib::client::dump_flows_with;
use flowlib::conn::Error as ConnError;
use flowlib::conn::{BundleOptions, Connection, OfError};
use flowlib::wire::flow::FlowModCommand;
use pipelines::flowset::BridgeId;
use pipelines::tables::{COOKIE_MAGIC, COOKIE_OBJECT_MASK, COOKIE_OWNER_MASK};
use pipelines::{CompactFlow, Delta, FlowSet};

/// Why a sync of one bridge failed; each names the bridge (its OVS name).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{bridge}: dumping flows: {source}")]
    Dump { bridge: String, source: ConnError },
    #[error("{bridge}: bundle: {source}")]
    Bundle { bridge: String, source: ConnError },
    /// The bundle failed without naming a message (the outcome says how).
    #[error("{bridge}: {outcome}")]
    Failed { bridge: String, outcome: String },
    #[error("{bridge}: the switch kept rejecting flows after 4 attempts")]
    KeptRejecting { bridge: String },
    /// No answer within the daemon's bound; the connection was closed.
    #[error("{bridge}: no answer from the switch within {after:?}")]
    Timeout { bridge: String, after: Duration },
}

/// A flow the switch refused, and why.
#[derive(Debug, Clone)]
pub struct FlowError {
    /// The cookie's object part: which object caused the flow.
    pub object: u64,
    pub flow: String,
    pub error: String,
}

/// What one sync did.
#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    /// Flows found on the switch before a full sync.
    pub installed_before: usize,
    pub adds: usize,
    pub modifies: usize,
    pub deletes: usize,
    pub bundles: usize,
    pub commit_time: Duration,
    /// Flows left out because the switch rejected them (their whole object was left out).
    pub failed: Vec<FlowError>,
}

impl SyncReport {
    pub fn flow_mods(&self) -> usize {
        self.adds + self.modifies + self.deletes
    }
}

/// One bridge's installed flows.
pub struct BridgeSync {
    pub bridge: BridgeId,
    pub name: String,
    /// Objects whose flows the switch rejected: left out until their flows change.
    pub failed_objects: HashSet<u64>,
}

impl BridgeSync {
    pub fn new(bridge: BridgeId, name: &str) -> BridgeSync {
        BridgeSync {
            bridge,
            name: name.to_string(),
            failed_objects: HashSet::new(),
        }
    }

    /// Makes the switch hold exactly `desired` (this bridge's part of it): the full resync.
    /// Installed flows are compared with the desired ones as the dump is decoded, each taken
    /// out of `desired` when found; what is left is missing. Nothing installed is kept: after
    /// the sync the switch holds the desired set, which the compiler can produce again.
    pub async fn sync_full(
        &mut self,
        conn: &Connection,
        mut desired: FlowSet,
    ) -> Result<SyncReport, Error> {
        desired.retain(|f| f.bridge() == self.bridge);
        let mut delta = Delta::default();
        let mut scratch = Vec::with_capacity(256);
        let installed_before =
            dump_flows_with(conn, 255, COOKIE_MAGIC << 56, COOKIE_OWNER_MASK, |s| {
                let f = CompactFlow::new(self.bridge, &s.flow, &mut scratch);
                match desired.remove(f.key()) {
                    None => delta.delete.push(f),
                    Some(d) => delta.replace(Some(&f), &d),
                }
            })
            .await
            .map_err(|source| Error::Dump {
                bridge: self.name.clone(),
                source,
            })?;
        delta.add.extend(desired.into_flows());
        let mut r = self.send(conn, delta).await?;
        r.installed_before = installed_before;
        Ok(r)
    }

    /// Sends a delta of the desired set (this bridge's part of it).
    pub async fn sync_delta(
        &mut self,
        conn: &Connection,
        delta: &Delta,
    ) -> Result<SyncReport, Error> {
        let keep = |f: &CompactFlow| f.bridge() == self.bridge;
        let d = Delta {
            add: delta.add.iter().filter(|f| keep(f)).cloned().collect(),
            modify: delta.modify.iter().filter(|f| keep(f)).cloned().collect(),
            delete: delta.delete.iter().filter(|f| keep(f)).cloned().collect(),
        };
        self.send(conn, d).await
    }

    /// Sends `delta` as one atomic bundle. When the switch rejects flows, the objects they belong
    /// to are left out (all of their flows in this delta) and the rest is committed.
    async fn send(&mut self, conn: &Connection, mut delta: Delta) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        // A flow whose object failed earlier may now be fixed: try it again.
        for f in delta.add.iter().chain(&delta.modify) {
            self.failed_objects.remove(&object_of(f));
        }
        for _attempt in 0..4 {
            if delta.is_empty() {
                return Ok(report);
            }
            let msgs = encode(&delta);
            let t = Instant::now();
            let outcome = conn
                .commit_bundle(msgs.iter(), &BundleOptions::default())
                .await
                .map_err(|source| Error::Bundle {
                    bridge: self.name.clone(),
                    source,
                })?;
            report.bundles += 1;
            report.commit_time += t.elapsed();
            if outcome.is_ok() {
                report.adds += delta.add.len();
                report.modifies += delta.modify.len();
                report.deletes += delta.delete.len();
                return Ok(report);
            }
            if outcome.rejected.is_empty() {
                return Err(Error::Failed {
                    bridge: self.name.clone(),
                    outcome: outcome.to_string(),
                });
            }
            // Map each rejected message back to its flow and object; leave those objects out.
            let order: Vec<&CompactFlow> = delta
                .delete
                .iter()
                .chain(&delta.add)
                .chain(&delta.modify)
                .collect();
            let mut bad = HashSet::new();
            for r in &outcome.rejected {
                if let Some(f) = order.get(r.index) {
                    let object = object_of(f);
                    bad.insert(object);
                    report.failed.push(FlowError {
                        object,
                        flow: f.to_flow().map(|f| f.to_string()).unwrap_or_default(),
                        error: describe(&r.error),
                    });
                }
            }
            self.failed_objects.extend(bad.iter().copied());
            let ok = |f: &CompactFlow| !bad.contains(&object_of(f));
            delta.add.retain(ok);
            delta.modify.retain(ok);
            // Deletes of a failed object's old flows still go out: they do not depend on it.
        }
        Err(Error::KeptRejecting {
            bridge: self.name.clone(),
        })
    }
}

/// The cookie's object part.
pub fn object_of(f: &CompactFlow) -> u64 {
    f.cookie() & COOKIE_OBJECT_MASK
}

fn describe(e: &OfError) -> String {
    e.to_string()
}

/// Deletes first, then adds, then modifies, all in one buffer (no allocation per flow).
fn encode(delta: &Delta) -> Batch {
    let mut b = Batch::with_capacity(delta.len() * 128, delta.len());
    let ops = [
        (FlowModCommand::DeleteStrict, &delta.delete),
        (FlowModCommand::Add, &delta.add),
        (FlowModCommand::ModifyStrict, &delta.modify),
    ];
    for (cmd, flows) in ops {
        for f in flows.iter() {
            // A compiled flow always fits one message.
            let _ = b.push(|out| f.encode_flow_mod(cmd, 0, out));
        }
    }
    b
}
