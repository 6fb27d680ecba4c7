//! Which local pods' flows br-int holds: for `kovs_pod_port_seconds`, and for whoever waits for a
//! pod's flows (the CNI server's ADD, which returns only once they are acknowledged — no poll of
//! a marker).
//!
//! A pod's flows are installed once a sync of br-int succeeded after its port got its ofport,
//! the pod is valid and on this node, and the switch did not reject its flows. The loop answers
//! that question ([`Installed`]); this module keeps who is waiting and since when.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::observe::metrics::Metrics;

/// Whether the flows of the pod whose port is `iface_id` are installed now.
pub trait Installed {
    fn installed(&self, iface_id: &str) -> bool;
}

impl<F: Fn(&str) -> bool> Installed for F {
    fn installed(&self, iface_id: &str) -> bool {
        self(iface_id)
    }
}

/// Pods plugged while the agent runs whose flows are not installed yet, and the waiters for
/// pods' flows. Both are bounded by the node's ports.
#[derive(Default)]
pub struct PodReadiness {
    /// iface-id -> when its port got (another) ofport.
    plugged_at: HashMap<String, Instant>,
    /// iface-id -> who waits for its flows.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
}

impl PodReadiness {
    /// The port of `iface_id` got an ofport (a real plug: not the same ofport again).
    pub fn plugged(&mut self, iface_id: &str, at: Instant) {
        self.plugged_at.insert(iface_id.to_string(), at);
    }

    /// The port of `iface_id` is gone: it is no longer timed. Waiters stay: the port may come
    /// back (a CNI ADD replacing an older port with the same iface-id).
    pub fn unplugged(&mut self, iface_id: &str) {
        self.plugged_at.remove(iface_id);
    }

    /// `reply` is sent once the pod's flows are installed: at once if they are now.
    pub fn wait(&mut self, iface_id: &str, reply: oneshot::Sender<()>, now: &impl Installed) {
        if now.installed(iface_id) {
            let _ = reply.send(());
            return;
        }
        self.waiters
            .entry(iface_id.to_string())
            .or_default()
            .push(reply);
    }

    /// br-int took a sync: the pods now installed are timed and their waiters answered.
    /// Waiters that gave up are forgotten.
    pub fn synced(&mut self, now: &impl Installed, metrics: &Metrics) {
        self.plugged_at.retain(|iface_id, at| {
            let done = now.installed(iface_id);
            if done {
                metrics.pod_port_installed(at.elapsed().as_secs_f64());
            }
            !done
        });
        self.waiters.retain(|iface_id, waiting| {
            if now.installed(iface_id) {
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
                return false;
            }
            waiting.retain(|w| !w.is_closed());
            !waiting.is_empty()
        });
    }

    /// Pods waited for (for tests and `/status`).
    pub fn waiting(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn set(ids: &[&str]) -> impl Fn(&str) -> bool {
        let s: HashSet<String> = ids.iter().map(|s| s.to_string()).collect();
        move |id: &str| s.contains(id)
    }

    fn count(metrics: &Metrics) -> u64 {
        let text = metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix("kovs_pod_port_seconds_count "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_waiter_is_answered_when_the_pods_flows_are_installed() {
        let mut r = PodReadiness::default();
        let metrics = Metrics::new();
        let (tx, mut rx) = oneshot::channel();
        r.wait("a.ns", tx, &set(&[]));
        assert_eq!(r.waiting(), 1);
        // Another pod's sync answers nobody.
        r.synced(&set(&["b.ns"]), &metrics);
        assert!(rx.try_recv().is_err());
        r.synced(&set(&["a.ns"]), &metrics);
        assert_eq!(rx.try_recv(), Ok(()));
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn a_waiter_for_installed_flows_is_answered_at_once() {
        let mut r = PodReadiness::default();
        let (tx, mut rx) = oneshot::channel();
        r.wait("a.ns", tx, &set(&["a.ns"]));
        assert_eq!(rx.try_recv(), Ok(()));
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn a_waiter_that_gave_up_is_forgotten_and_an_unplug_keeps_waiters() {
        let mut r = PodReadiness::default();
        let metrics = Metrics::new();
        let (tx, rx) = oneshot::channel();
        r.wait("a.ns", tx, &set(&[]));
        let (tx2, mut rx2) = oneshot::channel();
        r.wait("b.ns", tx2, &set(&[]));
        r.unplugged("b.ns");
        drop(rx);
        r.synced(&set(&[]), &metrics);
        assert_eq!(r.waiting(), 1, "only b.ns is still waited for");
        r.synced(&set(&["b.ns"]), &metrics);
        assert_eq!(rx2.try_recv(), Ok(()));
    }

    #[test]
    fn a_plugged_port_is_timed_once_when_installed_and_an_unplugged_one_never() {
        let mut r = PodReadiness::default();
        let metrics = Metrics::new();
        let t = Instant::now();
        r.plugged("a.ns", t);
        r.plugged("b.ns", t);
        r.unplugged("b.ns");
        r.synced(&set(&[]), &metrics);
        assert_eq!(count(&metrics), 0);
        r.synced(&set(&["a.ns", "b.ns"]), &metrics);
        assert_eq!(count(&metrics), 1);
        r.synced(&set(&["a.ns", "b.ns"]), &metrics);
        assert_eq!(count(&metrics), 1, "timed once");
    }
}
