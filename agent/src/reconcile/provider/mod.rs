//! Provider networks on this node: Kube-OVN's ProviderNetwork as kube-ovn-cni sets it up
//! (behaviour doc section 2), programmed through OVSDB and rtnetlink.
//!
//! For each ProviderNetwork that applies to this node, [`ProviderNetworks::reconcile`]:
//! * ensures the OVS bridge (`br-<pn>`, or the NIC's own name with `exchangeLinkName`), owned
//!   by kovs, with the agent's datapath type, and the NIC as a system port of it (ofport 1,
//!   the uplink the compiled flows expect) that trunks VLAN 0 plus every Vlan's id on the
//!   network (Kube-OVN's `TRUNKS`);
//! * moves the NIC's addresses (flags, label, metric and remaining lifetimes kept) and the
//!   routes through it (every table, both families, default routes included) onto the
//!   bridge's internal interface, gives that interface the NIC's MAC and MTU, and brings it
//!   up;
//! * reports Kube-OVN's node labels (`<pn>.provider-network.kubernetes.io/ready`,
//!   `interface`, `mtu`, `exclude`) and the `err_mesg` of a failure ([`ProviderNetworks::status`]).
//!
//! A network that no longer applies (deleted, node excluded, interface changed) gets its NIC
//! back exactly as it was: name, MAC, MTU, ARP, up/down, addresses (with their remaining
//! lifetimes) and routes; then the bridge is deleted.
//!
//! # The order of a move (why it keeps the node reachable)
//! Kube-OVN (doc 2.2 step 3) reads the NIC's routes first (removing a NIC's last address
//! makes the kernel drop every route through it), moves the addresses, sets the bridge MAC,
//! brings the bridge up, re-adds the routes on it in scope order (host, link, site,
//! universe: a gateway must be reachable before a route uses it), and enslaves the NIC last.
//! kovs keeps the reading first and the scope order, and changes two things:
//! * The NIC is enslaved *before* the move (once ovs-vswitchd has it, `ofport` assigned).
//!   With the NIC last, the routes point at a bridge without uplink for a moment; the
//!   bridge's first ARP for the gateway is then lost and the kernel only asks again after a
//!   second (`retrans_time`). Measured here with Kube-OVN's order: 3 moves out of 8 went
//!   silent for 1.03 s. With the uplink first: never more than 21 ms without an answer.
//! * Inside the move, make before break: the bridge gets the NIC's MAC and MTU and comes up,
//!   the addresses are *added* to it, the routes *replaced* onto it (`ip route replace` swaps
//!   the NIC's route for the bridge's in one step), and only then are the addresses removed
//!   from the NIC (secondaries first, so no primary takes its secondaries with it). No
//!   address or route is ever missing. Afterwards every moved route is checked again and
//!   re-added if the kernel dropped it (older kernels drop routes whose `src` address left a
//!   link), and copies still pointing at the NIC are deleted.
//!
//! A restore runs the other way: the NIC leaves the bridge first, and kovs waits until
//! ovs-vswitchd has let it go (`next_cfg`/`cur_cfg`, as `ovs-vsctl` waits): ovs-vswitchd
//! restores the NIC flags it changed from a cached copy when it closes the device, which
//! would turn ARP off again if kovs had already turned it on.
//!
//! # The userspace (netdev) datapath
//! Kube-OVN does not move anything for the userspace datapath. kovs does, and then has to
//! deal with the kernel still receiving every frame on the NIC (ovs-testing pitfall 4: OVS
//! reads the NIC with AF_PACKET, it does not take the device away from the kernel). If the
//! NIC kept the bridge's MAC with ARP on, the kernel would answer ARP and deliver frames
//! addressed to the bridge on the NIC too (duplicate replies, "port unreachable" for
//! tunnels). So on `netdev` only, once the addresses are on the bridge, the NIC gets a
//! different MAC (the original with the locally-administered bit set and bit 2 flipped),
//! `arp off`, and `disable_ipv6=1` (otherwise its link-local address, derived from the same
//! MAC as the bridge's, would answer neighbour solicitations meant for the bridge). All three
//! are recorded and undone on restore (between enslaving the NIC and this, a few
//! milliseconds, replies can come twice). With the kernel datapath the enslaved NIC never hands
//! frames to the stack, so it keeps its MAC and ARP, as Kube-OVN's e2e tests expect.
//!
//! # What is recorded, and restarts
//! The bridge's `external_ids` hold what a restarted (or crashed) agent needs to finish or
//! undo the work: `kovs-provider`, `kovs-nic` (the configured NIC name), `kovs-nic-mac`,
//! `kovs-nic-mtu`, `kovs-nic-up`, `kovs-nic-arp`, `kovs-nic-ipv6-disabled`, `kovs-nic-index`,
//! `kovs-exchange-link-name`, `kovs-nic-addrs` and `kovs-nic-routes` (hex-encoded rtnetlink
//! messages of what was moved) and `kovs-state` (`moving`, `moved`, `restoring`).
//! `other_config:hwaddr` pins the bridge MAC (ovs-vswitchd would otherwise pick its own).
//! A reconcile over a bridge in state `moved` only checks: nothing is moved twice, and when
//! everything is in place it makes no netlink write and no OVSDB write. A bridge left in
//! `moving` or `restoring` is completed from the record. At start-up a recorded bridge
//! whose network no longer applies is restored ([`ProviderNetworks::restore_all_orphans`]).
//!
//! # Where things are
//! * `intent`: which networks apply to this node, with which NIC, bridge and VLAN trunks
//!   (pure);
//! * `record`: the `kovs-*` keys of a bridge's `external_ids`, their encoding and writes;
//! * `nic_move`: setting a network up (the move) and checking one already set up;
//! * `restore`: giving the NIC back;
//! * `link_config`: the addresses and routes that move, and moving them between links;
//! * [`Error`]: what goes wrong, in the words users see;
//! * here: [`ProviderNetworks`], the reconcile entry points, the status and the events.

mod error;
mod intent;
mod link_config;
mod nic_move;
mod record;
mod restore;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipelines::model::ClusterState;
use serde_json::{json, Value};

use crate::ovsdb::Vswitch;
use crate::sys::netlink::{self, Link, Netlink};

pub use error::Error;
pub use intent::ovs_bridge_name;
use intent::{Want, Wanted};
use record::Record;

/// Kube-OVN's node label domain (`pkg/util/const.go`, doc 0.1).
pub const LABEL_DOMAIN: &str = "provider-network.kubernetes.io";

/// `<pn>.provider-network.kubernetes.io/<key>`.
pub fn label(pn: &str, key: &str) -> String {
    format!("{pn}.{LABEL_DOMAIN}/{key}")
}

/// How long ovs-vswitchd gets to create (or remove) a bridge's kernel interface, as in
/// Kube-OVN (`timed out waiting for OVS bridge %s kernel interface`).
const LINK_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// What happened to a network in one reconcile; Kube-OVN emits the first two as events on
/// the ProviderNetwork (`InitOVSBridgeSucceeded`, `InitOVSBridgeFailed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// The NIC is bridged (first time, or again after a failure).
    Ready {
        network: String,
        bridge: String,
        interface: String,
        mtu: u32,
        /// Addresses and routes moved in this reconcile (0 when they already were).
        addresses: usize,
        routes: usize,
        took: Duration,
    },
    /// Setting the network up failed; emitted when the error changes. Retried by the next
    /// reconcile.
    Failed {
        network: String,
        interface: String,
        error: String,
    },
    /// The node is excluded (`excludeNodes`, or a `nodeSelector` that does not match).
    Excluded { network: String },
    /// The NIC got its configuration back; `bridge_deleted` says whether the bridge went
    /// too (it stays when only the network's interface changed).
    Restored {
        network: String,
        bridge: String,
        interface: String,
        bridge_deleted: bool,
        took: Duration,
    },
    RestoreFailed {
        network: String,
        bridge: String,
        interface: String,
        error: String,
    },
}

impl fmt::Display for ProviderEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderEvent::Ready {
                network,
                bridge,
                interface,
                mtu,
                addresses,
                routes,
                took,
            } => write!(
                f,
                "provider network {network}: initialized: interface={interface} bridge={bridge} mtu={mtu} ({addresses} addresses and {routes} routes moved in {took:?})"
            ),
            ProviderEvent::Failed { error, .. } => f.write_str(error),
            ProviderEvent::Excluded { network } => {
                write!(f, "provider network {network}: node excluded")
            }
            ProviderEvent::Restored {
                network,
                bridge,
                interface,
                bridge_deleted,
                took,
            } => write!(
                f,
                "provider network {network}: interface {interface} restored from bridge {bridge}{} in {took:?}",
                if *bridge_deleted { " (bridge deleted)" } else { "" }
            ),
            ProviderEvent::RestoreFailed { error, .. } => f.write_str(error),
        }
    }
}

/// A network's state on this node, as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Ready {
        bridge: String,
        interface: String,
        mtu: u32,
        exchange: bool,
    },
    Failed {
        interface: String,
        error: String,
    },
    Excluded,
    /// Cannot tell whether the network applies (see `Want::Unknown`); nothing is touched.
    Unknown(String),
    /// The network no longer applies but its NIC could not be restored; retried.
    RestoreFailed {
        bridge: String,
        interface: String,
        error: String,
    },
}

/// This node's Open vSwitch and kernel, through which the move and the restore work. Kept
/// apart from [`ProviderNetworks`]' bookkeeping (phases, events): they change the node and
/// return an error, the entry points decide what to report.
struct Host {
    vs: Vswitch,
    nl: Netlink,
    /// The agent's datapath type (`system` or `netdev`).
    datapath_type: String,
}

impl Host {
    fn netdev(&self) -> bool {
        self.datapath_type == "netdev"
    }

    /// Waits for a bridge's kernel interface to appear (`gone` false) or disappear (`gone`
    /// true).
    async fn wait_link(&self, name: &str, gone: bool) -> Result<Option<Link>, Error> {
        let deadline = Instant::now() + LINK_TIMEOUT;
        loop {
            let l = self.nl.link(name).await?;
            if l.is_some() != gone {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                let bridge = name.to_string();
                return Err(if gone {
                    Error::BridgeLinkRemovalTimeout { bridge }
                } else {
                    Error::BridgeLinkTimeout { bridge }
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The provider networks of this node. One per agent; [`ProviderNetworks::reconcile`] is
/// called with every new cluster state and periodically (it retries failed networks).
pub struct ProviderNetworks {
    host: Host,
    node: String,
    nets: BTreeMap<String, Phase>,
}

impl fmt::Debug for ProviderNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderNetworks")
            .field("node", &self.node)
            .field("datapath_type", &self.host.datapath_type)
            .field("nets", &self.nets)
            .finish_non_exhaustive()
    }
}

impl ProviderNetworks {
    /// `vs`: the agent's OVSDB handle; `datapath_type`: the agent's (`system` or `netdev`).
    /// Opens an rtnetlink socket in the calling thread's network namespace; must run inside
    /// a tokio runtime.
    pub fn new(
        vs: Vswitch,
        node: impl Into<String>,
        datapath_type: impl Into<String>,
    ) -> Result<ProviderNetworks, netlink::Error> {
        Ok(ProviderNetworks {
            host: Host {
                vs,
                nl: Netlink::connect()?,
                datapath_type: datapath_type.into(),
            },
            node: node.into(),
            nets: BTreeMap::new(),
        })
    }

    /// The netlink writes made so far (for tests and metrics).
    pub fn netlink_writes(&self) -> u64 {
        self.host.nl.writes()
    }

    /// The MTU of a network that is ready on this node (its NIC's: Kube-OVN's `mtu` label),
    /// which pure underlay pods take.
    pub fn mtu(&self, network: &str) -> Option<u32> {
        match self.nets.get(network)? {
            Phase::Ready { mtu, .. } => Some(*mtu),
            _ => None,
        }
    }

    /// The OVS bridge of a network that is ready on this node (differs from `br-<pn>` with
    /// `exchangeLinkName`).
    pub fn bridge_name(&self, network: &str) -> Option<&str> {
        match self.nets.get(network)? {
            Phase::Ready { bridge, .. } => Some(bridge),
            _ => None,
        }
    }

    /// Whether some network failed (or could not be restored): call
    /// [`ProviderNetworks::reconcile`] again later.
    pub fn has_failures(&self) -> bool {
        self.nets
            .values()
            .any(|p| matches!(p, Phase::Failed { .. } | Phase::RestoreFailed { .. }))
    }

    /// This node's labels as Kube-OVN's daemon keeps them, for the kube source to write: `ready`,
    /// `interface` and `mtu` of each network set up here, `exclude` of each network the node is
    /// excluded from. A failed network has none (Kube-OVN removes them on failure): only what
    /// is true is labelled.
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        node_labels(&self.nets)
    }

    /// Kube-OVN's view: node labels, and the `err_mesg` of each failed network; plus a
    /// per-network summary.
    ///
    /// ```json
    /// {"node": "node1",
    ///  "labels": {"net1.provider-network.kubernetes.io/ready": "true",
    ///             "net1.provider-network.kubernetes.io/interface": "eth1",
    ///             "net1.provider-network.kubernetes.io/mtu": "1500",
    ///             "net2.provider-network.kubernetes.io/exclude": "true",
    ///             "net3.provider-network.kubernetes.io/ready": "false"},
    ///  "errors": {"net3.provider-network.kubernetes.io/err_mesg": "failed to ..."},
    ///  "networks": {"net1": {"state": "ready", "bridge": "br-net1", ...}, ...}}
    /// ```
    pub fn status(&self) -> Value {
        let mut labels = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        let mut nets = serde_json::Map::new();
        for (pn, phase) in &self.nets {
            let summary = match phase {
                Phase::Ready {
                    bridge,
                    interface,
                    mtu,
                    exchange,
                } => {
                    labels.insert(label(pn, "ready"), json!("true"));
                    labels.insert(label(pn, "interface"), json!(interface));
                    labels.insert(label(pn, "mtu"), json!(mtu.to_string()));
                    json!({"state": "ready", "bridge": bridge, "interface": interface,
                           "mtu": mtu, "exchange_link_name": exchange})
                }
                Phase::Failed { interface, error } => {
                    labels.insert(label(pn, "ready"), json!("false"));
                    errors.insert(label(pn, "err_mesg"), json!(error));
                    json!({"state": "failed", "interface": interface, "error": error})
                }
                Phase::Excluded => {
                    labels.insert(label(pn, "exclude"), json!("true"));
                    json!({"state": "excluded"})
                }
                Phase::Unknown(error) => {
                    errors.insert(label(pn, "err_mesg"), json!(error));
                    json!({"state": "unknown", "error": error})
                }
                Phase::RestoreFailed {
                    bridge,
                    interface,
                    error,
                } => {
                    errors.insert(label(pn, "err_mesg"), json!(error));
                    json!({"state": "restore-failed", "bridge": bridge,
                           "interface": interface, "error": error})
                }
            };
            nets.insert(pn.clone(), summary);
        }
        json!({"node": self.node, "labels": labels, "errors": errors, "networks": nets})
    }

    /// Brings this node's provider networks to `state`: restores the NICs of networks that
    /// no longer apply, then sets up the others (each independently: one failing network
    /// never blocks another). Returns what changed.
    pub async fn reconcile(&mut self, state: &ClusterState) -> Vec<ProviderEvent> {
        let mut events = Vec::new();
        let desired = intent::desired(state, &self.node);
        let records = match self.host.records().await {
            Ok(r) => r,
            Err(e) => {
                let e = Arc::new(e);
                for (pn, want) in &desired {
                    if let Want::Bridged(w) = want {
                        let error = self.failure(w, e.clone());
                        self.set_failed(pn, &w.nic, error, &mut events);
                    }
                }
                return events;
            }
        };

        // 1. Give back what no longer applies.
        let blocked = self.restore_unwanted(&records, &desired, &mut events).await;

        // 2. Set up what applies.
        for (pn, want) in &desired {
            match want {
                Want::Bridged(w) => {
                    if blocked.contains(pn) {
                        continue;
                    }
                    let existing = records
                        .iter()
                        .find(|r| r.network == *pn && r.bridge == w.bridge);
                    let t0 = Instant::now();
                    match self.host.setup(w, existing).await {
                        Ok(s) => {
                            let phase = Phase::Ready {
                                bridge: s.bridge.clone(),
                                interface: w.nic.clone(),
                                mtu: s.mtu,
                                exchange: w.exchange,
                            };
                            if self.nets.get(pn) != Some(&phase) || s.addresses + s.routes > 0 {
                                events.push(ProviderEvent::Ready {
                                    network: pn.clone(),
                                    bridge: s.bridge,
                                    interface: w.nic.clone(),
                                    mtu: s.mtu,
                                    addresses: s.addresses,
                                    routes: s.routes,
                                    took: t0.elapsed(),
                                });
                            }
                            self.nets.insert(pn.clone(), phase);
                        }
                        Err(e) => {
                            let error = self.failure(w, e);
                            self.set_failed(pn, &w.nic, error, &mut events);
                        }
                    }
                }
                Want::Excluded => {
                    if blocked.contains(pn) {
                        continue; // its NIC is still to be restored: keep that error
                    }
                    if self.nets.get(pn) != Some(&Phase::Excluded) {
                        events.push(ProviderEvent::Excluded {
                            network: pn.clone(),
                        });
                    }
                    self.nets.insert(pn.clone(), Phase::Excluded);
                }
                Want::Unknown(msg) => {
                    self.nets.insert(pn.clone(), Phase::Unknown(msg.clone()));
                }
            }
        }

        // 3. Forget deleted networks (their labels go), unless their NIC is still to restore.
        self.nets
            .retain(|pn, _| desired.contains_key(pn) || blocked.contains(pn));
        events
    }

    /// Restores the NICs of recorded bridges whose network no longer applies to this node
    /// (deleted while the agent was down, or the node excluded): call once at start-up,
    /// before the first [`ProviderNetworks::reconcile`] (which would do it too).
    pub async fn restore_all_orphans(&mut self, state: &ClusterState) -> Vec<ProviderEvent> {
        let mut events = Vec::new();
        let desired = intent::desired(state, &self.node);
        match self.host.records().await {
            Ok(records) => {
                let orphans: Vec<Record> = records
                    .into_iter()
                    .filter(|r| {
                        !matches!(
                            desired.get(&r.network),
                            Some(Want::Bridged(_)) | Some(Want::Unknown(_))
                        )
                    })
                    .collect();
                self.restore_unwanted(&orphans, &desired, &mut events).await;
            }
            Err(e) => tracing::warn!("provider networks: cannot list bridges: {e}"),
        }
        events
    }

    /// The `err_mesg` of a network whose setup failed.
    fn failure(&self, w: &Wanted, cause: impl Into<Arc<Error>>) -> String {
        Error::Setup {
            network: w.network.clone(),
            node: self.node.clone(),
            interface: w.nic.clone(),
            source: cause.into(),
        }
        .to_string()
    }

    fn set_failed(&mut self, pn: &str, nic: &str, error: String, events: &mut Vec<ProviderEvent>) {
        let phase = Phase::Failed {
            interface: nic.to_string(),
            error: error.clone(),
        };
        if self.nets.get(pn) != Some(&phase) {
            events.push(ProviderEvent::Failed {
                network: pn.to_string(),
                interface: nic.to_string(),
                error,
            });
        }
        self.nets.insert(pn.to_string(), phase);
    }

    /// Restores every recorded bridge that `desired` does not keep as it is. Returns the
    /// networks whose restore failed (their setup waits for the next reconcile).
    async fn restore_unwanted(
        &mut self,
        records: &[Record],
        desired: &BTreeMap<String, Want>,
        events: &mut Vec<ProviderEvent>,
    ) -> BTreeSet<String> {
        let mut blocked = BTreeSet::new();
        for rec in records {
            let want = desired.get(&rec.network);
            let keep = match want {
                Some(Want::Unknown(_)) => true,
                Some(Want::Bridged(w)) => {
                    w.bridge == rec.bridge
                        && w.exchange == rec.exchange
                        && rec.nic.as_ref().is_none_or(|n| n.name == w.nic)
                }
                _ => false,
            };
            if keep {
                continue;
            }
            // Keep the bridge when the network stays on it with another NIC.
            let delete_bridge = !matches!(want, Some(Want::Bridged(w)) if w.bridge == rec.bridge);
            let interface = rec
                .nic
                .as_ref()
                .map_or_else(String::new, |n| n.name.clone());
            let t0 = Instant::now();
            match self.host.restore(rec, delete_bridge).await {
                Ok(()) => {
                    events.push(ProviderEvent::Restored {
                        network: rec.network.clone(),
                        bridge: rec.bridge.clone(),
                        interface,
                        bridge_deleted: delete_bridge,
                        took: t0.elapsed(),
                    });
                    if matches!(
                        self.nets.get(&rec.network),
                        Some(Phase::RestoreFailed { .. })
                    ) {
                        self.nets.remove(&rec.network);
                    }
                }
                Err(e) => {
                    let error = Error::Restore {
                        network: rec.network.clone(),
                        node: self.node.clone(),
                        interface: interface.clone(),
                        bridge: rec.bridge.clone(),
                        source: Box::new(e),
                    }
                    .to_string();
                    let phase = Phase::RestoreFailed {
                        bridge: rec.bridge.clone(),
                        interface: interface.clone(),
                        error: error.clone(),
                    };
                    if self.nets.get(&rec.network) != Some(&phase) {
                        events.push(ProviderEvent::RestoreFailed {
                            network: rec.network.clone(),
                            bridge: rec.bridge.clone(),
                            interface,
                            error,
                        });
                    }
                    self.nets.insert(rec.network.clone(), phase);
                    blocked.insert(rec.network.clone());
                }
            }
        }
        blocked
    }
}

/// [`ProviderNetworks::node_labels`] of these phases.
fn node_labels(nets: &BTreeMap<String, Phase>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (pn, phase) in nets {
        match phase {
            Phase::Ready { interface, mtu, .. } => {
                labels.insert(label(pn, "ready"), "true".to_string());
                labels.insert(label(pn, "interface"), interface.clone());
                labels.insert(label(pn, "mtu"), mtu.to_string());
            }
            Phase::Excluded => {
                labels.insert(label(pn, "exclude"), "true".to_string());
            }
            Phase::Failed { .. } | Phase::Unknown(_) | Phase::RestoreFailed { .. } => {}
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent may run a reconcile in its own task.
    #[allow(unused)]
    fn futures_are_send(p: &mut ProviderNetworks, s: &ClusterState) {
        fn send<T: Send>(_: T) {}
        send(p.reconcile(s));
        send(p.restore_all_orphans(s));
    }

    #[test]
    fn node_labels_say_only_what_is_true() {
        let nets: BTreeMap<String, Phase> = [
            (
                "net1",
                Phase::Ready {
                    bridge: "br-net1".into(),
                    interface: "eth1".into(),
                    mtu: 1500,
                    exchange: false,
                },
            ),
            ("net2", Phase::Excluded),
            (
                "net3",
                Phase::Failed {
                    interface: "eth9".into(),
                    error: "nic eth9 does not exist".into(),
                },
            ),
            ("net4", Phase::Unknown("no node".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let l = node_labels(&nets);
        let want: BTreeMap<String, String> = [
            ("net1.provider-network.kubernetes.io/ready", "true"),
            ("net1.provider-network.kubernetes.io/interface", "eth1"),
            ("net1.provider-network.kubernetes.io/mtu", "1500"),
            ("net2.provider-network.kubernetes.io/exclude", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(l, want);
    }

    #[test]
    fn labels() {
        assert_eq!(
            label("net1", "ready"),
            "net1.provider-network.kubernetes.io/ready"
        );
    }
}
