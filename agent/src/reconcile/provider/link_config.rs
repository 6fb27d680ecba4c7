//! A link's layer-3 configuration as the provider moves it: which addresses and routes move
//! (not the ones each link has of its own), and moving them from one link to another, make
//! before break, in an order that keeps every gateway reachable (module docs, "The order of a
//! move"). Used both ways: NIC to bridge on a move, bridge to NIC on a restore.

use crate::sys::netlink::{self, Address, Link, Route};

use super::{Error, Host};

/// Scope order for re-adding routes: a gateway must be reachable before a route uses it.
const SCOPE_ORDER: [u8; 4] = [
    netlink::SCOPE_HOST,
    netlink::SCOPE_LINK,
    netlink::SCOPE_SITE,
    netlink::SCOPE_UNIVERSE,
];

/// Addresses worth moving: all but link-local ones (each link has its own).
pub(super) fn movable_addrs(addrs: Vec<Address>) -> Vec<Address> {
    addrs.into_iter().filter(|a| !a.is_link_local()).collect()
}

/// Routes worth moving: all but those the kernel derives from addresses (they follow the
/// addresses) and gateway-less link-local ones (as Kube-OVN).
pub(super) fn movable_routes(routes: Vec<Route>) -> Vec<Route> {
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

/// Adds to `base` the addresses of `extra` it lacks.
pub(super) fn union_addrs(mut base: Vec<Address>, extra: &[Address]) -> Vec<Address> {
    for a in extra {
        if !base.iter().any(|b| b.same_as(a)) {
            base.push(a.clone());
        }
    }
    base
}

/// Adds to `base` the routes of `extra` it lacks.
pub(super) fn union_routes(mut base: Vec<Route>, extra: &[Route]) -> Vec<Route> {
    for r in extra {
        if !base.iter().any(|b| b.same_path(r)) {
            base.push(r.clone());
        }
    }
    base
}

impl Host {
    /// Moves addresses and routes from link `from` to link `to`, make before break: adds
    /// `adds` to `to`, replaces `routes` (given as they are through `from`) onto `to` in
    /// scope order, removes the addresses from `from` (secondaries first), then checks the
    /// moved routes once more. Idempotent. Returns how many addresses and routes it moved.
    pub(super) async fn move_config(
        &self,
        from: &Link,
        to: &Link,
        adds: &[Address],
        routes: &[Route],
    ) -> Result<(usize, usize), Error> {
        let on_to = self.nl.addresses(to).await?;
        let mut n_addrs = 0;
        for a in adds {
            if on_to.iter().any(|b| b.same_as(a)) {
                continue;
            }
            match self.nl.add_address(to, a, false).await {
                Ok(()) => n_addrs += 1,
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }

        let mut ordered: Vec<Route> = routes
            .iter()
            .map(|r| r.moved(from.index, to.index))
            .collect();
        ordered.sort_by_key(|r| scope_rank(r.scope));
        let current = self.nl.all_routes().await?;
        let mut n_routes = 0;
        for r in &ordered {
            if current.iter().any(|c| c.same_path(r)) {
                continue;
            }
            self.add_route_settled(r).await?;
            n_routes += 1;
        }

        let on_from = self.nl.addresses(from).await?;
        for a in adds.iter().rev() {
            if on_from.iter().any(|b| b.same_as(a)) {
                self.nl.del_address(from, a).await?;
            }
        }
        self.check_routes(Some(from), &ordered).await?;
        Ok((n_addrs, n_routes))
    }

    /// Re-adds any of `routes` the kernel dropped and deletes copies of them still going
    /// through `from`.
    pub(super) async fn check_routes(
        &self,
        from: Option<&Link>,
        routes: &[Route],
    ) -> Result<(), Error> {
        if routes.is_empty() {
            return Ok(());
        }
        let current = self.nl.all_routes().await?;
        for r in routes {
            if !current.iter().any(|c| c.same_path(r)) {
                self.add_route_settled(r).await?;
            }
            let stale = current.iter().filter(|c| {
                from.is_some_and(|f| c.uses_link(f.index)) && !c.is_kernel() && c.same_key(r)
            });
            for stale in stale {
                self.nl.del_route(stale).await?;
            }
        }
        Ok(())
    }

    /// Adds addresses and routes to a link (when there is no link to move them from).
    pub(super) async fn add_config(
        &self,
        to: &Link,
        adds: &[Address],
        routes: &[Route],
    ) -> Result<(), Error> {
        let on_to = self.nl.addresses(to).await?;
        for a in adds {
            if on_to.iter().any(|b| b.same_as(a)) {
                continue;
            }
            match self.nl.add_address(to, a, false).await {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut ordered = routes.to_vec();
        ordered.sort_by_key(|r| scope_rank(r.scope));
        let current = self.nl.all_routes().await?;
        for r in &ordered {
            if !current.iter().any(|c| c.same_path(r)) {
                self.add_route_settled(r).await?;
            }
        }
        Ok(())
    }

    /// Adds (replaces) `r`. A gateway the kernel finds unreachable just after the link's
    /// addresses were added is tried again briefly: ovs-vswitchd may be reconfiguring the
    /// bridge's device (it takes it down and up when it renames or reopens it), which drops
    /// the link's prefix routes until the device is up again (seen once in 20 runs under load).
    async fn add_route_settled(&self, r: &Route) -> Result<(), Error> {
        const TRIES: u32 = 10;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
        let mut tries = 1;
        loop {
            match self.nl.add_route(r, true).await {
                Err(e) if e.errno() == Some(libc::ENETUNREACH) && tries < TRIES => {
                    tries += 1;
                    tokio::time::sleep(PAUSE).await;
                    if let Some(oif) = r.oif {
                        if let Ok(Some(link)) = self.nl.link_by_index(oif).await {
                            if !link.up {
                                self.nl.set_up(&link, true).await?;
                            }
                        }
                    }
                }
                other => return other.map_err(Into::into),
            }
        }
    }
}
