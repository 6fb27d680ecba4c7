//! The CNI server's line to the loop. The loop owns the compiler and the sessions; the server's
//! requests run on other tasks and ask it, by message, two things: what a pod's network is
//! (asked again each time the state changes, until it is there or the ADD's bound runs out —
//! woken by the change, never by a sleeping poll), and to be told when br-int holds a pod's
//! flows (answered from [`PodReadiness`](super::readiness::PodReadiness) after the bundle's
//! barrier reply). `ready` says whether the agent has made its first full sync.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::cni::pod_network::{Lookup, PodNetwork};

/// What the server asks the loop.
pub enum CniQuery {
    /// The pod's network as the state has it now.
    Pod {
        namespace: String,
        name: String,
        reply: oneshot::Sender<Lookup>,
    },
    /// Answered once br-int holds the flows of the pod whose port is `iface_id`.
    Flows {
        iface_id: String,
        reply: oneshot::Sender<()>,
    },
}

/// Why a wait ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The bound ran out; the last reason the pod was not usable.
    #[error("{0}")]
    TimedOut(String),
    #[error("the agent is stopping")]
    Stopping,
}

/// The server's end; cheap to clone (one per request).
#[derive(Clone)]
pub struct CniLink {
    queries: mpsc::Sender<CniQuery>,
    state: watch::Receiver<u64>,
    ready: watch::Receiver<bool>,
}

/// The loop's end.
pub struct LoopEnd {
    pub queries: mpsc::Receiver<CniQuery>,
    /// Bumped after every state change the compiler applied.
    pub state: watch::Sender<u64>,
    /// Set once every bridge has had its first full sync.
    pub ready: watch::Sender<bool>,
}

/// A new link: the server's end and the loop's.
pub fn link() -> (CniLink, LoopEnd) {
    let (qtx, qrx) = mpsc::channel(256);
    let (stx, srx) = watch::channel(0);
    let (rtx, rrx) = watch::channel(false);
    (
        CniLink {
            queries: qtx,
            state: srx,
            ready: rrx,
        },
        LoopEnd {
            queries: qrx,
            state: stx,
            ready: rtx,
        },
    )
}

impl CniLink {
    /// The agent has made its first full sync (before it, ADD is "try again later").
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The pod's network, waiting up to `bound` for it to be there and valid.
    pub async fn pod_network(
        &self,
        namespace: &str,
        name: &str,
        bound: Duration,
    ) -> Result<PodNetwork, WaitError> {
        let deadline = tokio::time::Instant::now() + bound;
        let mut state = self.state.clone();
        loop {
            // Seen before asking: a change after the answer wakes the next round.
            state.borrow_and_update();
            let (reply, answer) = oneshot::channel();
            let q = CniQuery::Pod {
                namespace: namespace.to_string(),
                name: name.to_string(),
                reply,
            };
            self.queries
                .send(q)
                .await
                .map_err(|_| WaitError::Stopping)?;
            let why = match answer.await.map_err(|_| WaitError::Stopping)? {
                Lookup::Ready(n) => return Ok(n),
                Lookup::Missing(why) | Lookup::Rejected(why) => why,
            };
            tokio::select! {
                changed = state.changed() => changed.map_err(|_| WaitError::Stopping)?,
                _ = tokio::time::sleep_until(deadline) => return Err(WaitError::TimedOut(why)),
            }
        }
    }

    /// Waits up to `bound` until br-int holds the flows of the pod whose port is `iface_id`.
    pub async fn flows_installed(&self, iface_id: &str, bound: Duration) -> Result<(), WaitError> {
        let (reply, answer) = oneshot::channel();
        let q = CniQuery::Flows {
            iface_id: iface_id.to_string(),
            reply,
        };
        self.queries
            .send(q)
            .await
            .map_err(|_| WaitError::Stopping)?;
        match tokio::time::timeout(bound, answer).await {
            Ok(r) => r.map_err(|_| WaitError::Stopping),
            Err(_) => Err(WaitError::TimedOut(format!(
                "the flows of {iface_id} were not installed within {bound:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn network() -> PodNetwork {
        PodNetwork {
            ip: Ipv4Addr::new(10, 16, 0, 5),
            prefix_len: 16,
            mac: [0, 0, 0, 0xaa, 0, 5],
            cidr: "10.16.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 16, 0, 1),
            mtu: 1400,
            subnet: "ovn-default".into(),
            provider_network: None,
            routes: Vec::new(),
            nic_type: Default::default(),
        }
    }

    /// A stand-in for the loop: `p` is there once the state generation reaches 2.
    fn fake_loop(mut end: LoopEnd) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(q) = end.queries.recv().await {
                match q {
                    CniQuery::Pod { reply, name, .. } => {
                        let generation = *end.state.borrow();
                        let _ = reply.send(if generation >= 2 && name == "p" {
                            Lookup::Ready(network())
                        } else {
                            Lookup::Missing(format!("{name} not yet (generation {generation})"))
                        });
                        // The state changes twice, after the first questions, then stays.
                        if generation < 2 {
                            end.state.send_modify(|g| *g += 1);
                        }
                    }
                    CniQuery::Flows { reply, .. } => {
                        let _ = reply.send(());
                    }
                }
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_is_asked_for_again_on_each_state_change_until_it_is_there() {
        let (link, end) = link();
        fake_loop(end);
        let n = link
            .pod_network("ns", "p", Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(n, network());
        assert_eq!(
            link.flows_installed("p.ns", Duration::from_secs(1)).await,
            Ok(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_bound_ends_the_wait_with_the_last_reason() {
        let (link, end) = link();
        fake_loop(end);
        let e = link
            .pod_network("ns", "other", Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, WaitError::TimedOut(m) if m.starts_with("other not yet")),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_loop_ends_every_wait() {
        let (link, end) = link();
        drop(end);
        assert!(!link.is_ready());
        assert_eq!(
            link.pod_network("ns", "p", Duration::from_secs(1)).await,
            Err(WaitError::Stopping)
        );
        assert_eq!(
            link.flows_installed("p.ns", Duration::from_secs(1)).await,
            Err(WaitError::Stopping)
        );
    }
}
