//! Leader election on a `coordination.k8s.io/v1` Lease (kube-runtime 5 has none), as
//! client-go's `leaderelection` does it: one replica holds the Lease and renews it every retry
//! period; the others read it and take it over once it has not changed for a whole lease
//! duration *as they observed it* (their own clock, never the holder's timestamps, so clock
//! skew between nodes does not matter). Writes carry the resourceVersion read, so two
//! candidates racing for an expired Lease cannot both win (the loser gets a 409).
//!
//! A leader that cannot renew within the renew deadline must stop acting at once (the caller
//! exits): by then another replica may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tracing::{debug, info};

use crate::control::{ControlClient, WriteError};

/// The timings (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The Lease's record as one candidate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub holder: String,
    pub transitions: i32,
    /// The Lease's resourceVersion: a change of it is a renewal.
    pub version: String,
}

/// What a candidate does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// It is ours: renew it.
    Renew,
    /// Someone else's, expired: take it over (transitions + 1).
    TakeOver,
    /// Someone else's and live: wait.
    Wait,
}

/// The pure decision: `observed` is when this candidate first saw the current record.
pub fn decide(
    me: &str,
    record: Option<&Record>,
    observed: Instant,
    now: Instant,
    lease_duration: Duration,
) -> Step {
    match record {
        None => Step::Create,
        Some(r) if r.holder == me => Step::Renew,
        Some(r) if r.holder.is_empty() => Step::TakeOver,
        Some(_) if now.duration_since(observed) > lease_duration => Step::TakeOver,
        Some(_) => Step::Wait,
    }
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    timings: Timings,
    /// The last record read and when it was first seen.
    seen: Option<(Record, Instant)>,
}

impl Elector {
    pub fn new(
        client: &ControlClient,
        namespace: &str,
        name: &str,
        me: &str,
        timings: Timings,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client.client().clone(), namespace),
            name: name.into(),
            me: me.into(),
            timings,
            seen: None,
        }
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_once().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => debug!("lease {}: {e}", self.name),
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// One round: read the Lease, then create, renew or take it over as [`decide`] says.
    /// `Ok(true)` when this candidate holds it afterwards.
    pub async fn try_once(&mut self) -> Result<bool, WriteError> {
        let now = Instant::now();
        let current = self.api.get_opt(&self.name).await?;
        let record = current.as_ref().map(record_of);
        if let Some(r) = &record {
            match &self.seen {
                Some((s, _)) if s == r => {}
                _ => self.seen = Some((r.clone(), now)),
            }
        }
        let observed = self.seen.as_ref().map_or(now, |(_, t)| *t);
        let step = decide(
            &self.me,
            record.as_ref(),
            observed,
            now,
            self.timings.lease_duration,
        );
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let secs = self.timings.lease_duration.as_secs().max(1) as i32;
        match (step, current) {
            (Step::Wait, _) => Ok(false),
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.me.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(stamp.clone()),
                        renew_time: Some(stamp),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await?;
                info!("lease {}: acquired (created) by {}", self.name, self.me);
                Ok(true)
            }
            (step, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(stamp.clone());
                spec.lease_duration_seconds = Some(secs);
                if step == Step::TakeOver {
                    spec.holder_identity = Some(self.me.clone());
                    spec.acquire_time = Some(stamp);
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                // resourceVersion is kept: a concurrent writer makes this a 409.
                lease.metadata.managed_fields = None;
                let written = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await?;
                if step == Step::TakeOver {
                    info!("lease {}: taken over by {}", self.name, self.me);
                }
                self.seen = Some((record_of(&written), Instant::now()));
                Ok(true)
            }
            (_, None) => Ok(false),
        }
    }

    /// Keeps renewing; returns (the caller must stop leading) once a renewal has not succeeded
    /// for the renew deadline, or another holder is seen.
    pub async fn hold(&mut self) -> String {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.timings.retry_period).await;
            match self.try_once().await {
                Ok(true) => last_ok = Instant::now(),
                Ok(false) => {
                    let holder = self.seen.as_ref().map(|(r, _)| r.holder.clone());
                    return format!("the lease is held by {}", holder.unwrap_or_default());
                }
                Err(e) => {
                    debug!("lease {}: renewal failed: {e}", self.name);
                }
            }
            if last_ok.elapsed() >= self.timings.renew_deadline {
                return format!(
                    "the lease was not renewed for {:?} (renew deadline)",
                    self.timings.renew_deadline
                );
            }
        }
    }
}

fn record_of(l: &Lease) -> Record {
    let spec = l.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.unwrap_or_default(),
        transitions: spec.lease_transitions.unwrap_or(0),
        version: l.metadata.resource_version.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str) -> Record {
        Record {
            holder: holder.into(),
            transitions: 0,
            version: "1".into(),
        }
    }

    #[test]
    fn a_live_lease_of_another_holder_is_waited_on_until_it_expires() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(decide("a", None, t0, t0, d), Step::Create);
        assert_eq!(decide("a", Some(&rec("a")), t0, t0, d), Step::Renew);
        assert_eq!(decide("a", Some(&rec("b")), t0, t0 + d, d), Step::Wait);
        assert_eq!(
            decide(
                "a",
                Some(&rec("b")),
                t0,
                t0 + d + Duration::from_millis(1),
                d
            ),
            Step::TakeOver
        );
        assert_eq!(decide("a", Some(&rec("")), t0, t0, d), Step::TakeOver);
    }
}
