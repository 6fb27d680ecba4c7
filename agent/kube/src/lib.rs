//! kovs's Kubernetes edge: the only crate that links kube-rs and k8s-openapi (only the agent
//! depends on it).
//!
//! ```text
//! API server ──watch──▶ watch: one watcher per Scope ──Input──▶ the agent's loop
//!                       (lean decode, model objects)              │ batch: Changes the
//!                                                                 │ compiler does not hold
//!            ◀──merge patch / Events── writer ◀──labels, notes────┘
//! ```
//!
//! * [`lean`]: objects decoded with only what the model reads, into the model's
//!   `Object` through the file source's path.
//! * [`watch`]: the watch set, reconnection, connectivity.
//! * [`batch`]: inputs into compiler changes; relists diffed against what the compiler holds.
//! * [`writer`]: this node's provider-network labels, and Events.
//! * [`control`], [`lease`]: the controller's edge (whole objects in, its writes out) and its
//!   leader election (`kovs-agent controller`).

pub mod batch;
pub mod control;
pub mod lean;
pub mod lease;
pub mod watch;
pub mod writer;

use std::path::PathBuf;

pub use batch::{batch, Batch, Initial, Rejections, Unreadable};
pub use watch::{Input, Scope, Watches};
pub use writer::{is_kovs_label, Labels, NodeLabels, Note, Severity, Writer};

/// Where the API server is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// In a pod: `KUBERNETES_SERVICE_HOST`/`_PORT` and the pod's service account.
    InCluster,
}

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--kubeconfig {path}: {source}", path = .0.display(), source = .1)]
    Kubeconfig(PathBuf, kube::config::KubeconfigError),
    #[error("in-cluster configuration: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
}

/// A client of the API server, for one node's agent.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    node: String,
}

impl Kube {
    /// Reads the configuration and makes the client (nothing is sent yet).
    pub async fn connect(endpoint: &Endpoint, node: &str) -> Result<Kube, Error> {
        let config = match endpoint {
            Endpoint::Kubeconfig(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| Error::Kubeconfig(path.clone(), e))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| Error::Kubeconfig(path.clone(), e))?
            }
            Endpoint::InCluster => kube::Config::incluster()?,
        };
        Ok(Kube {
            client: kube::Client::try_from(config)?,
            node: node.to_string(),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Starts the watchers; `labels` learns this node's labels from the Node watcher.
    pub fn watch(&self, labels: NodeLabels) -> Watches {
        Watches::start(&self.client, &self.node, labels)
    }

    /// Starts the writer (labels and Events).
    pub fn writer(&self, labels: NodeLabels) -> Writer {
        Writer::start(&self.client, &self.node, labels)
    }
}
