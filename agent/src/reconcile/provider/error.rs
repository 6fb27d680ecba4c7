//! What goes wrong setting up or restoring a provider network. The messages are what users
//! see (the `err_mesg` of the status, the events, the logs); several are Kube-OVN's words.

use std::sync::Arc;

use crate::ovsdb;
use crate::sys::netlink;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A network could not be set up; `source` says why. (An `Arc`: one failure to list the
    /// bridges is the cause for every network.)
    #[error(
        "failed to initialize provider network {network} on node {node} (interface {interface}): {source}"
    )]
    Setup {
        network: String,
        node: String,
        interface: String,
        #[source]
        source: Arc<Error>,
    },
    /// A network's NIC could not be given back its configuration.
    #[error(
        "failed to restore interface {interface} of provider network {network} on node {node} from bridge {bridge}: {source}"
    )]
    Restore {
        network: String,
        node: String,
        interface: String,
        bridge: String,
        #[source]
        source: Box<Error>,
    },
    /// Whether the network applies cannot be told (nothing is touched).
    #[error(
        "node {node} is not in the cluster state: cannot evaluate the nodeSelector of provider network {network}"
    )]
    NodeUnknown { node: String, network: String },

    #[error("ovsdb: {0}")]
    Ovsdb(#[from] ovsdb::Error),
    #[error(transparent)]
    Netlink(#[from] netlink::Error),

    #[error("failed to create and configure external bridge {bridge}: nic {nic} does not exist")]
    NicMissing { bridge: String, nic: String },
    #[error("nic {nic} vanished while being renamed")]
    NicVanishedInRename { nic: String },
    #[error("nic {nic} vanished")]
    NicVanished { nic: String },
    /// With `exchangeLinkName` the NIC is renamed `link` (`br-<pn>`): an OVS bridge of that
    /// name is in the way.
    #[error(
        "OVS bridge {link} exists: with exchangeLinkName the NIC takes that name and the bridge is named {nic}"
    )]
    ExchangeNameTaken { link: String, nic: String },
    #[error("nic {nic} is already a port of an OVS bridge kovs does not own")]
    NicOnForeignBridge { nic: String },
    #[error("nic {nic} is already a port of another OVS bridge")]
    NicOnOtherBridge { nic: String },
    #[error("OVS bridge {bridge} exists and is not owned by kovs")]
    BridgeNotOwned { bridge: String },
    /// ovs-vswitchd did not create the bridge's kernel interface in time.
    #[error("timed out waiting for OVS bridge {bridge} kernel interface")]
    BridgeLinkTimeout { bridge: String },
    /// ovs-vswitchd did not remove the bridge's kernel interface in time.
    #[error("timed out waiting for OVS bridge {bridge} kernel interface to go away")]
    BridgeLinkRemovalTimeout { bridge: String },
    /// The NIC could not be made the bridge's uplink port.
    #[error("failed to add nic {nic} to external bridge {bridge}: ovsdb: {source}")]
    AddUplink {
        nic: String,
        bridge: String,
        #[source]
        source: ovsdb::Error,
    },
    /// ovs-vswitchd could not open the NIC (`ofport -1`); `reason` is its Interface `error`.
    #[error("failed to add nic {nic} to external bridge {bridge}: {reason}")]
    UplinkNotOpened {
        nic: String,
        bridge: String,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_string()
    }

    /// The messages as they were when the provider built them with `format!`: tests, status
    /// consumers and operators' log searches depend on them.
    #[test]
    fn messages_unchanged() {
        let nic_missing = || Error::NicMissing {
            bridge: s("br-net1"),
            nic: s("eth1"),
        };
        let cases: Vec<(Error, &str)> = vec![
            (
                Error::Setup {
                    network: s("net1"),
                    node: s("node1"),
                    interface: s("eth1"),
                    source: Arc::new(nic_missing()),
                },
                "failed to initialize provider network net1 on node node1 (interface eth1): failed to create and configure external bridge br-net1: nic eth1 does not exist",
            ),
            (
                Error::Restore {
                    network: s("net1"),
                    node: s("node1"),
                    interface: s("eth1"),
                    bridge: s("br-net1"),
                    source: Box::new(Error::BridgeLinkRemovalTimeout { bridge: s("br-net1") }),
                },
                "failed to restore interface eth1 of provider network net1 on node node1 from bridge br-net1: timed out waiting for OVS bridge br-net1 kernel interface to go away",
            ),
            (
                Error::NodeUnknown { node: s("node1"), network: s("net1") },
                "node node1 is not in the cluster state: cannot evaluate the nodeSelector of provider network net1",
            ),
            (
                Error::Ovsdb(ovsdb::Error::Conflict(s("x"))),
                "ovsdb: x",
            ),
            (Error::NicVanishedInRename { nic: s("eth1") }, "nic eth1 vanished while being renamed"),
            (Error::NicVanished { nic: s("eth1") }, "nic eth1 vanished"),
            (
                Error::ExchangeNameTaken { link: s("br-net1"), nic: s("eth1") },
                "OVS bridge br-net1 exists: with exchangeLinkName the NIC takes that name and the bridge is named eth1",
            ),
            (
                Error::NicOnForeignBridge { nic: s("eth1") },
                "nic eth1 is already a port of an OVS bridge kovs does not own",
            ),
            (
                Error::NicOnOtherBridge { nic: s("eth1") },
                "nic eth1 is already a port of another OVS bridge",
            ),
            (
                Error::BridgeNotOwned { bridge: s("br-net1") },
                "OVS bridge br-net1 exists and is not owned by kovs",
            ),
            (
                Error::BridgeLinkTimeout { bridge: s("br-net1") },
                "timed out waiting for OVS bridge br-net1 kernel interface",
            ),
            (
                Error::AddUplink {
                    nic: s("eth1"),
                    bridge: s("br-net1"),
                    source: ovsdb::Error::NotFound(s("gone")),
                },
                "failed to add nic eth1 to external bridge br-net1: ovsdb: gone",
            ),
            (
                Error::UplinkNotOpened { nic: s("eth1"), bridge: s("br-net1"), reason: s("ofport -1") },
                "failed to add nic eth1 to external bridge br-net1: ofport -1",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
