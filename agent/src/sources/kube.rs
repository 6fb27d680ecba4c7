//! The Kubernetes API as the agent's source (the kube-rs side is the `kovs-kube` crate):
//! watchers feed the loop the same object changes the state files do, and what the agent
//! writes back — this node's provider-network labels, Events on ProviderNetworks and on
//! rejected objects — goes out through the writer.
//!
//! Start-up waits for every watcher's first list and builds the compiler from all of it at
//! once, as the file source does with its first load. After that each batch of watch events
//! is diffed against what the compiler holds ([`kovs_kube::batch`]): a pod event is one pod
//! change on the compiler's fast path, and a relist of an unchanged cluster changes nothing.

use std::time::{Duration, Instant};

use kovs_kube::{
    Endpoint, Initial, Input, Kube, Labels, NodeLabels, Note, Rejections, Severity, Watches, Writer,
};
use pipelines::model::{ObjectKey, ObjectKind, ObjectSet};
use pipelines::Compiler;
use tracing::{info, warn};

use crate::observe::metrics::Metrics;
use crate::reconcile::provider::ProviderEvent;

/// How often start-up says which first lists it still waits for.
const WAITING_LOG_PERIOD: Duration = Duration::from_secs(10);

/// The running source: watchers in, writer out.
pub struct KubeSource {
    node: String,
    watches: Watches,
    writer: Writer,
    /// The rejections already reported by an Event.
    rejections: Rejections,
}

/// Why the source could not start.
pub type Error = kovs_kube::Error;

impl KubeSource {
    /// Makes the client, starts the watchers and the writer, and waits for every watcher's
    /// first list (however long the API server takes; `kovs_kube_connected` says whether it
    /// answers). Returns the source and every object listed.
    pub async fn start(
        endpoint: &Endpoint,
        node: &str,
        metrics: &Metrics,
    ) -> Result<(KubeSource, ObjectSet), Error> {
        let kube = Kube::connect(endpoint, node).await?;
        let labels = NodeLabels::default();
        let mut watches = kube.watch(labels.clone());
        let writer = kube.writer(labels);
        let mut initial = Initial::new(node);
        let t = Instant::now();
        let mut last_log = Instant::now();
        info!("kube: listing");
        while !initial.complete() {
            let wait = tokio::time::timeout(WAITING_LOG_PERIOD, watches.next()).await;
            match wait {
                Ok(Some(inputs)) => {
                    for i in inputs {
                        if let Input::Listed(scope, _) = &i {
                            metrics.kube_listed(scope.name());
                        }
                        initial.take(i);
                    }
                    if let Some(c) = initial.connected {
                        metrics.set_kube_connected(c);
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
            if last_log.elapsed() >= WAITING_LOG_PERIOD {
                warn!("kube: still waiting for the first lists of the API server");
                last_log = Instant::now();
            }
        }
        let mut source = KubeSource {
            node: node.to_string(),
            watches,
            writer,
            rejections: Rejections::default(),
        };
        for u in std::mem::take(&mut initial.unreadable) {
            source.unreadable(u, metrics);
        }
        info!(
            objects = initial.objects.len(),
            took_ms = t.elapsed().as_millis() as u64,
            "kube: listed"
        );
        Ok((source, initial.objects))
    }

    /// The next batch of watch inputs.
    pub async fn next(&mut self) -> Option<Vec<Input>> {
        self.watches.next().await
    }

    /// A batch of inputs as the changes the compiler does not hold yet; connectivity,
    /// relists and unreadable objects are reported on the way.
    pub fn changes(
        &mut self,
        compiler: &Compiler,
        inputs: Vec<Input>,
        metrics: &Metrics,
    ) -> Vec<pipelines::model::Change> {
        let b = kovs_kube::batch(compiler, &self.node, inputs);
        if let Some(c) = b.connected {
            metrics.set_kube_connected(c);
        }
        for s in &b.listed {
            info!(watch = s.name(), "kube: listed again");
            metrics.kube_listed(s.name());
        }
        for u in b.unreadable {
            self.unreadable(u, metrics);
        }
        b.changes
    }

    fn unreadable(&mut self, u: kovs_kube::Unreadable, metrics: &Metrics) {
        warn!("state: {}", u.message);
        metrics.error("state");
        self.writer.note(Note {
            regarding: u.key,
            severity: Severity::Warning,
            reason: REJECTED.into(),
            action: "Read".into(),
            message: format!("kovs-agent on node {}: {}", self.node, u.message),
        });
    }

    /// A Warning Event on each newly rejected object: cluster-scoped ones by every agent,
    /// pods only by their own node's (they are rejected on every node alike).
    pub fn report_rejections(&mut self, compiler: &Compiler) {
        let node = self.node.as_str();
        let new = self.rejections.update(&compiler.state().errors, |e| {
            e.kind != ObjectKind::Pod || compiler.held(&e.key()).flatten() == Some(node)
        });
        for e in new {
            self.writer.note(Note {
                regarding: e.key(),
                severity: Severity::Warning,
                reason: REJECTED.into(),
                action: "Validate".into(),
                message: format!(
                    "kovs-agent on node {node} rejected it: {}: {}",
                    e.field, e.message
                ),
            });
        }
    }

    /// What a provider network's reconcile did, as kube-ovn-cni's Events on the
    /// ProviderNetwork.
    pub fn provider_event(&self, ev: &ProviderEvent) {
        let (network, severity, reason, message) = match ev {
            ProviderEvent::Ready {
                network,
                interface,
                mtu,
                ..
            } => (
                network,
                Severity::Normal,
                "InitOVSBridgeSucceeded",
                format!(
                    "Initialized provider network: node={} interface={interface} mtu={mtu}",
                    self.node
                ),
            ),
            ProviderEvent::Failed {
                network,
                interface,
                error,
            } => (
                network,
                Severity::Warning,
                "InitOVSBridgeFailed",
                format!(
                    "Failed to initialize provider network: node={} interface={interface} error={error}",
                    self.node
                ),
            ),
            _ => return,
        };
        self.writer.note(Note {
            regarding: ObjectKey::cluster(ObjectKind::ProviderNetwork, network.clone()),
            severity,
            reason: reason.into(),
            action: "InitOVSBridge".into(),
            message,
        });
    }

    /// kovs's provider-network labels for this node.
    pub fn want_labels(&self, labels: Labels) {
        self.writer.want_labels(labels);
    }
}

/// The reason of the Warning on a rejected object.
pub const REJECTED: &str = "Rejected";
