//! The persisted record: what a kovs bridge's `external_ids` say about its network and the
//! NIC moved onto it (the `kovs-*` keys listed in the module docs), how they are encoded
//! (addresses and routes as hex rtnetlink messages), and the OVSDB writes that keep it.
//!
//! The record is what lets a restarted (or crashed) agent finish or undo a move: it is written
//! before the NIC is touched (`kovs-state=moving`) and marked `moved` once all is in place.

use std::collections::BTreeMap;

use crate::ovsdb::{Bridge, BridgeSpec, Ensured};
use crate::sys::netlink::{mac_to_string, parse_mac, Address, Mac, Route};

use super::{Error, Host};

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
pub(super) const K_UPLINK: &str = "kovs-uplink";

/// `kovs-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecState {
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
pub(super) struct NicRecord {
    pub name: String,
    pub index: u32,
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub up: bool,
    pub arp: bool,
    /// `disable_ipv6` before kovs set it (netdev only; None: not changed).
    pub ipv6_disabled: Option<bool>,
    pub addrs: Vec<Address>,
    pub routes: Vec<Route>,
    pub state: RecState,
}

/// What a kovs bridge's external_ids say about its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub network: String,
    pub bridge: String,
    pub exchange: bool,
    /// None: the bridge was made for the network but no NIC was moved yet.
    pub nic: Option<NicRecord>,
}

impl Record {
    pub fn from_bridge(b: &Bridge) -> Option<Record> {
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

    /// The NIC's kernel name while it is the bridge's port.
    pub fn nic_link_name(&self) -> Option<String> {
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

/// The keys saying which network a bridge is for.
pub(super) fn network_ids(network: &str, exchange: bool) -> BTreeMap<String, String> {
    BTreeMap::from([
        (K_PROVIDER.to_string(), network.to_string()),
        (K_EXCHANGE.to_string(), exchange.to_string()),
    ])
}

/// The keys recording the NIC (`kovs-nic*`, `kovs-state`).
pub(super) fn nic_ids(n: &NicRecord) -> BTreeMap<String, String> {
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

impl Host {
    /// The kovs bridges recorded as some network's.
    pub(super) async fn records(&self) -> Result<Vec<Record>, Error> {
        Ok(self
            .vs
            .owned_bridges()
            .await?
            .iter()
            .filter_map(Record::from_bridge)
            .collect())
    }

    /// Creates (or checks) the bridge and writes `ids` into its external_ids and the MAC
    /// into `other_config:hwaddr` (which pins the bridge's MAC: ovs-vswitchd would
    /// otherwise pick its own).
    pub(super) async fn ensure_bridge(
        &self,
        name: &str,
        ids: &BTreeMap<String, String>,
        hwaddr: Option<Mac>,
    ) -> Result<(), Error> {
        let mut spec = BridgeSpec::new(name, &self.datapath_type);
        spec.external_ids = ids.clone();
        match self.vs.ensure_bridge(&spec).await? {
            Ensured::Foreign { .. } => {
                return Err(Error::BridgeNotOwned {
                    bridge: name.to_string(),
                })
            }
            Ensured::Created | Ensured::Updated(_) | Ensured::Unchanged => {}
        }
        let config: BTreeMap<String, String> = hwaddr
            .map(|m| BTreeMap::from([("hwaddr".to_string(), mac_to_string(&m))]))
            .unwrap_or_default();
        self.vs
            .update_bridge_keys(name, ids, &[], &config, &[])
            .await?;
        Ok(())
    }

    pub(super) async fn set_state(&self, bridge: &str, state: RecState) -> Result<(), Error> {
        let ids = BTreeMap::from([(K_STATE.to_string(), state.as_str().to_string())]);
        self.vs
            .update_bridge_keys(bridge, &ids, &[], &BTreeMap::new(), &[])
            .await?;
        Ok(())
    }

    /// Forgets the NIC a bridge held (the bridge stays for the network's next NIC).
    pub(super) async fn clear_nic_record(&self, bridge: &str) -> Result<(), Error> {
        let none: BTreeMap<String, String> = BTreeMap::new();
        self.vs
            .update_bridge_keys(bridge, &none, NIC_KEYS, &none, &["hwaddr"])
            .await?;
        Ok(())
    }
}
