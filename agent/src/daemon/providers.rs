//! Provider networks from the daemon's side: the NIC work ([`ProviderNetworks`]), then the patch
//! ports joining each provider bridge to br-int (and the removal of those whose network is
//! gone), the bridges' OpenFlow connections, and the `--status-file`.

use pipelines::flowset::BridgeId;
use pipelines::tables::INTEGRATION_BRIDGE;
use tracing::{info, warn};

use super::{Daemon, Error};
use crate::ovsdb::PortSpec;
use crate::reconcile::provider::ProviderEvent;

impl Daemon {
    pub(super) async fn sync_providers(&mut self) -> Result<(), Error> {
        for ev in self.providers.reconcile(self.compiler.state()).await {
            if let super::Source::Kube(k) = &self.source {
                k.provider_event(&ev);
            }
            match ev {
                ProviderEvent::Failed { .. } | ProviderEvent::RestoreFailed { .. } => {
                    warn!("provider network: {ev}")
                }
                _ => info!("provider network: {ev}"),
            }
        }
        self.ensure_patch_ports().await;
        self.connect_provider_bridges()?;
        self.status_file.write(&self.providers.status());
        if let super::Source::Kube(k) = &self.source {
            k.want_labels(self.providers.node_labels());
        }
        Ok(())
    }

    /// The OVS name of a bridge the compiler knows by `compiled`: br-int is `--bridge`; a
    /// provider bridge is named after its NIC with exchangeLinkName.
    fn ovs_bridge_name<'a>(&'a self, compiled: &'a str, network: &str) -> &'a str {
        if compiled == INTEGRATION_BRIDGE {
            &self.cfg.bridge
        } else {
            self.providers.bridge_name(network).unwrap_or(compiled)
        }
    }

    /// Both ends of each patch port pair the intent asks for; br-int's end of a network that no
    /// longer applies here is deleted.
    async fn ensure_patch_ports(&mut self) {
        let intent = self.compiler.intent();
        for p in &intent.patch_ports {
            let bridge = self.ovs_bridge_name(&p.bridge, &p.provider_network);
            let mut spec = PortSpec::new(bridge, &p.name, "patch");
            spec.options.insert("peer".into(), p.peer.clone());
            spec.ofport_request = Some(p.ofport);
            if let Err(e) = self.vs.ensure_port(&spec).await {
                warn!(provider = %p.provider_network, "ovsdb: ensuring {}: {e}", p.name);
            }
        }
        for name in self.ports.by_name.keys() {
            if let Some(pn) = name.strip_prefix("patch-int-") {
                if !intent.patch_ports.iter().any(|p| &p.name == name) {
                    if let Err(e) = self.vs.delete_port(&self.cfg.bridge, name).await {
                        warn!(provider = %pn, "ovsdb: deleting {name}: {e}");
                    }
                }
            }
        }
    }

    /// Starts (or restarts, when its OVS name changed) the OpenFlow connection of each
    /// provider bridge.
    fn connect_provider_bridges(&mut self) -> Result<(), Error> {
        let wanted: Vec<(BridgeId, String)> = self
            .compiler
            .intent()
            .provider_bridges()
            .map(|(network, b)| (b.id, self.ovs_bridge_name(&b.name, network).to_string()))
            .collect();
        for (id, ovs_name) in wanted {
            if self.bridges.name(id) == Some(ovs_name.as_str()) {
                continue;
            }
            self.bridges
                .connect(id, &ovs_name, &self.cfg.mgmt(&ovs_name))?;
        }
        Ok(())
    }
}
