//! The `/status` document, the `--status-file` (provider-network status as Kube-OVN's node
//! labels), and naming the object behind a flow's cookie for logs.

use std::path::PathBuf;

use pipelines::ids::{object_id, pod_object_id};
use pipelines::Compiler;
use serde_json::{json, Value};
use tracing::warn;

/// One bridge as `/status` shows it.
pub struct BridgeView<'a> {
    pub name: &'a str,
    pub id: pipelines::flowset::BridgeId,
    pub connected: bool,
    /// Objects whose flows this bridge's switch rejected.
    pub failed_objects: &'a std::collections::HashSet<u64>,
}

/// The `/status` JSON document.
pub fn status<'a>(
    node: &str,
    tunnel: &str,
    compiler: &Compiler,
    bridges: impl Iterator<Item = BridgeView<'a>> + Clone,
    provider_networks: Value,
    ready: bool,
) -> Value {
    let failed: Vec<String> = bridges
        .clone()
        .flat_map(|b| {
            b.failed_objects
                .iter()
                .map(|o| describe_object(compiler, *o))
        })
        .collect();
    json!({
        "node": node,
        "ready": ready,
        "tunnelType": tunnel,
        "flows": compiler.flow_counts().total(),
        "bridges": bridges.map(|b| json!({
            "name": b.name,
            "connected": b.connected,
            "flows": compiler.flow_counts().bridge(b.id),
        })).collect::<Vec<_>>(),
        "rejected": compiler.state().errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "failedObjects": failed,
        "podsBound": compiler.config().ports.pods.len(),
        "providerNetworks": provider_networks,
    })
}

/// Which object a cookie's object part names.
pub fn describe_object(compiler: &Compiler, object: u64) -> String {
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

/// `--status-file`: the provider networks' status (Kube-OVN's node labels), rewritten when it
/// changes (atomically: written aside, then renamed).
pub struct StatusFile {
    path: Option<PathBuf>,
    last: String,
}

impl StatusFile {
    pub fn new(path: Option<PathBuf>) -> StatusFile {
        StatusFile {
            path,
            last: String::new(),
        }
    }

    pub fn write(&mut self, provider_networks: &Value) {
        let Some(path) = &self.path else {
            return;
        };
        let text = serde_json::to_string_pretty(provider_networks).unwrap_or_default();
        if text == self.last {
            return;
        }
        let tmp = path.with_extension("tmp");
        match std::fs::write(&tmp, &text).and_then(|_| std::fs::rename(&tmp, path)) {
            Ok(()) => self.last = text,
            Err(e) => warn!("--status-file {}: {e}", path.display()),
        }
    }
}
