//! The NIC move: setting a network up on this node, in the order the module docs give
//! ("The order of a move"): the bridge and its record first, the NIC enslaved as the uplink,
//! then its addresses and routes moved onto the bridge, make before break; and the check of a
//! network already set up, which writes nothing when all is in place.

use std::time::{Duration, Instant};

use pipelines::tables::PROVIDER_UPLINK_OFPORT;

use crate::ovsdb::{self, Bridge, Interface, Port, PortSpec};
use crate::sys::netlink::{self, Address, Link, Mac, Route};

use super::intent::Wanted;
use super::link_config::{movable_addrs, movable_routes, union_addrs, union_routes};
use super::record::{network_ids, nic_ids, NicRecord, RecState, Record, K_UPLINK};
use super::{Error, Host, POLL};

/// How long ovs-vswitchd gets to open a new NIC port before the network counts as ready
/// anyway (a later reconcile reports an `ofport -1` failure).
const OFPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// Result of one network's setup.
pub(super) struct Setup {
    pub bridge: String,
    pub mtu: u32,
    pub addresses: usize,
    pub routes: usize,
}

/// The MAC the NIC gets on the userspace datapath: the original with the
/// locally-administered bit set, the multicast bit clear and bit 2 flipped (so it always
/// differs).
fn netdev_nic_mac(orig: Mac) -> Mac {
    let mut m = orig;
    m[0] = ((orig[0] ^ 0x04) | 0x02) & 0xfe;
    m
}

/// Kube-OVN's words for a NIC that is not there.
fn nic_missing(w: &Wanted) -> Error {
    Error::NicMissing {
        bridge: w.bridge.clone(),
        nic: w.nic.clone(),
    }
}

impl Host {
    /// Sets up (or checks) one network.
    pub(super) async fn setup(
        &self,
        w: &Wanted,
        existing: Option<&Record>,
    ) -> Result<Setup, Error> {
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
            return Err(nic_missing(w));
        };
        self.check_port(w, &w.nic_link).await?;

        // Read everything before touching anything (removing a NIC's last address makes the
        // kernel drop every route through it).
        let addrs = movable_addrs(self.nl.addresses(&nic).await?);
        let routes = movable_routes(self.nl.routes(&nic).await?);
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
                    self.nl.ipv6_disabled(&nic)?
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
                self.nl.set_up(&nic, false).await?;
            }
            self.nl.rename(&nic, &w.nic_link).await?;
            nic = self
                .nl
                .link(&w.nic_link)
                .await?
                .ok_or_else(|| Error::NicVanishedInRename { nic: w.nic.clone() })?;
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

    /// The check of a network already set up (`kovs-state=moved`): writes only what differs
    /// (nothing when all is in place), and moves addresses that appeared on the NIC since.
    async fn verify(&self, w: &Wanted, rec: &Record, n: &NicRecord) -> Result<Setup, Error> {
        let nic = self
            .nl
            .link(&w.nic_link)
            .await?
            .ok_or_else(|| nic_missing(w))?;
        let mut ids = network_ids(&w.network, w.exchange);
        ids.extend(nic_ids(n));
        self.ensure_bridge(&rec.bridge, &ids, n.mac).await?;
        let br = self
            .wait_link(&rec.bridge, false)
            .await?
            .expect("wait_link returns the link");

        let fresh = movable_addrs(self.nl.addresses(&nic).await?);
        if !fresh.is_empty() {
            // New addresses on the NIC (DHCP, an operator): move them and their routes, and
            // remember them for the restore.
            let routes = movable_routes(self.nl.routes(&nic).await?);
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
                self.nl.set_mac(&br, mac).await?;
            }
        }
        if br.mtu != nic.mtu {
            self.nl.set_mtu(&br, nic.mtu).await?;
        }
        if !br.up {
            self.nl.set_up(&br, true).await?;
        }
        if !nic.up {
            self.nl.set_up(&nic, true).await?;
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

    /// Enslaves the NIC and moves its configuration onto the bridge (the common tail of a
    /// fresh setup, a resumed one, and a check that found new addresses on the NIC).
    async fn attach(
        &self,
        w: &Wanted,
        rec: &NicRecord,
        nic: &Link,
        br: &Link,
    ) -> Result<(usize, usize), Error> {
        // The bridge: MAC, MTU, up.
        if let Some(mac) = rec.mac {
            if br.mac != Some(mac) {
                self.nl.set_mac(br, mac).await?;
            }
        }
        if br.mtu != nic.mtu {
            self.nl.set_mtu(br, nic.mtu).await?;
        }
        if !br.up {
            self.nl.set_up(br, true).await?;
        }
        // The uplink before the move (module docs): once the routes go through the bridge,
        // its first ARP for a gateway must find the wire, or the kernel retries only after
        // a second.
        if !nic.up {
            self.nl.set_up(nic, true).await?;
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
            let nic =
                self.nl
                    .link_by_index(nic.index)
                    .await?
                    .ok_or_else(|| Error::NicVanished {
                        nic: nic.name.clone(),
                    })?;
            self.quiet_nic(&nic, rec).await?;
        }
        Ok(counts)
    }

    /// Userspace datapath: a MAC other than the bridge's, ARP off, IPv6 off (module docs).
    async fn quiet_nic(&self, nic: &Link, rec: &NicRecord) -> Result<(), Error> {
        if let (Some(orig), Some(cur)) = (rec.mac, nic.mac) {
            if cur == orig {
                self.nl.set_mac(nic, netdev_nic_mac(orig)).await?;
            }
        }
        if nic.arp {
            self.nl.set_arp(nic, false).await?;
        }
        if self.nl.ipv6_disabled(nic)? == Some(false) {
            self.nl.set_ipv6_disabled(nic, true)?;
        }
        Ok(())
    }

    /// The NIC as the bridge's uplink port, with its VLAN trunks; with `wait`, gives
    /// ovs-vswitchd a moment to open it and reports its error if it could not.
    async fn ensure_uplink(&self, w: &Wanted, port: &str, wait: bool) -> Result<(), Error> {
        let mut spec = PortSpec::new(&w.bridge, port, "");
        spec.ofport_request = Some(PROVIDER_UPLINK_OFPORT);
        spec.external_ids
            .insert(K_UPLINK.to_string(), w.network.clone());
        self.vs
            .ensure_port(&spec)
            .await
            .map_err(|source| Error::AddUplink {
                nic: port.to_string(),
                bridge: w.bridge.clone(),
                source,
            })?;
        self.vs.set_port_trunks(port, &w.trunks).await?;
        let deadline = Instant::now() + if wait { OFPORT_TIMEOUT } else { Duration::ZERO };
        loop {
            let iface = self.vs.by_name::<Interface>(port).await?;
            match iface {
                Some(i) if i.ofport == Some(-1) => {
                    return Err(Error::UplinkNotOpened {
                        nic: port.to_string(),
                        bridge: w.bridge.clone(),
                        reason: i.error.unwrap_or_else(|| "ofport -1".into()),
                    })
                }
                Some(i) if i.valid_ofport().is_some() => return Ok(()),
                _ if Instant::now() >= deadline => return Ok(()),
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Finds the NIC of `w`. With `exchangeLinkName` it may already be renamed `br-<pn>`
    /// (Kube-OVN's `changeProviderNicName` rule); a link named like an OVS bridge is that
    /// bridge's interface, never the NIC.
    async fn find_nic(&self, w: &Wanted) -> Result<Option<Link>, Error> {
        let names: Vec<&str> = if w.exchange {
            vec![&w.nic_link, &w.nic]
        } else {
            vec![&w.nic]
        };
        for name in names {
            if self.vs.by_name::<Bridge>(name).await?.is_some() {
                if w.exchange && name == w.nic_link {
                    return Err(Error::ExchangeNameTaken {
                        link: name.to_string(),
                        nic: w.nic.clone(),
                    });
                }
                continue;
            }
            if let Some(l) = self.nl.link(name).await? {
                return Ok(Some(l));
            }
        }
        Ok(None)
    }

    /// Fails if the NIC is a port kovs does not own or a port of another bridge.
    async fn check_port(&self, w: &Wanted, port_name: &str) -> Result<(), Error> {
        let Some(port) = self.vs.by_name::<Port>(port_name).await? else {
            return Ok(());
        };
        if port.external_ids.get(ovsdb::OWNER_KEY).map(String::as_str) != Some(ovsdb::OWNER_VALUE) {
            return Err(Error::NicOnForeignBridge {
                nic: port_name.to_string(),
            });
        }
        let on_bridge = self
            .vs
            .by_name::<Bridge>(&w.bridge)
            .await?
            .is_some_and(|b| b.ports.contains(&port.uuid));
        if !on_bridge {
            return Err(Error::NicOnOtherBridge {
                nic: port_name.to_string(),
            });
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
}
