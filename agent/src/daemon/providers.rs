//! Provider networks from the daemon's side: the NIC work ([`ProviderNetworks`]), then the patch
//! ports joining each provider bridge to br-int (and the removal of those whose network is
//! gone), the bridges' OpenFlow connections, and the `--status-file`.

use pipelines::tables::{patch_int_to_pn, patch_pn_to_int, PROVIDER_PATCH_OFPORT};
use tracing::{info, warn};

use super::{Daemon, Error};
use crate::ovsdb::PortSpec;
use crate::reconcile::provider::ProviderEvent;

impl Daemon {
    pub(super) async fn sync_providers(&mut self) -> Result<(), Error> {
        for ev in self.providers.reconcile(self.compiler.state()).await {
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
        Ok(())
    }

    async fn ensure_patch_ports(&mut self) {
        let plan = self.compiler.plan();
        let vs = &self.vs;
        for (pn, lp) in &plan.providers {
            let bridge = self
                .providers
                .bridge_name(pn)
                .unwrap_or(&lp.bridge)
                .to_string();
            let (a, b) = (patch_int_to_pn(pn), patch_pn_to_int(pn));
            let mut p1 = PortSpec::new(&self.cfg.bridge, &a, "patch");
            p1.options.insert("peer".into(), b.clone());
            p1.ofport_request = Some(lp.patch);
            let mut p2 = PortSpec::new(&bridge, &b, "patch");
            p2.options.insert("peer".into(), a.clone());
            p2.ofport_request = Some(PROVIDER_PATCH_OFPORT);
            for p in [p1, p2] {
                if let Err(e) = vs.ensure_port(&p).await {
                    warn!(provider = %pn, "ovsdb: ensuring {}: {e}", p.name);
                }
            }
        }
        // br-int's end of a network that no longer applies here.
        for name in self.ports.by_name.keys() {
            if let Some(pn) = name.strip_prefix("patch-int-") {
                if !plan.providers.contains_key(pn) {
                    if let Err(e) = vs.delete_port(&self.cfg.bridge, name).await {
                        warn!(provider = %pn, "ovsdb: deleting {name}: {e}");
                    }
                }
            }
        }
    }

    /// Starts (or restarts, when its OVS name changed) the OpenFlow connection of each
    /// provider bridge. With exchangeLinkName the OVS bridge is named after the NIC.
    fn connect_provider_bridges(&mut self) -> Result<(), Error> {
        let wanted: Vec<(String, String)> = self
            .compiler
            .plan()
            .providers
            .iter()
            .map(|(pn, lp)| {
                (
                    lp.bridge.clone(),
                    self.providers
                        .bridge_name(pn)
                        .unwrap_or(&lp.bridge)
                        .to_string(),
                )
            })
            .collect();
        for (compiled, ovs_name) in wanted {
            let id = self.compiler.bridge_id(&compiled);
            if self.bridges.name(id) == Some(ovs_name.as_str()) {
                continue;
            }
            self.bridges
                .connect(id, &ovs_name, &self.cfg.mgmt(&ovs_name))?;
        }
        Ok(())
    }
}
