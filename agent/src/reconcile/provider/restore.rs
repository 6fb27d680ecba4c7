//! The restore: a network that no longer applies gets its NIC back exactly as it was (name,
//! MAC, MTU, ARP, up/down, addresses with their remaining lifetimes, routes), then its bridge
//! is deleted. The NIC leaves the bridge first, and ovs-vswitchd must have let it go before
//! the NIC is touched (module docs). An interrupted move or restore is completed from the
//! record.

use crate::ovsdb::Port;
use crate::sys::netlink::{Address, Route};

use super::link_config::{movable_addrs, movable_routes, union_addrs, union_routes};
use super::record::{RecState, Record};
use super::{Error, Host, LINK_TIMEOUT};

impl Host {
    /// Gives the NIC of `rec` its configuration back and deletes the bridge (or, when
    /// `delete_bridge` is false, only clears the NIC's record from it).
    pub(super) async fn restore(&self, rec: &Record, delete_bridge: bool) -> Result<(), Error> {
        let Some(n) = &rec.nic else {
            // Nothing was moved: only the bridge made for the network.
            if delete_bridge {
                self.vs.delete_bridge(&rec.bridge).await?;
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
        let br = self.nl.link(&rec.bridge).await?;
        let (br_addrs, br_routes) = match &br {
            Some(br) => (
                movable_addrs(self.nl.addresses(br).await?),
                movable_routes(self.nl.routes(br).await?),
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
        if self.vs.by_name::<Port>(&nic_name).await?.is_some() {
            self.vs.delete_port(&rec.bridge, &nic_name).await?;
            // ovs-vswitchd restores the flags it changed on the NIC when it lets it go, from
            // its own cached copy: touching the NIC before that would be undone (ARP off again).
            if !self.vs.wait_applied(LINK_TIMEOUT).await? {
                tracing::warn!(
                    "provider network {}: ovs-vswitchd did not apply the removal of port {nic_name} within {LINK_TIMEOUT:?}",
                    rec.network
                );
            }
        }

        let mut nic = self.nl.link(&nic_name).await?;
        if rec.exchange {
            // The bridge holds the NIC's name: it goes first, then the NIC takes its name back.
            self.delete_bridge_and_wait(&rec.bridge).await?;
            if let Some(l) = &nic {
                if l.up {
                    self.nl.set_up(l, false).await?;
                }
                self.nl.rename(l, &n.name).await?;
                nic = self.nl.link(&n.name).await?;
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
                self.delete_bridge_and_wait(&rec.bridge).await?;
            } else {
                self.clear_nic_record(&rec.bridge).await?;
            }
            return Ok(());
        };

        // Link attributes first: the MAC before IPv6 comes back (its link-local address is
        // derived from the MAC), and up so that routes through it can be added.
        if let Some(mac) = n.mac {
            if nic.mac != Some(mac) {
                self.nl.set_mac(&nic, mac).await?;
            }
        }
        if n.mtu != 0 && nic.mtu != n.mtu {
            self.nl.set_mtu(&nic, n.mtu).await?;
        }
        if nic.arp != n.arp {
            self.nl.set_arp(&nic, n.arp).await?;
        }
        if let Some(prev) = n.ipv6_disabled {
            if self.nl.ipv6_disabled(&nic)? != Some(prev) {
                self.nl.set_ipv6_disabled(&nic, prev)?;
            }
        }
        if !nic.up {
            self.nl.set_up(&nic, true).await?;
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
                self.delete_bridge_and_wait(&rec.bridge).await?;
                // Deleting the bridge's interface may take routes with it on older kernels.
                self.check_routes(None, &routes).await?;
            } else {
                self.clear_nic_record(&rec.bridge).await?;
            }
        }
        if !n.up {
            self.nl.set_up(&nic, false).await?;
        }
        Ok(())
    }

    /// Deletes a kovs bridge and waits for its kernel interface to go away.
    async fn delete_bridge_and_wait(&self, bridge: &str) -> Result<(), Error> {
        if self.vs.delete_bridge(bridge).await? {
            self.wait_link(bridge, true).await?;
        }
        Ok(())
    }
}
