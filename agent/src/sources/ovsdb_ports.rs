//! The OVSDB Interface table as the compiler needs it: which ofport each pod's port has (by
//! `external_ids:iface-id`), and the ofports of kovs's own ports (tunnel, node port, patch
//! ports), learned from the agent's Interface monitor.

use std::collections::HashMap;

use pipelines::tables::{
    DEFAULT_NODE_OFPORT, DEFAULT_TUNNEL_OFPORT, NODE_PORT_NAME, TUNNEL_PORT_PREFIX,
};
use pipelines::NodeConfig;
use tracing::warn;

use crate::ovsdb::{Interface, WatchEvent};

/// Ofports learned from OVSDB.
#[derive(Default)]
pub struct Ports {
    /// Interface name -> ofport (kovs's own ports).
    pub by_name: HashMap<String, u32>,
    /// iface-id -> ofport (pods).
    pods: HashMap<String, u32>,
    /// Interface name -> iface-id, to forget a pod when its interface goes.
    names: HashMap<String, String>,
}

impl Ports {
    pub fn upsert(&mut self, r: &Interface) -> Option<(String, Option<u32>)> {
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
    pub fn apply(
        &mut self,
        ev: WatchEvent<Interface>,
        infra: &mut bool,
    ) -> Vec<(String, Option<u32>)> {
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
    pub fn fill(&self, c: &mut NodeConfig, tunnel_port: &str) {
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
