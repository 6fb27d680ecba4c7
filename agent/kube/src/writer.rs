//! What the agent writes to the API, and nothing else: this node's provider-network labels
//! (`<pn>.provider-network.kubernetes.io/{ready,interface,mtu,exclude}`, by JSON merge patch
//! of those keys only) and Events (on ProviderNetworks as kube-ovn-cni emits them, and a
//! Warning on each object kovs rejects).
//!
//! Both run on tasks of their own, so a slow or absent API server never holds up the loop:
//! labels converge to the latest wish (retried with backoff), Events are queued (a full
//! queue drops them, with a log line; the same rejection is not reported twice).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use pipelines::model::ObjectKey;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::lean::{self, Lean, NodeShape};

/// The label domain of provider networks (Kube-OVN's `pkg/util/const.go`).
pub const LABEL_DOMAIN: &str = "provider-network.kubernetes.io";
/// The keys of that domain kovs writes (Kube-OVN also has `vlan_interfaces`, `err_mesg`: not
/// kovs's).
pub const LABEL_KEYS: [&str; 4] = ["ready", "interface", "mtu", "exclude"];
/// Who writes: the field manager of the label patches, the reporting controller of Events.
pub const MANAGER: &str = "kovs-agent";

/// Whether a node label is one of kovs's (`<pn>.provider-network.kubernetes.io/<key>`).
pub fn is_kovs_label(key: &str) -> bool {
    let Some((prefix, name)) = key.split_once('/') else {
        return false;
    };
    let Some(pn) = prefix.strip_suffix(LABEL_DOMAIN) else {
        return false;
    };
    pn.len() > 1 && pn.ends_with('.') && LABEL_KEYS.contains(&name)
}

/// Labels as a map.
pub type Labels = BTreeMap<String, String>;

/// This node's labels: what kovs wants of its keys, and what the node has (its watcher's
/// view). Cheap to clone.
#[derive(Clone)]
pub struct NodeLabels {
    desired: Arc<watch::Sender<Option<Labels>>>,
    observed: Arc<watch::Sender<Option<Labels>>>,
}

impl Default for NodeLabels {
    fn default() -> Self {
        NodeLabels {
            desired: Arc::new(watch::channel(None).0),
            observed: Arc::new(watch::channel(None).0),
        }
    }
}

impl NodeLabels {
    /// kovs's labels for this node (every other key of kovs's is to be removed).
    pub fn want(&self, labels: Labels) {
        self.desired.send_if_modified(|d| {
            let changed = d.as_ref() != Some(&labels);
            *d = Some(labels);
            changed
        });
    }

    /// The node's labels as seen (`None`: no such node).
    pub fn observed(&self, labels: Option<Labels>) {
        self.observed.send_if_modified(|o| {
            let changed = *o != labels;
            *o = labels;
            changed
        });
    }
}

/// The merge patch bringing kovs's keys on `observed` to `desired`, or `None` when they are
/// there (or either is unknown). Other keys are never named.
pub fn label_patch(observed: Option<&Labels>, desired: Option<&Labels>) -> Option<Value> {
    let (observed, desired) = (observed?, desired?);
    let mut patch = Map::new();
    for (k, v) in desired {
        if is_kovs_label(k) && observed.get(k) != Some(v) {
            patch.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for k in observed.keys() {
        if is_kovs_label(k) && !desired.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    (!patch.is_empty()).then(|| json!({"metadata": {"labels": patch}}))
}

/// Whether an Event is a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// An Event to publish about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub regarding: ObjectKey,
    pub severity: Severity,
    /// `InitOVSBridgeSucceeded`, `InitOVSBridgeFailed`, `Rejected`.
    pub reason: String,
    /// What the agent did (events.k8s.io's `action`).
    pub action: String,
    pub message: String,
}

/// The API's cap on an Event's note.
const NOTE_MAX: usize = 1024;
/// Events waiting to be published; beyond it they are dropped (and logged).
const EVENT_QUEUE: usize = 256;

/// The writer's handle: labels and Events.
#[derive(Clone)]
pub struct Writer {
    labels: NodeLabels,
    events: mpsc::Sender<Note>,
}

impl Writer {
    /// Starts the label and Event tasks for this node.
    pub fn start(client: &Client, node: &str, labels: NodeLabels) -> Writer {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(label_task(client.clone(), node.to_string(), labels.clone()));
        tokio::spawn(event_task(client.clone(), node.to_string(), rx));
        Writer { labels, events: tx }
    }

    /// kovs's labels for this node.
    pub fn want_labels(&self, labels: Labels) {
        self.labels.want(labels);
    }

    /// Queues an Event.
    pub fn note(&self, note: Note) {
        if let Err(e) = self.events.try_send(note) {
            warn!(
                "kube: event not published (queue full): {:?}",
                e.into_inner()
            );
        }
    }
}

/// Keeps kovs's keys of this node's labels as wanted: patches when they differ from what the
/// node has, again after a failure (100 ms doubling to 30 s) or when either side changes.
async fn label_task(client: Client, node: String, labels: NodeLabels) {
    let api: Api<Lean<NodeShape>> = Api::all_with(
        client,
        &lean::api_resource(pipelines::model::ObjectKind::Node),
    );
    let mut desired = labels.desired.subscribe();
    let mut observed = labels.observed.subscribe();
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    let mut delay = Duration::from_millis(100);
    loop {
        let patch = label_patch(
            observed.borrow_and_update().as_ref(),
            desired.borrow_and_update().as_ref(),
        );
        let Some(patch) = patch else {
            tokio::select! {
                r = desired.changed() => if r.is_err() { return },
                r = observed.changed() => if r.is_err() { return },
            }
            continue;
        };
        match api.patch(&node, &params, &Patch::Merge(&patch)).await {
            Ok(n) => {
                info!(node = %node, "kube: node labels {}", patch["metadata"]["labels"]);
                labels.observed(Some(n.metadata.labels.unwrap_or_default()));
                delay = Duration::from_millis(100);
            }
            Err(e) => {
                warn!(node = %node, "kube: patching node labels: {e}; retrying in {delay:?}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    r = desired.changed() => if r.is_err() { return },
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Publishes Events (events.k8s.io/v1, reporting controller `kovs-agent`, instance the node),
/// each regarding its object by uid (looked up, so `kubectl describe` lists it).
async fn event_task(client: Client, node: String, mut rx: mpsc::Receiver<Note>) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: Some(node),
        },
    );
    while let Some(n) = rx.recv().await {
        let ar = lean::api_resource(n.regarding.kind);
        let api: Api<DynamicObject> = if n.regarding.kind.is_namespaced() {
            Api::namespaced_with(client.clone(), &n.regarding.namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let uid = match api.get_metadata_opt(&n.regarding.name).await {
            Ok(Some(m)) => m.metadata.uid,
            Ok(None) => {
                debug!("kube: {} is gone; its event is dropped", n.regarding);
                continue;
            }
            Err(e) => {
                warn!("kube: event about {} not published: {e}", n.regarding);
                continue;
            }
        };
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(ar.api_version.clone()),
            kind: Some(ar.kind.clone()),
            name: Some(n.regarding.name.clone()),
            namespace: n
                .regarding
                .kind
                .is_namespaced()
                .then(|| n.regarding.namespace.clone()),
            uid,
            ..Default::default()
        };
        let ev = Event {
            type_: match n.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: n.reason.clone(),
            note: Some(truncate(&n.message, NOTE_MAX)),
            action: n.action.clone(),
            secondary: None,
        };
        match recorder.publish(&ev, &reference).await {
            Ok(()) => debug!("kube: event {} on {}", n.reason, n.regarding),
            Err(e) => warn!(
                "kube: event {} on {} not published: {e}",
                n.reason, n.regarding
            ),
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kovs_labels_are_the_four_keys_of_the_domain() {
        assert!(is_kovs_label("net1.provider-network.kubernetes.io/ready"));
        assert!(is_kovs_label("a.provider-network.kubernetes.io/exclude"));
        assert!(!is_kovs_label(
            "net1.provider-network.kubernetes.io/err_mesg"
        ));
        assert!(!is_kovs_label(
            "net1.provider-network.kubernetes.io/vlan_interfaces"
        ));
        assert!(!is_kovs_label("provider-network.kubernetes.io/ready"));
        assert!(!is_kovs_label(".provider-network.kubernetes.io/ready"));
        assert!(!is_kovs_label("kubernetes.io/hostname"));
        assert!(!is_kovs_label("ready"));
    }

    #[test]
    fn the_patch_names_only_kovss_keys_that_differ() {
        let observed = labels(&[
            ("kubernetes.io/hostname", "n1"),
            ("net1.provider-network.kubernetes.io/ready", "true"),
            ("net1.provider-network.kubernetes.io/mtu", "1400"),
            ("old.provider-network.kubernetes.io/exclude", "true"),
            ("old.provider-network.kubernetes.io/err_mesg", "not ours"),
        ]);
        let desired = labels(&[
            ("net1.provider-network.kubernetes.io/ready", "true"),
            ("net1.provider-network.kubernetes.io/mtu", "1500"),
            ("net1.provider-network.kubernetes.io/interface", "eth1"),
        ]);
        assert_eq!(
            label_patch(Some(&observed), Some(&desired)),
            Some(json!({"metadata": {"labels": {
                "net1.provider-network.kubernetes.io/mtu": "1500",
                "net1.provider-network.kubernetes.io/interface": "eth1",
                "old.provider-network.kubernetes.io/exclude": null,
            }}}))
        );
        // Once there: nothing; unknown sides: nothing.
        let mut after = observed.clone();
        after.remove("old.provider-network.kubernetes.io/exclude");
        after.extend(desired.clone());
        assert_eq!(label_patch(Some(&after), Some(&desired)), None);
        assert_eq!(label_patch(None, Some(&desired)), None);
        assert_eq!(label_patch(Some(&observed), None), None);
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate(&"x".repeat(2000), NOTE_MAX).len(), NOTE_MAX);
    }
}
