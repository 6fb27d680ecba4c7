//! The watch set: one kube-runtime watcher per [`Scope`], each event decoded as a [`Lean`]
//! object, turned into the model's object and sent to the agent's loop as an [`Input`].
//!
//! Nothing here keeps objects: the loop's compiler holds the state. A watcher's list (the first
//! one, or a relist after a `410 Gone`) ends with [`Input::Listed`] and the keys it listed, so
//! the loop can delete what the list no longer has; objects equal to what the compiler holds
//! are no change there, so a relist of an unchanged cluster changes no flow.
//!
//! Reconnecting is kube-runtime's (resume from the last resource version, relist after a 410),
//! paced by [`Backoff`]. Whether the API server can be reached is told apart from refusals
//! (an RBAC rule missing answers 403: connected, but that watch fails) by [`connectivity`].

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::utils::Backoff as BackoffPolicy;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use pipelines::model::{Object, ObjectKey, ObjectKind};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::lean::{self, CrdShape, IpShape, Lean, NodeShape, PodShape, Shape, Take};
use crate::NodeLabels;

/// One watcher: a kind, and for pods which node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Nodes,
    ProviderNetworks,
    Vlans,
    Vpcs,
    Subnets,
    /// This node's pods (`spec.nodeName=<node>`): what the CNI server wires.
    LocalPods,
    /// Every other node's pods, from Kube-OVN's IP objects (label
    /// `ovn.kubernetes.io/node-name!=<node>`): their addresses and nodes, for the overlay.
    RemotePods,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Nodes,
        Scope::ProviderNetworks,
        Scope::Vlans,
        Scope::Vpcs,
        Scope::Subnets,
        Scope::LocalPods,
        Scope::RemotePods,
    ];

    /// The model's kind of the objects it lists.
    pub fn kind(self) -> ObjectKind {
        match self {
            Scope::Nodes => ObjectKind::Node,
            Scope::ProviderNetworks => ObjectKind::ProviderNetwork,
            Scope::Vlans => ObjectKind::Vlan,
            Scope::Vpcs => ObjectKind::Vpc,
            Scope::Subnets => ObjectKind::Subnet,
            Scope::LocalPods | Scope::RemotePods => ObjectKind::Pod,
        }
    }

    /// Its name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Nodes => "nodes",
            Scope::ProviderNetworks => "provider-networks",
            Scope::Vlans => "vlans",
            Scope::Vpcs => "vpcs",
            Scope::Subnets => "subnets",
            Scope::LocalPods => "local-pods",
            Scope::RemotePods => "remote-pods",
        }
    }

    /// Whether an object of the scope's kind held with this node (pods; `None` for other kinds)
    /// is one this watcher lists.
    pub fn covers(self, this_node: &str, node: Option<&str>) -> bool {
        match self {
            Scope::LocalPods => node == Some(this_node),
            Scope::RemotePods => node != Some(this_node),
            _ => true,
        }
    }

    fn config(self, this_node: &str) -> watcher::Config {
        let c = watcher::Config::default();
        match self {
            Scope::LocalPods => c.fields(&format!("spec.nodeName={this_node}")),
            Scope::RemotePods => c.labels(&format!("{IP_NODE_LABEL}!={this_node}")),
            _ => c,
        }
    }
}

/// The label Kube-OVN puts on an IP object: the node of its pod.
pub const IP_NODE_LABEL: &str = "ovn.kubernetes.io/node-name";

/// What the watchers tell the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An object added or changed, or listed again.
    Apply(Scope, Object),
    /// An object deleted (or, for pods, no longer in the scope's selector).
    Delete(Scope, ObjectKey),
    /// An object the model cannot read (the file source's load error): it is left out, as a
    /// file's unreadable document is.
    Unreadable(Scope, ObjectKey, String),
    /// A list (the first, or a relist after a 410) is complete: these are every key it had.
    Listed(Scope, HashSet<ObjectKey>),
    /// The API server became reachable (`true`) or not.
    Connected(bool),
}

/// The running watchers' end: inputs in arrival order.
pub struct Watches {
    rx: mpsc::Receiver<Input>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How many inputs a watcher may be ahead of the loop before it waits (then the API server's
/// stream waits too, by TCP flow control).
const QUEUE: usize = 4096;
/// The most inputs handed to the loop at once.
const BATCH: usize = 4096;

impl Watches {
    /// Starts a watcher per scope, and the connectivity probe. `node_labels` gets this node's
    /// labels whenever the Node watcher sees them change.
    pub fn start(client: &Client, this_node: &str, node_labels: NodeLabels) -> Watches {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (errors_tx, errors_rx) = watch::channel(0u64);
        let mut tasks = Vec::new();
        let errors = Errors(errors_tx);
        for scope in Scope::ALL {
            let w = Watcher {
                scope,
                this_node: this_node.to_string(),
                tx: tx.clone(),
                errors: errors.clone(),
                node_labels: node_labels.clone(),
            };
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                match scope {
                    Scope::Nodes => w.run::<NodeShape>(c).await,
                    Scope::ProviderNetworks => w.run::<CrdShape<lean::ProviderNetwork>>(c).await,
                    Scope::Vlans => w.run::<CrdShape<lean::Vlan>>(c).await,
                    Scope::Vpcs => w.run::<CrdShape<lean::Vpc>>(c).await,
                    Scope::Subnets => w.run::<CrdShape<lean::Subnet>>(c).await,
                    Scope::LocalPods => w.run::<PodShape>(c).await,
                    Scope::RemotePods => w.run::<IpShape>(c).await,
                }
            }));
        }
        tasks.push(tokio::spawn(connectivity(client.clone(), errors_rx, tx)));
        Watches { rx, tasks }
    }

    /// The next inputs: waits for one, then takes what else is queued (a burst becomes one
    /// batch). `None` once every watcher stopped.
    pub async fn next(&mut self) -> Option<Vec<Input>> {
        let first = self.rx.recv().await?;
        let mut v = vec![first];
        while v.len() < BATCH {
            match self.rx.try_recv() {
                Ok(i) => v.push(i),
                Err(_) => break,
            }
        }
        Some(v)
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Watchers tell the connectivity probe about failures by bumping this.
#[derive(Clone)]
struct Errors(watch::Sender<u64>);

impl Errors {
    fn report(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// Reconnection pacing: 100 ms doubling to 5 s, from the start again after a success (kube's
/// default waits up to 30 s, too long for a node agent whose dataplane waits for the change).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (d * 2).min(BACKOFF_MAX);
        Some(d)
    }
}

impl BackoffPolicy for Backoff {
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

struct Watcher {
    scope: Scope,
    this_node: String,
    tx: mpsc::Sender<Input>,
    errors: Errors,
    node_labels: NodeLabels,
}

impl Watcher {
    async fn run<S: Shape>(self, client: Client) {
        let api: Api<Lean<S>> = Api::all_with(client, &S::api_resource());
        let stream = watcher(api, self.scope.config(&self.this_node)).backoff(Backoff::default());
        let mut stream = std::pin::pin!(stream);
        // Keys of the list in progress, between Init and InitDone.
        let mut listing: Option<HashSet<ObjectKey>> = None;
        while let Some(ev) = stream.next().await {
            let input = match ev {
                Ok(watcher::Event::Init) => {
                    debug!(watch = self.scope.name(), "listing");
                    listing = Some(HashSet::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(o)) => {
                    // Not listed: a key held from before is deleted by the Listed.
                    if S::take(&o, &self.this_node) != Take::Object {
                        continue;
                    }
                    let input = self.decode(&o);
                    if let (Some(seen), Input::Apply(_, obj)) = (&mut listing, &input) {
                        seen.insert(obj.key());
                    }
                    input
                }
                Ok(watcher::Event::InitDone) => {
                    let seen = listing.take().unwrap_or_default();
                    debug!(watch = self.scope.name(), objects = seen.len(), "listed");
                    Input::Listed(self.scope, seen)
                }
                Ok(watcher::Event::Apply(o)) => match S::take(&o, &self.this_node) {
                    Take::Object => self.decode(&o),
                    Take::Gone => Input::Delete(self.scope, o.key()),
                    Take::Ignore => continue,
                },
                Ok(watcher::Event::Delete(o)) if S::take(&o, &self.this_node) != Take::Ignore => {
                    if self.scope == Scope::Nodes
                        && o.metadata.name.as_deref() == Some(&self.this_node)
                    {
                        self.node_labels.observed(None);
                    }
                    Input::Delete(self.scope, o.key())
                }
                Ok(watcher::Event::Delete(_)) => continue,
                Err(e) => {
                    self.failed(&e);
                    continue;
                }
            };
            if self.tx.send(input).await.is_err() {
                return; // the loop stopped
            }
        }
    }

    /// The model's object, or why it cannot be read.
    fn decode<S: Shape>(&self, o: &Lean<S>) -> Input {
        if self.scope == Scope::Nodes && o.metadata.name.as_deref() == Some(&self.this_node) {
            self.node_labels
                .observed(Some(o.metadata.labels.clone().unwrap_or_default()));
        }
        match o.to_model() {
            Ok(obj) => Input::Apply(self.scope, obj),
            Err(e) => {
                let key = o.key();
                Input::Unreadable(self.scope, key.clone(), format!("{key}: {e}"))
            }
        }
    }

    fn failed(&self, e: &watcher::Error) {
        if refused(e) {
            // Reachable, but this watch is refused (e.g. a missing RBAC rule): say so each time,
            // it does not heal by waiting.
            warn!(watch = self.scope.name(), "kube: {e}");
        } else {
            debug!(watch = self.scope.name(), "kube: {e}");
            self.errors.report();
        }
    }
}

/// Whether a watcher error is the API server answering no (reachable) rather than not
/// answering. A 410 is neither: kube-runtime lists again.
fn refused(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => matches!(e, kube::Error::Api(_)),
        watcher::Error::WatchError(status) => status.code != 410 && status.code < 500,
        watcher::Error::NoResourceVersion => true,
    }
}

/// Tells the loop whether the API server can be reached: unreachable after a watcher's
/// transport error, reachable again once `/version` answers (asked with the watchers' backoff).
/// The watchers reconnect by themselves; this only reports it (`kovs_kube_connected`, logs).
async fn connectivity(client: Client, mut errors: watch::Receiver<u64>, tx: mpsc::Sender<Input>) {
    let mut connected = true;
    loop {
        if errors.changed().await.is_err() {
            return;
        }
        // A failure: is the server there?
        let mut backoff = Backoff::default();
        let mut first = true;
        loop {
            match client.apiserver_version().await {
                Ok(_) if !connected => {
                    info!("kube: the API server answers again; the watchers resume and apply what changed");
                    connected = true;
                    if tx.send(Input::Connected(true)).await.is_err() {
                        return;
                    }
                    break;
                }
                Ok(_) => break,
                Err(e) => {
                    if connected {
                        warn!("kube: the API server cannot be reached ({e}); the dataplane keeps the last state; reconnecting");
                        connected = false;
                        if tx.send(Input::Connected(false)).await.is_err() {
                            return;
                        }
                    } else if first {
                        debug!("kube: still unreachable: {e}");
                    }
                }
            }
            first = false;
            let d = backoff.next().unwrap_or(BACKOFF_MAX);
            tokio::time::sleep(d).await;
        }
        // Errors reported while probing are answered by this probe.
        errors.borrow_and_update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_five_seconds_and_resets() {
        let mut b = Backoff::default();
        let v: Vec<u64> = (&mut b).take(8).map(|d| d.as_millis() as u64).collect();
        assert_eq!(v, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn pod_scopes_split_by_node() {
        assert!(Scope::LocalPods.covers("n1", Some("n1")));
        assert!(!Scope::LocalPods.covers("n1", Some("n2")));
        assert!(Scope::RemotePods.covers("n1", Some("n2")));
        assert!(Scope::RemotePods.covers("n1", Some("")));
        assert!(!Scope::RemotePods.covers("n1", Some("n1")));
        assert!(Scope::Subnets.covers("n1", None));
    }

    #[test]
    fn a_refusal_is_told_from_an_unreachable_server() {
        use kube::core::Status;
        let status = |code: u16| Status {
            code,
            ..Status::default()
        };
        let api = |code| kube::Error::Api(Box::new(status(code)));
        assert!(refused(&watcher::Error::InitialListFailed(api(403))));
        assert!(refused(&watcher::Error::WatchError(Box::new(status(403)))));
        assert!(!refused(&watcher::Error::WatchError(Box::new(status(410)))));
        assert!(!refused(&watcher::Error::WatchError(Box::new(status(503)))));
        let io = kube::Error::ReadEvents(std::io::Error::other("reset"));
        assert!(!refused(&watcher::Error::WatchFailed(io)));
    }
}
