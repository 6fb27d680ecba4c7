//! What should be on this node: for each ProviderNetwork, whether it applies (`excludeNodes`,
//! `nodeSelector`), which NIC (`customInterfaces` / `defaultInterface`), the OVS bridge, and
//! the VLAN trunks. Pure: the cluster state in, the wanted state out.

use std::collections::{BTreeMap, BTreeSet};

use pipelines::model::{ClusterState, StringMap, ValidProviderNetwork};

use super::Error;

/// What a network should look like on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    Bridged(Wanted),
    Excluded,
    /// Cannot tell whether the network applies (the message says why); nothing is touched.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    pub network: String,
    /// The NIC as configured (`customInterfaces` / `defaultInterface`).
    pub nic: String,
    pub exchange: bool,
    /// The OVS bridge.
    pub bridge: String,
    /// The NIC's kernel name once set up (`br-<pn>` with `exchangeLinkName`).
    pub nic_link: String,
    /// VLAN 0 and every Vlan id on the network.
    pub trunks: Vec<u16>,
}

/// The OVS bridge a network uses on a node whose NIC is `nic`: `br-<pn>`, or with
/// `exchangeLinkName` the NIC's own name (the NIC is renamed `br-<pn>`).
pub fn ovs_bridge_name(pn: &ValidProviderNetwork, nic: &str) -> String {
    if pn.exchange_link_name {
        nic.to_string()
    } else {
        pn.bridge.clone()
    }
}

/// What each network of `state` should be on node `node`.
pub(super) fn desired(state: &ClusterState, node_name: &str) -> BTreeMap<String, Want> {
    let node = state.nodes.get(node_name);
    let empty = StringMap::new();
    let labels = node.map_or(&empty, |n| &n.labels);
    let mut out = BTreeMap::new();
    for (name, pn) in &state.provider_networks {
        let want = if node.is_none() && pn.node_selector.is_some() {
            Want::Unknown(
                Error::NodeUnknown {
                    node: node_name.to_string(),
                    network: name.clone(),
                }
                .to_string(),
            )
        } else {
            match pn.interface_for(node_name, labels) {
                None => Want::Excluded,
                Some(nic) => {
                    let mut trunks: BTreeSet<u16> = BTreeSet::from([0]);
                    trunks.extend(
                        state
                            .vlans
                            .values()
                            .filter(|v| v.provider == *name)
                            .map(|v| v.id),
                    );
                    Want::Bridged(Wanted {
                        network: name.clone(),
                        nic: nic.to_string(),
                        exchange: pn.exchange_link_name,
                        bridge: ovs_bridge_name(pn, nic),
                        nic_link: if pn.exchange_link_name {
                            pn.bridge.clone()
                        } else {
                            nic.to_string()
                        },
                        trunks: trunks.into_iter().collect(),
                    })
                }
            }
        };
        out.insert(name.clone(), want);
    }
    out
}
