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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use pipelines::model::{ClusterState, StringMap, ValidProviderNetwork};
use pipelines::tables::PROVIDER_UPLINK_OFPORT;
use serde_json::{json, Value};

use crate::ovsdb::{self, Bridge, BridgeSpec, Ensured, Interface, Port, PortSpec, Vswitch};
use crate::sys::netlink::{self, mac_to_string, parse_mac, Address, Link, Mac, Netlink, Route};

/// Kube-OVN's node label domain (`pkg/util/const.go`, doc 0.1).
pub const LABEL_DOMAIN: &str = "provider-network.kubernetes.io";

/// `<pn>.provider-network.kubernetes.io/<key>`.
pub fn label(pn: &str, key: &str) -> String {
    format!("{pn}.{LABEL_DOMAIN}/{key}")
}

// Bridge external_ids.
const K_PROVIDER: &str = "kovs-provider";
const K_NIC: &str = "kovs-nic";
const K_NIC_MAC: &str = "kovs-nic-mac";
const K_NIC_MTU: &str = "kovs-nic-mtu";
const K_NIC_UP: &str = "kovs-nic-up";
const K_NIC_ARP: &str = "kovs-nic-arp";
const K_NIC_IPV6: &str = "kovs-nic-ipv6-disabled";
const K_NIC_INDEX: &str = "kovs-nic-index";
const K_EXCHANGE: &str = "kovs-exchange-link-name";
const K_ADDRS: &str = "kovs-nic-addrs";
const K_ROUTES: &str = "kovs-nic-routes";
const K_STATE: &str = "kovs-state";
const NIC_KEYS: &[&str] = &[
    K_NIC,
    K_NIC_MAC,
    K_NIC_MTU,
    K_NIC_UP,
    K_NIC_ARP,
    K_NIC_IPV6,
    K_NIC_INDEX,
    K_ADDRS,
    K_ROUTES,
    K_STATE,
];
/// Interface external_ids of the NIC's port: the network it is the uplink of.
const K_UPLINK: &str = "kovs-uplink";

/// How long ovs-vswitchd gets to create (or remove) a bridge's kernel interface, as in
/// Kube-OVN (`timed out waiting for OVS bridge %s kernel interface`).
const LINK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long ovs-vswitchd gets to open a new NIC port before the network counts as ready
/// anyway (a later reconcile reports an `ofport -1` failure).
const OFPORT_TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(10);

/// Scope order for re-adding routes: a gateway must be reachable before a route uses it.
const SCOPE_ORDER: [u8; 4] = [
    netlink::SCOPE_HOST,
    netlink::SCOPE_LINK,
    netlink::SCOPE_SITE,
    netlink::SCOPE_UNIVERSE,
];

/// The OVS bridge a network uses on a node whose NIC is `nic`: `br-<pn>`, or with
/// `exchangeLinkName` the NIC's own name (the NIC is renamed `br-<pn>`).
pub fn ovs_bridge_name(pn: &ValidProviderNetwork, nic: &str) -> String {
    if pn.exchange_link_name {
        nic.to_string()
    } else {
        pn.bridge.clone()
    }
}

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

/// What a network should look like on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Bridged(Wanted),
    Excluded,
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    network: String,
    /// The NIC as configured (`customInterfaces` / `defaultInterface`).
    nic: String,
    exchange: bool,
    /// The OVS bridge.
    bridge: String,
    /// The NIC's kernel name once set up (`br-<pn>` with `exchangeLinkName`).
    nic_link: String,
    /// VLAN 0 and every Vlan id on the network.
    trunks: Vec<u16>,
}

/// `kovs-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecState {
    Moving,
    Moved,
    Restoring,
}

impl RecState {
    fn as_str(self) -> &'static str {
        match self {
            RecState::Moving => "moving",
            RecState::Moved => "moved",
            RecState::Restoring => "restoring",
        }
    }

    fn parse(s: &str) -> Option<RecState> {
        match s {
            "moving" => Some(RecState::Moving),
            "moved" => Some(RecState::Moved),
            "restoring" => Some(RecState::Restoring),
            _ => None,
        }
    }
}

/// The NIC as it was before kovs touched it, and what was moved off it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NicRecord {
    name: String,
    index: u32,
    mac: Option<Mac>,
    mtu: u32,
    up: bool,
    arp: bool,
    /// `disable_ipv6` before kovs set it (netdev only; None: not changed).
    ipv6_disabled: Option<bool>,
    addrs: Vec<Address>,
    routes: Vec<Route>,
    state: RecState,
}

/// What a kovs bridge's external_ids say about its network.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    network: String,
    bridge: String,
    exchange: bool,
    /// None: the bridge was made for the network but no NIC was moved yet.
    nic: Option<NicRecord>,
}

impl Record {
    fn from_bridge(b: &Bridge) -> Option<Record> {
        let ids = &b.external_ids;
        let network = ids.get(K_PROVIDER)?.clone();
        let exchange = ids.get(K_EXCHANGE).is_some_and(|v| v == "true");
        let nic = ids.get(K_NIC).map(|name| {
            let flag = |k: &str, default: bool| ids.get(k).map_or(default, |v| v == "true");
            NicRecord {
                name: name.clone(),
                index: ids
                    .get(K_NIC_INDEX)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                mac: ids.get(K_NIC_MAC).and_then(|m| parse_mac(m)),
                mtu: ids.get(K_NIC_MTU).and_then(|v| v.parse().ok()).unwrap_or(0),
                up: flag(K_NIC_UP, true),
                arp: flag(K_NIC_ARP, true),
                ipv6_disabled: ids.get(K_NIC_IPV6).map(|v| v == "true"),
                addrs: split_records(ids.get(K_ADDRS))
                    .filter_map(|h| Address::from_hex(h).ok())
                    .collect(),
                routes: split_records(ids.get(K_ROUTES))
                    .filter_map(|h| Route::from_hex(h).ok())
                    .collect(),
                state: ids
                    .get(K_STATE)
                    .and_then(|s| RecState::parse(s))
                    .unwrap_or(RecState::Moving),
            }
        });
        Some(Record {
            network,
            bridge: b.name.clone(),
            exchange,
            nic,
        })
    }

    fn nic_link_name(&self) -> Option<String> {
        let nic = self.nic.as_ref()?;
        Some(if self.exchange {
            format!("br-{}", self.network)
        } else {
            nic.name.clone()
        })
    }
}

fn split_records(v: Option<&String>) -> impl Iterator<Item = &str> {
    v.map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
}

fn network_ids(network: &str, exchange: bool) -> BTreeMap<String, String> {
    BTreeMap::from([
        (K_PROVIDER.to_string(), network.to_string()),
        (K_EXCHANGE.to_string(), exchange.to_string()),
    ])
}

fn nic_ids(n: &NicRecord) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(K_NIC.to_string(), n.name.clone());
    m.insert(K_NIC_INDEX.to_string(), n.index.to_string());
    if let Some(mac) = &n.mac {
        m.insert(K_NIC_MAC.to_string(), mac_to_string(mac));
    }
    m.insert(K_NIC_MTU.to_string(), n.mtu.to_string());
    m.insert(K_NIC_UP.to_string(), n.up.to_string());
    m.insert(K_NIC_ARP.to_string(), n.arp.to_string());
    if let Some(d) = n.ipv6_disabled {
        m.insert(K_NIC_IPV6.to_string(), d.to_string());
    }
    let addrs: Vec<String> = n.addrs.iter().map(Address::to_hex).collect();
    m.insert(K_ADDRS.to_string(), addrs.join(","));
    let routes: Vec<String> = n.routes.iter().map(Route::to_hex).collect();
    m.insert(K_ROUTES.to_string(), routes.join(","));
    m.insert(K_STATE.to_string(), n.state.as_str().to_string());
    m
}

/// The MAC the NIC gets on the userspace datapath: the original with the
/// locally-administered bit set, the multicast bit clear and bit 2 flipped (so it always
/// differs).
fn netdev_nic_mac(orig: Mac) -> Mac {
    let mut m = orig;
    m[0] = ((orig[0] ^ 0x04) | 0x02) & 0xfe;
    m
}

/// Addresses worth moving: all but link-local ones (each link has its own).
fn movable_addrs(addrs: Vec<Address>) -> Vec<Address> {
    addrs.into_iter().filter(|a| !a.is_link_local()).collect()
}

/// Routes worth moving: all but those the kernel derives from addresses (they follow the
/// addresses) and gateway-less link-local ones (as Kube-OVN).
fn movable_routes(routes: Vec<Route>) -> Vec<Route> {
    routes
        .into_iter()
        .filter(|r| !r.is_kernel() && !r.is_link_local_direct())
        .collect()
}

fn scope_rank(scope: u8) -> usize {
    SCOPE_ORDER
        .iter()
        .position(|s| *s == scope)
        .unwrap_or(SCOPE_ORDER.len())
}

/// Adds to `base` the entries of `extra` it lacks.
fn union_addrs(mut base: Vec<Address>, extra: &[Address]) -> Vec<Address> {
    for a in extra {
        if !base.iter().any(|b| b.same_as(a)) {
            base.push(a.clone());
        }
    }
    base
}

fn union_routes(mut base: Vec<Route>, extra: &[Route]) -> Vec<Route> {
    for r in extra {
        if !base.iter().any(|b| b.same_path(r)) {
            base.push(r.clone());
        }
    }
    base
}

fn ovs_err(e: ovsdb::Error) -> String {
    format!("ovsdb: {e}")
}

fn nl_err(e: netlink::Error) -> String {
    e.to_string()
}

/// Result of one network's setup.
struct Setup {
    bridge: String,
    mtu: u32,
    addresses: usize,
    routes: usize,
}

/// The provider networks of this node. One per agent; [`ProviderNetworks::reconcile`] is
/// called with every new cluster state and periodically (it retries failed networks).
pub struct ProviderNetworks {
    vs: Vswitch,
    nl: Netlink,
    node: String,
    datapath_type: String,
    nets: BTreeMap<String, Phase>,
}

impl fmt::Debug for ProviderNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderNetworks")
            .field("node", &self.node)
            .field("datapath_type", &self.datapath_type)
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
            vs,
            nl: Netlink::connect()?,
            node: node.into(),
            datapath_type: datapath_type.into(),
            nets: BTreeMap::new(),
        })
    }

    /// The netlink writes made so far (for tests and metrics).
    pub fn netlink_writes(&self) -> u64 {
        self.nl.writes()
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

    fn netdev(&self) -> bool {
        self.datapath_type == "netdev"
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

    /// What each network of `state` should be on this node.
    fn desired(&self, state: &ClusterState) -> BTreeMap<String, Want> {
        let node = state.nodes.get(&self.node);
        let empty = StringMap::new();
        let labels = node.map_or(&empty, |n| &n.labels);
        let mut out = BTreeMap::new();
        for (name, pn) in &state.provider_networks {
            let want = if node.is_none() && pn.node_selector.is_some() {
                Want::Unknown(format!(
                    "node {} is not in the cluster state: cannot evaluate the nodeSelector of provider network {name}",
                    self.node
                ))
            } else {
                match pn.interface_for(&self.node, labels) {
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

    /// The kovs bridges recorded as some network's.
    async fn records(&self) -> Result<Vec<Record>, String> {
        Ok(self
            .vs
            .owned_bridges()
            .await
            .map_err(ovs_err)?
            .iter()
            .filter_map(Record::from_bridge)
            .collect())
    }

    /// Brings this node's provider networks to `state`: restores the NICs of networks that
    /// no longer apply, then sets up the others (each independently: one failing network
    /// never blocks another). Returns what changed.
    pub async fn reconcile(&mut self, state: &ClusterState) -> Vec<ProviderEvent> {
        let mut events = Vec::new();
        let desired = self.desired(state);
        let records = match self.records().await {
            Ok(r) => r,
            Err(e) => {
                for (pn, want) in &desired {
                    if let Want::Bridged(w) = want {
                        let error = self.failure(w, &e);
                        self.set_failed(pn, &w.nic, error, &mut events);
                    }
                }
                return events;
            }
        };

        // 1. Give back what no longer applies.
        let blocked = self
            .teardown_unwanted(&records, &desired, &mut events)
            .await;

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
                    match self.setup(w, existing).await {
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
                            let error = self.failure(w, &e);
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
        let desired = self.desired(state);
        match self.records().await {
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
                self.teardown_unwanted(&orphans, &desired, &mut events)
                    .await;
            }
            Err(e) => tracing::warn!("provider networks: cannot list bridges: {e}"),
        }
        events
    }

    fn failure(&self, w: &Wanted, detail: &str) -> String {
        format!(
            "failed to initialize provider network {} on node {} (interface {}): {detail}",
            w.network, self.node, w.nic
        )
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
    async fn teardown_unwanted(
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
            match self.teardown(rec, delete_bridge).await {
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
                    let error = format!(
                        "failed to restore interface {interface} of provider network {} on node {} from bridge {}: {e}",
                        rec.network, self.node, rec.bridge
                    );
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

    // ---- setup ----------------------------------------------------------------------------

    /// Finds the NIC of `w`. With `exchangeLinkName` it may already be renamed `br-<pn>`
    /// (Kube-OVN's `changeProviderNicName` rule); a link named like an OVS bridge is that
    /// bridge's interface, never the NIC.
    async fn find_nic(&self, w: &Wanted) -> Result<Option<Link>, String> {
        let names: Vec<&str> = if w.exchange {
            vec![&w.nic_link, &w.nic]
        } else {
            vec![&w.nic]
        };
        for name in names {
            if self
                .vs
                .by_name::<Bridge>(name)
                .await
                .map_err(ovs_err)?
                .is_some()
            {
                if w.exchange && name == w.nic_link {
                    return Err(format!(
                        "OVS bridge {name} exists: with exchangeLinkName the NIC takes that name and the bridge is named {}",
                        w.nic
                    ));
                }
                continue;
            }
            if let Some(l) = self.nl.link(name).await.map_err(nl_err)? {
                return Ok(Some(l));
            }
        }
        Ok(None)
    }

    /// Fails if the NIC is a port kovs does not own or a port of another bridge.
    async fn check_port(&self, w: &Wanted, port_name: &str) -> Result<(), String> {
        let Some(port) = self.vs.by_name::<Port>(port_name).await.map_err(ovs_err)? else {
            return Ok(());
        };
        if port.external_ids.get(ovsdb::OWNER_KEY).map(String::as_str) != Some(ovsdb::OWNER_VALUE) {
            return Err(format!(
                "nic {port_name} is already a port of an OVS bridge kovs does not own"
            ));
        }
        let on_bridge = self
            .vs
            .by_name::<Bridge>(&w.bridge)
            .await
            .map_err(ovs_err)?
            .is_some_and(|b| b.ports.contains(&port.uuid));
        if !on_bridge {
            return Err(format!(
                "nic {port_name} is already a port of another OVS bridge"
            ));
        }
        Ok(())
    }

    /// Creates (or checks) the bridge and writes `ids` into its external_ids and the MAC
    /// into `other_config:hwaddr`.
    async fn ensure_bridge(
        &self,
        name: &str,
        ids: &BTreeMap<String, String>,
        hwaddr: Option<Mac>,
    ) -> Result<(), String> {
        let mut spec = BridgeSpec::new(name, &self.datapath_type);
        spec.external_ids = ids.clone();
        match self.vs.ensure_bridge(&spec).await.map_err(ovs_err)? {
            Ensured::Foreign { .. } => {
                return Err(format!("OVS bridge {name} exists and is not owned by kovs"))
            }
            Ensured::Created | Ensured::Updated(_) | Ensured::Unchanged => {}
        }
        let config: BTreeMap<String, String> = hwaddr
            .map(|m| BTreeMap::from([("hwaddr".to_string(), mac_to_string(&m))]))
            .unwrap_or_default();
        self.vs
            .update_bridge_keys(name, ids, &[], &config, &[])
            .await
            .map_err(ovs_err)?;
        Ok(())
    }

    async fn set_state(&self, bridge: &str, state: RecState) -> Result<(), String> {
        let ids = BTreeMap::from([(K_STATE.to_string(), state.as_str().to_string())]);
        self.vs
            .update_bridge_keys(bridge, &ids, &[], &BTreeMap::new(), &[])
            .await
            .map_err(ovs_err)
            .map(|_| ())
    }

    /// Waits for a link to appear (`gone` false) or disappear (`gone` true).
    async fn wait_link(&self, name: &str, gone: bool) -> Result<Option<Link>, String> {
        let deadline = Instant::now() + LINK_TIMEOUT;
        loop {
            let l = self.nl.link(name).await.map_err(nl_err)?;
            if l.is_some() != gone {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(if gone {
                    format!("timed out waiting for OVS bridge {name} kernel interface to go away")
                } else {
                    format!("timed out waiting for OVS bridge {name} kernel interface")
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sets up (or checks) one network.
    async fn setup(&self, w: &Wanted, existing: Option<&Record>) -> Result<Setup, String> {
        let moved = existing
            .and_then(|r| r.nic.as_ref())
            .filter(|n| n.state == RecState::Moved && n.name == w.nic);
        if let (Some(rec), Some(nic_rec)) = (existing, moved) {
            return self.verify(w, rec, nic_rec).await;
        }
        let resume = existing
            .and_then(|r| r.nic.clone())
            .filter(|n| n.name == w.nic);

        // The bridge is made for the network even while its NIC is missing (the agent's
        // flows need it), except with exchangeLinkName, where it takes the NIC's name.
        if !w.exchange {
            self.ensure_bridge(&w.bridge, &network_ids(&w.network, false), None)
                .await?;
        }
        let Some(mut nic) = self.find_nic(w).await? else {
            return Err(format!(
                "failed to create and configure external bridge {}: nic {} does not exist",
                w.bridge, w.nic
            ));
        };
        self.check_port(w, &w.nic_link).await?;

        // Read everything before touching anything (removing a NIC's last address makes the
        // kernel drop every route through it).
        let addrs = movable_addrs(self.nl.addresses(&nic).await.map_err(nl_err)?);
        let routes = movable_routes(self.nl.routes(&nic).await.map_err(nl_err)?);
        let rec = match resume {
            Some(mut r) => {
                // An interrupted move: what the record says plus what the NIC has now
                // (current lifetimes win).
                r.addrs = union_addrs(addrs.clone(), &r.addrs);
                r.routes = union_routes(
                    routes.clone(),
                    &r.routes
                        .iter()
                        .map(|x| x.moved(r.index, nic.index))
                        .collect::<Vec<_>>(),
                );
                r.index = nic.index;
                r.state = RecState::Moving;
                r
            }
            None => NicRecord {
                name: w.nic.clone(),
                index: nic.index,
                mac: nic.mac,
                mtu: nic.mtu,
                up: nic.up,
                arp: nic.arp,
                ipv6_disabled: if self.netdev() {
                    self.nl.ipv6_disabled(&nic).map_err(nl_err)?
                } else {
                    None
                },
                addrs,
                routes,
                state: RecState::Moving,
            },
        };

        // exchangeLinkName: the NIC takes br-<pn> so the bridge can take its name.
        if w.exchange && nic.name != w.nic_link {
            if nic.up {
                self.nl.set_up(&nic, false).await.map_err(nl_err)?;
            }
            self.nl.rename(&nic, &w.nic_link).await.map_err(nl_err)?;
            nic = self
                .nl
                .link(&w.nic_link)
                .await
                .map_err(nl_err)?
                .ok_or_else(|| format!("nic {} vanished while being renamed", w.nic))?;
        }

        let mut ids = network_ids(&w.network, w.exchange);
        ids.extend(nic_ids(&rec));
        self.ensure_bridge(&w.bridge, &ids, rec.mac).await?;
        let br = self
            .wait_link(&w.bridge, false)
            .await?
            .expect("wait_link returns the link");

        let (n_addrs, n_routes) = self.attach(w, &rec, &nic, &br).await?;
        self.set_state(&w.bridge, RecState::Moved).await?;
        Ok(Setup {
            bridge: w.bridge.clone(),
            mtu: nic.mtu,
            addresses: n_addrs,
            routes: n_routes,
        })
    }

    /// Enslaves the NIC and moves its configuration onto the bridge (the common tail of a
    /// fresh setup, a resumed one, and a check that found new addresses on the NIC).
    async fn attach(
        &self,
        w: &Wanted,
        rec: &NicRecord,
        nic: &Link,
        br: &Link,
    ) -> Result<(usize, usize), String> {
        // The bridge: MAC, MTU, up.
        if let Some(mac) = rec.mac {
            if br.mac != Some(mac) {
                self.nl.set_mac(br, mac).await.map_err(nl_err)?;
            }
        }
        if br.mtu != nic.mtu {
            self.nl.set_mtu(br, nic.mtu).await.map_err(nl_err)?;
        }
        if !br.up {
            self.nl.set_up(br, true).await.map_err(nl_err)?;
        }
        // The uplink before the move (module docs): once the routes go through the bridge,
        // its first ARP for a gateway must find the wire, or the kernel retries only after
        // a second.
        if !nic.up {
            self.nl.set_up(nic, true).await.map_err(nl_err)?;
        }
        self.ensure_uplink(w, &nic.name, true).await?;

        // Addresses and routes, make before break. On the bridge, labels go (they must
        // start with the link's name) and IPv6 addresses skip DAD (they are the NIC's own).
        let adds: Vec<Address> = rec
            .addrs
            .iter()
            .map(|a| {
                let mut b = a.clone();
                b.label = None;
                if b.is_ipv6() {
                    b.flags |= netlink::IFA_F_NODAD;
                }
                b
            })
            .collect();
        let routes: Vec<Route> = rec
            .routes
            .iter()
            .map(|r| r.moved(rec.index, nic.index))
            .collect();
        let counts = self.move_config(nic, br, &adds, &routes).await?;

        // On the userspace datapath the NIC gets out of the kernel's way.
        if self.netdev() {
            let nic = self
                .nl
                .link_by_index(nic.index)
                .await
                .map_err(nl_err)?
                .ok_or_else(|| format!("nic {} vanished", nic.name))?;
            self.quiet_nic(&nic, rec).await?;
        }
        Ok(counts)
    }

    /// Userspace datapath: a MAC other than the bridge's, ARP off, IPv6 off (module docs).
    async fn quiet_nic(&self, nic: &Link, rec: &NicRecord) -> Result<(), String> {
        if let (Some(orig), Some(cur)) = (rec.mac, nic.mac) {
            if cur == orig {
                self.nl
                    .set_mac(nic, netdev_nic_mac(orig))
                    .await
                    .map_err(nl_err)?;
            }
        }
        if nic.arp {
            self.nl.set_arp(nic, false).await.map_err(nl_err)?;
        }
        if self.nl.ipv6_disabled(nic).map_err(nl_err)? == Some(false) {
            self.nl.set_ipv6_disabled(nic, true).map_err(nl_err)?;
        }
        Ok(())
    }

    /// The NIC as the bridge's uplink port, with its VLAN trunks; with `wait`, gives
    /// ovs-vswitchd a moment to open it and reports its error if it could not.
    async fn ensure_uplink(&self, w: &Wanted, port: &str, wait: bool) -> Result<(), String> {
        let mut spec = PortSpec::new(&w.bridge, port, "");
        spec.ofport_request = Some(PROVIDER_UPLINK_OFPORT);
        spec.external_ids
            .insert(K_UPLINK.to_string(), w.network.clone());
        self.vs.ensure_port(&spec).await.map_err(|e| {
            format!(
                "failed to add nic {port} to external bridge {}: {}",
                w.bridge,
                ovs_err(e)
            )
        })?;
        self.vs
            .set_port_trunks(port, &w.trunks)
            .await
            .map_err(ovs_err)?;
        let deadline = Instant::now() + if wait { OFPORT_TIMEOUT } else { Duration::ZERO };
        loop {
            let iface = self.vs.by_name::<Interface>(port).await.map_err(ovs_err)?;
            match iface {
                Some(i) if i.ofport == Some(-1) => {
                    return Err(format!(
                        "failed to add nic {port} to external bridge {}: {}",
                        w.bridge,
                        i.error.unwrap_or_else(|| "ofport -1".into())
                    ))
                }
                Some(i) if i.valid_ofport().is_some() => return Ok(()),
                _ if Instant::now() >= deadline => return Ok(()),
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// The check of a network already set up (`kovs-state=moved`): writes only what differs
    /// (nothing when all is in place), and moves addresses that appeared on the NIC since.
    async fn verify(&self, w: &Wanted, rec: &Record, n: &NicRecord) -> Result<Setup, String> {
        let nic = self
            .nl
            .link(&w.nic_link)
            .await
            .map_err(nl_err)?
            .ok_or_else(|| {
                format!(
                    "failed to create and configure external bridge {}: nic {} does not exist",
                    w.bridge, w.nic
                )
            })?;
        let mut ids = network_ids(&w.network, w.exchange);
        ids.extend(nic_ids(n));
        self.ensure_bridge(&rec.bridge, &ids, n.mac).await?;
        let br = self
            .wait_link(&rec.bridge, false)
            .await?
            .expect("wait_link returns the link");

        let fresh = movable_addrs(self.nl.addresses(&nic).await.map_err(nl_err)?);
        if !fresh.is_empty() {
            // New addresses on the NIC (DHCP, an operator): move them and their routes, and
            // remember them for the restore.
            let routes = movable_routes(self.nl.routes(&nic).await.map_err(nl_err)?);
            let mut more = n.clone();
            more.addrs = union_addrs(n.addrs.clone(), &fresh);
            let recorded: Vec<Route> = n
                .routes
                .iter()
                .map(|r| r.moved(n.index, nic.index))
                .collect();
            more.routes = union_routes(recorded, &routes);
            more.index = nic.index;
            more.state = RecState::Moving;
            let mut ids = network_ids(&w.network, w.exchange);
            ids.extend(nic_ids(&more));
            self.ensure_bridge(&rec.bridge, &ids, n.mac).await?;
            let mut step = more.clone();
            step.addrs = fresh;
            step.routes = routes;
            let counts = self.attach(w, &step, &nic, &br).await?;
            self.set_state(&rec.bridge, RecState::Moved).await?;
            return Ok(Setup {
                bridge: rec.bridge.clone(),
                mtu: nic.mtu,
                addresses: counts.0,
                routes: counts.1,
            });
        }

        if let Some(mac) = n.mac {
            if br.mac != Some(mac) {
                self.nl.set_mac(&br, mac).await.map_err(nl_err)?;
            }
        }
        if br.mtu != nic.mtu {
            self.nl.set_mtu(&br, nic.mtu).await.map_err(nl_err)?;
        }
        if !br.up {
            self.nl.set_up(&br, true).await.map_err(nl_err)?;
        }
        if !nic.up {
            self.nl.set_up(&nic, true).await.map_err(nl_err)?;
        }
        if self.netdev() {
            self.quiet_nic(&nic, n).await?;
        }
        self.ensure_uplink(w, &nic.name, false).await?;
        Ok(Setup {
            bridge: rec.bridge.clone(),
            mtu: nic.mtu,
            addresses: 0,
            routes: 0,
        })
    }

    /// Moves addresses and routes from link `from` to link `to`, make before break: adds
    /// `adds` to `to`, replaces `routes` (given as they are through `from`) onto `to` in
    /// scope order, removes the addresses from `from` (secondaries first), then checks the
    /// moved routes once more. Idempotent. Returns how many addresses and routes it moved.
    async fn move_config(
        &self,
        from: &Link,
        to: &Link,
        adds: &[Address],
        routes: &[Route],
    ) -> Result<(usize, usize), String> {
        let on_to = self.nl.addresses(to).await.map_err(nl_err)?;
        let mut n_addrs = 0;
        for a in adds {
            if on_to.iter().any(|b| b.same_as(a)) {
                continue;
            }
            match self.nl.add_address(to, a, false).await {
                Ok(()) => n_addrs += 1,
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(e)),
            }
        }

        let mut ordered: Vec<Route> = routes
            .iter()
            .map(|r| r.moved(from.index, to.index))
            .collect();
        ordered.sort_by_key(|r| scope_rank(r.scope));
        let current = self.nl.all_routes().await.map_err(nl_err)?;
        let mut n_routes = 0;
        for r in &ordered {
            if current.iter().any(|c| c.same_path(r)) {
                continue;
            }
            self.nl.add_route(r, true).await.map_err(nl_err)?;
            n_routes += 1;
        }

        let on_from = self.nl.addresses(from).await.map_err(nl_err)?;
        for a in adds.iter().rev() {
            if on_from.iter().any(|b| b.same_as(a)) {
                self.nl.del_address(from, a).await.map_err(nl_err)?;
            }
        }
        self.check_routes(Some(from), &ordered).await?;
        Ok((n_addrs, n_routes))
    }

    /// Re-adds any of `routes` the kernel dropped and deletes copies of them still going
    /// through `from`.
    async fn check_routes(&self, from: Option<&Link>, routes: &[Route]) -> Result<(), String> {
        if routes.is_empty() {
            return Ok(());
        }
        let current = self.nl.all_routes().await.map_err(nl_err)?;
        for r in routes {
            if !current.iter().any(|c| c.same_path(r)) {
                self.nl.add_route(r, true).await.map_err(nl_err)?;
            }
            let stale = current.iter().filter(|c| {
                from.is_some_and(|f| c.uses_link(f.index)) && !c.is_kernel() && c.same_key(r)
            });
            for stale in stale {
                self.nl.del_route(stale).await.map_err(nl_err)?;
            }
        }
        Ok(())
    }

    // ---- restore --------------------------------------------------------------------------

    /// Gives the NIC of `rec` its configuration back and deletes the bridge (or, when
    /// `delete_bridge` is false, only clears the NIC's record from it).
    async fn teardown(&self, rec: &Record, delete_bridge: bool) -> Result<(), String> {
        let Some(n) = &rec.nic else {
            // Nothing was moved: only the bridge made for the network.
            if delete_bridge {
                self.vs.delete_bridge(&rec.bridge).await.map_err(ovs_err)?;
            }
            return Ok(());
        };
        // A previous move or restore was interrupted: the record fills what the links lack.
        let interrupted = n.state != RecState::Moved;
        if n.state != RecState::Restoring {
            self.set_state(&rec.bridge, RecState::Restoring).await?;
        }
        let nic_name = rec.nic_link_name().expect("record has a NIC");

        // What is on the bridge now (read before anything changes).
        let br = self.nl.link(&rec.bridge).await.map_err(nl_err)?;
        let (br_addrs, br_routes) = match &br {
            Some(br) => (
                movable_addrs(self.nl.addresses(br).await.map_err(nl_err)?),
                movable_routes(self.nl.routes(br).await.map_err(nl_err)?),
            ),
            None => (Vec::new(), Vec::new()),
        };
        // Back on the NIC: the record's label and flags, the lifetimes left now.
        let mut adds: Vec<Address> = br_addrs
            .iter()
            .map(|a| match n.addrs.iter().find(|r| r.same_as(a)) {
                Some(orig) => Address {
                    valid_lft: a.valid_lft,
                    preferred_lft: a.preferred_lft,
                    ..orig.clone()
                },
                None => Address {
                    label: None,
                    ..a.clone()
                },
            })
            .collect();
        if interrupted || br.is_none() {
            adds = union_addrs(adds, &n.addrs);
        }

        // The NIC leaves the bridge first: from here on the bridge has no uplink.
        if self
            .vs
            .by_name::<Port>(&nic_name)
            .await
            .map_err(ovs_err)?
            .is_some()
        {
            self.vs
                .delete_port(&rec.bridge, &nic_name)
                .await
                .map_err(ovs_err)?;
            // ovs-vswitchd restores the flags it changed on the NIC when it lets it go, from
            // its own cached copy: touching the NIC before that would be undone (ARP off again).
            if !self.vs.wait_applied(LINK_TIMEOUT).await.map_err(ovs_err)? {
                tracing::warn!(
                    "provider network {}: ovs-vswitchd did not apply the removal of port {nic_name} within {LINK_TIMEOUT:?}",
                    rec.network
                );
            }
        }

        let mut nic = self.nl.link(&nic_name).await.map_err(nl_err)?;
        if rec.exchange {
            // The bridge holds the NIC's name: it goes first, then the NIC takes its name back.
            self.delete_bridge(&rec.bridge).await?;
            if let Some(l) = &nic {
                if l.up {
                    self.nl.set_up(l, false).await.map_err(nl_err)?;
                }
                self.nl.rename(l, &n.name).await.map_err(nl_err)?;
                nic = self.nl.link(&n.name).await.map_err(nl_err)?;
            }
        }
        let Some(nic) = nic else {
            // Kube-OVN: "nic %s not found, will still clean up addresses and routes": there
            // is nothing left to give them back to.
            tracing::warn!(
                "provider network {}: nic {nic_name} not found: its addresses and routes go with bridge {}",
                rec.network,
                rec.bridge
            );
            if delete_bridge {
                self.delete_bridge(&rec.bridge).await?;
            } else {
                self.clear_nic_record(&rec.bridge).await?;
            }
            return Ok(());
        };

        // Link attributes first: the MAC before IPv6 comes back (its link-local address is
        // derived from the MAC), and up so that routes through it can be added.
        if let Some(mac) = n.mac {
            if nic.mac != Some(mac) {
                self.nl.set_mac(&nic, mac).await.map_err(nl_err)?;
            }
        }
        if n.mtu != 0 && nic.mtu != n.mtu {
            self.nl.set_mtu(&nic, n.mtu).await.map_err(nl_err)?;
        }
        if nic.arp != n.arp {
            self.nl.set_arp(&nic, n.arp).await.map_err(nl_err)?;
        }
        if let Some(prev) = n.ipv6_disabled {
            if self.nl.ipv6_disabled(&nic).map_err(nl_err)? != Some(prev) {
                self.nl.set_ipv6_disabled(&nic, prev).map_err(nl_err)?;
            }
        }
        if !nic.up {
            self.nl.set_up(&nic, true).await.map_err(nl_err)?;
        }

        // Routes, as they are through the bridge, mapped onto the NIC.
        let mut routes: Vec<Route> = match &br {
            Some(b) => br_routes
                .iter()
                .map(|r| r.moved(b.index, nic.index))
                .collect(),
            None => Vec::new(),
        };
        if interrupted || br.is_none() {
            let recorded: Vec<Route> = n
                .routes
                .iter()
                .map(|r| r.moved(n.index, nic.index))
                .collect();
            routes = union_routes(routes, &recorded);
        }
        // move_config takes routes as they are through `from`.
        match (&br, rec.exchange) {
            (Some(b), false) => {
                let through_br: Vec<Route> =
                    routes.iter().map(|r| r.moved(nic.index, b.index)).collect();
                self.move_config(b, &nic, &adds, &through_br).await?;
            }
            _ => {
                // The bridge is gone (exchangeLinkName) or has no interface: add only.
                self.add_config(&nic, &adds, &routes).await?;
            }
        }

        if !rec.exchange {
            if delete_bridge {
                self.delete_bridge(&rec.bridge).await?;
                // Deleting the bridge's interface may take routes with it on older kernels.
                self.check_routes(None, &routes).await?;
            } else {
                self.clear_nic_record(&rec.bridge).await?;
            }
        }
        if !n.up {
            self.nl.set_up(&nic, false).await.map_err(nl_err)?;
        }
        Ok(())
    }

    /// Forgets the NIC a bridge held (the bridge stays for the network's next NIC).
    async fn clear_nic_record(&self, bridge: &str) -> Result<(), String> {
        let none: BTreeMap<String, String> = BTreeMap::new();
        self.vs
            .update_bridge_keys(bridge, &none, NIC_KEYS, &none, &["hwaddr"])
            .await
            .map_err(ovs_err)
            .map(|_| ())
    }

    /// Adds addresses and routes to a link (when there is no link to move them from).
    async fn add_config(
        &self,
        to: &Link,
        adds: &[Address],
        routes: &[Route],
    ) -> Result<(), String> {
        let on_to = self.nl.addresses(to).await.map_err(nl_err)?;
        for a in adds {
            if on_to.iter().any(|b| b.same_as(a)) {
                continue;
            }
            match self.nl.add_address(to, a, false).await {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(e)),
            }
        }
        let mut ordered = routes.to_vec();
        ordered.sort_by_key(|r| scope_rank(r.scope));
        let current = self.nl.all_routes().await.map_err(nl_err)?;
        for r in &ordered {
            if !current.iter().any(|c| c.same_path(r)) {
                self.nl.add_route(r, true).await.map_err(nl_err)?;
            }
        }
        Ok(())
    }

    /// Deletes a kovs bridge and waits for its kernel interface to go away.
    async fn delete_bridge(&self, bridge: &str) -> Result<(), String> {
        if self.vs.delete_bridge(bridge).await.map_err(ovs_err)? {
            self.wait_link(bridge, true).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netdev_mac_always_differs() {
        for first in [0x00u8, 0x02, 0x04, 0x06, 0xfe, 0xfa, 0x52] {
            let orig = [first, 1, 2, 3, 4, 5];
            let m = netdev_nic_mac(orig);
            assert_ne!(m, orig);
            assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast");
        }
    }

    /// The agent may run a reconcile in its own task.
    #[allow(unused)]
    fn futures_are_send(p: &mut ProviderNetworks, s: &ClusterState) {
        fn send<T: Send>(_: T) {}
        send(p.reconcile(s));
        send(p.restore_all_orphans(s));
    }

    #[test]
    fn labels() {
        assert_eq!(
            label("net1", "ready"),
            "net1.provider-network.kubernetes.io/ready"
        );
    }
}
