//! The controller's edge (`kovs-agent controller`): every object of the kinds it reconciles as
//! JSON, and the writes it makes (create, merge patch, status, delete, Events). The decisions
//! are the agent's (`kovs_agent::controller`, no I/O); this module only moves objects.
//!
//! Unlike the node agent's watchers ([`crate::watch`]) these keep whole objects, less
//! `managedFields`: the controller reads owner references, uids and annotations the model
//! does not have, and runs once per cluster, not once per node.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::watch::Backoff;
use crate::{Endpoint, Error};

/// The field manager of the controller's writes and the reporting controller of its Events.
pub const CONTROLLER: &str = "kovs-controller";

/// A kind the controller watches or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    Namespace,
    Node,
    Subnet,
    Ip,
    Vlan,
    ProviderNetwork,
    Vpc,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Pod,
        Kind::Namespace,
        Kind::Node,
        Kind::Subnet,
        Kind::Ip,
        Kind::Vlan,
        Kind::ProviderNetwork,
        Kind::Vpc,
    ];

    pub fn is_namespaced(self) -> bool {
        self == Kind::Pod
    }

    pub fn api_resource(self) -> ApiResource {
        let (group, kind, plural) = match self {
            Kind::Pod => ("", "Pod", "pods"),
            Kind::Namespace => ("", "Namespace", "namespaces"),
            Kind::Node => ("", "Node", "nodes"),
            Kind::Subnet => ("kubeovn.io", "Subnet", "subnets"),
            Kind::Ip => ("kubeovn.io", "IP", "ips"),
            Kind::Vlan => ("kubeovn.io", "Vlan", "vlans"),
            Kind::ProviderNetwork => ("kubeovn.io", "ProviderNetwork", "provider-networks"),
            Kind::Vpc => ("kubeovn.io", "Vpc", "vpcs"),
        };
        let api_version = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// What the watchers tell the controller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An object added, changed or listed (its JSON, less `managedFields`).
    Apply(Kind, Value),
    /// An object deleted (its last state).
    Delete(Kind, Value),
    /// A list (the first, or a relist) is complete; objects not applied since its start are
    /// gone (the controller's core diffs).
    Listed(Kind, Vec<Value>),
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

impl From<kube::Error> for WriteError {
    fn from(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 404 => WriteError::NotFound,
            kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => {
                WriteError::AlreadyExists
            }
            kube::Error::Api(s) if s.code == 409 => WriteError::Conflict(s.message.clone()),
            _ => WriteError::Other(e.to_string()),
        }
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regarding {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Option<String>,
}

/// The controller's client.
#[derive(Clone)]
pub struct ControlClient {
    client: Client,
    recorder: Recorder,
}

impl ControlClient {
    /// Reads the configuration and makes the client; `identity` names this replica in Events.
    pub async fn connect(endpoint: &Endpoint, identity: &str) -> Result<ControlClient, Error> {
        let kube = crate::Kube::connect(endpoint, identity).await?;
        Ok(ControlClient::from_client(kube.client, identity))
    }

    fn from_client(client: Client, identity: &str) -> ControlClient {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER.into(),
                instance: Some(identity.into()),
            },
        );
        ControlClient { client, recorder }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn api(&self, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = kind.api_resource();
        match namespace {
            Some(ns) if kind.is_namespaced() => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Starts one watcher per kind; their events arrive on the receiver.
    pub fn watch(&self) -> (mpsc::Receiver<Event>, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(4096);
        let tasks = Kind::ALL
            .into_iter()
            .map(|kind| tokio::spawn(watch_kind(self.api(kind, None), kind, tx.clone())))
            .collect();
        (rx, tasks)
    }

    /// Creates an object (its JSON has `apiVersion`, `kind`, `metadata`).
    pub async fn create(&self, kind: Kind, object: &Value) -> Result<Value, WriteError> {
        let o: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| WriteError::Other(e.to_string()))?;
        let ns = o.metadata.namespace.clone();
        let created = self
            .api(kind, ns.as_deref())
            .create(&PostParams::default(), &o)
            .await?;
        Ok(to_value(created))
    }

    /// A JSON merge patch of an object.
    pub async fn merge_patch(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, WriteError> {
        let o = self
            .api(kind, namespace)
            .patch(name, &params(), &Patch::Merge(patch))
            .await?;
        Ok(to_value(o))
    }

    /// A JSON merge patch of an object's status subresource (`patch` is `{"status": ...}`).
    pub async fn patch_status(
        &self,
        kind: Kind,
        name: &str,
        patch: &Value,
    ) -> Result<(), WriteError> {
        self.api(kind, None)
            .patch_status(name, &params(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Deletes an object; gone already is fine.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), WriteError> {
        match self
            .api(kind, namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match WriteError::from(e) {
                WriteError::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Publishes an Event (events.k8s.io/v1).
    pub async fn event(
        &self,
        regarding: &Regarding,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), WriteError> {
        let ar = regarding.kind.api_resource();
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(ar.api_version.clone()),
            kind: Some(ar.kind.clone()),
            name: Some(regarding.name.clone()),
            namespace: regarding.namespace.clone(),
            uid: regarding.uid.clone(),
            ..Default::default()
        };
        let ev = KubeEvent {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        self.recorder.publish(&ev, &reference).await?;
        Ok(())
    }
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(CONTROLLER.into()),
        ..PatchParams::default()
    }
}

/// An object as JSON, without `managedFields` (large, and read by nobody here).
fn to_value(mut o: DynamicObject) -> Value {
    o.metadata.managed_fields = None;
    serde_json::to_value(o).unwrap_or(Value::Null)
}

async fn watch_kind(api: Api<DynamicObject>, kind: Kind, tx: mpsc::Sender<Event>) {
    let stream = watcher(api, watcher::Config::default()).backoff(Backoff::default());
    let mut stream = std::pin::pin!(stream);
    let mut listing: Option<Vec<Value>> = None;
    while let Some(ev) = stream.next().await {
        let event = match ev {
            Ok(watcher::Event::Init) => {
                listing = Some(Vec::new());
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                if let Some(l) = &mut listing {
                    l.push(to_value(o));
                }
                continue;
            }
            Ok(watcher::Event::InitDone) => Event::Listed(kind, listing.take().unwrap_or_default()),
            Ok(watcher::Event::Apply(o)) => Event::Apply(kind, to_value(o)),
            Ok(watcher::Event::Delete(o)) => Event::Delete(kind, to_value(o)),
            Err(e) => {
                warn!(kind = ?kind, "kube: {e}");
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            debug!(kind = ?kind, "watch: the controller stopped");
            return;
        }
    }
}

/// The time now, RFC 3339 in whole seconds (condition timestamps).
pub fn now() -> String {
    format!("{:.0}", k8s_openapi::jiff::Timestamp::now())
}

/// How long to wait before retrying a failed write (doubling from 100 ms to 5 s).
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(6)).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_their_resources() {
        let ar = Kind::ProviderNetwork.api_resource();
        assert_eq!(
            (ar.api_version.as_str(), ar.plural.as_str()),
            ("kubeovn.io/v1", "provider-networks")
        );
        let ar = Kind::Pod.api_resource();
        assert_eq!((ar.api_version.as_str(), ar.kind.as_str()), ("v1", "Pod"));
        assert!(Kind::Pod.is_namespaced() && !Kind::Ip.is_namespaced());
    }

    #[test]
    fn now_is_rfc3339_in_seconds() {
        let n = now();
        assert_eq!(n.len(), "2026-01-01T00:00:00Z".len(), "{n}");
        assert!(n.ends_with('Z'));
    }

    #[test]
    fn retries_back_off_to_five_seconds() {
        assert_eq!(retry_delay(0), Duration::from_millis(100));
        assert_eq!(retry_delay(3), Duration::from_millis(800));
        assert_eq!(retry_delay(20), Duration::from_secs(5));
    }
}
