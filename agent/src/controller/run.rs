//! The controller's loop: wait to lead; then watch everything, feed the core, execute its
//! writes (each object's in order, objects concurrently), retry what failed with backoff; stop
//! at once when the Lease is lost (the process exits and its Deployment restarts it as a
//! standby), so two leaders never allocate side by side.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kovs_kube::control::{self, ControlClient, Kind, WriteError};
use kovs_kube::lease::{Elector, Timings};
use kovs_kube::Endpoint;
use serde_json::json;
use tracing::{debug, info, warn};

use super::config::Config;
use super::core::{Chain, Core, Key, Write};

/// Everything `kovs-agent controller` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub endpoint: Endpoint,
    /// This replica's name in the Lease and Events.
    pub identity: String,
    pub lease_namespace: String,
    pub lease_name: String,
    pub timings: Timings,
    pub controller: Config,
    /// Writes in flight at once.
    pub concurrency: usize,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kovs_kube::Error),
    #[error("leadership lost: {0}")]
    Lost(String),
    #[error("the watchers stopped")]
    Watch,
}

/// Runs the controller until leadership is lost.
pub async fn run(cfg: RunConfig) -> Result<(), Error> {
    let client = ControlClient::connect(&cfg.endpoint, &cfg.identity).await?;
    let mut elector = Elector::new(
        &client,
        &cfg.lease_namespace,
        &cfg.lease_name,
        &cfg.identity,
        cfg.timings,
    );
    info!(
        identity = %cfg.identity,
        "controller: waiting for the lease {}/{}",
        cfg.lease_namespace, cfg.lease_name
    );
    elector.acquire().await;
    info!(identity = %cfg.identity, "controller: leading");
    tokio::select! {
        why = elector.hold() => Err(Error::Lost(why)),
        r = lead(&client, cfg.controller.clone(), cfg.concurrency.max(1)) => r,
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// The leader's work: lists first, then the core's writes for every change.
async fn lead(client: &ControlClient, cfg: Config, concurrency: usize) -> Result<(), Error> {
    let (mut rx, _tasks) = client.watch();
    let mut core = Core::new(cfg, seed());
    let mut retry: Vec<Key> = Vec::new();
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut attempt = 0u32;
    let started = Instant::now();
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return Err(Error::Watch) };
                core.observe(ev);
                let mut n = 1;
                while n < 4096 {
                    match rx.try_recv() {
                        Ok(ev) => { core.observe(ev); n += 1; }
                        Err(_) => break,
                    }
                }
            }
            _ = async { tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)).await }, if retry_at.is_some() => {
                for k in retry.drain(..) {
                    core.failed(&k);
                }
                retry_at = None;
            }
        }
        let was_ready = core.is_ready();
        let chains = core.reconcile(&control::now());
        if !was_ready && core.is_ready() {
            info!(
                took_ms = started.elapsed().as_millis() as u64,
                "controller: listed everything and rebuilt the allocations"
            );
        }
        if chains.is_empty() {
            continue;
        }
        let failed: Vec<Key> = futures::stream::iter(chains)
            .map(|c| execute(client, c))
            .buffer_unordered(concurrency)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        if failed.is_empty() {
            attempt = 0;
        } else {
            let d = control::retry_delay(attempt);
            attempt += 1;
            warn!(
                objects = failed.len(),
                "controller: writes failed; retrying in {d:?}"
            );
            retry.extend(failed);
            retry_at = Some(tokio::time::Instant::now() + d);
        }
    }
}

/// One object's writes, in order; the first failure stops them.
async fn execute(client: &ControlClient, chain: Chain) -> Result<(), Key> {
    for w in &chain.writes {
        if let Err(e) = write(client, w).await {
            warn!("controller: {:?}: {e}", chain.key);
            return Err(chain.key);
        }
    }
    Ok(())
}

async fn write(client: &ControlClient, w: &Write) -> Result<(), WriteError> {
    fn ok_if_gone<T>(r: Result<T, WriteError>) -> Result<(), WriteError> {
        match r {
            Ok(_) | Err(WriteError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
    match w {
        Write::Create { kind, object } => match client.create(*kind, object).await {
            Ok(_) => {
                info!(
                    "controller: created {:?} {}",
                    kind, object["metadata"]["name"]
                );
                Ok(())
            }
            Err(WriteError::AlreadyExists) => Ok(()),
            Err(e) => Err(e),
        },
        Write::Ip { object } => match client.create(Kind::Ip, object).await {
            Ok(_) => Ok(()),
            Err(WriteError::AlreadyExists) => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let patch = json!({"metadata": {"labels": object["metadata"]["labels"]},
                                   "spec": object["spec"]});
                client
                    .merge_patch(Kind::Ip, None, name, &patch)
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        },
        Write::Patch {
            kind,
            namespace,
            name,
            patch,
        } => {
            debug!("controller: patch {kind:?} {name}: {patch}");
            ok_if_gone(
                client
                    .merge_patch(*kind, namespace.as_deref(), name, patch)
                    .await,
            )
        }
        Write::Status { name, patch } => {
            ok_if_gone(client.patch_status(Kind::Subnet, name, patch).await)
        }
        Write::Delete {
            kind,
            namespace,
            name,
        } => client.delete(*kind, namespace.as_deref(), name).await,
        Write::Event {
            regarding,
            warning,
            reason,
            note,
        } => {
            // An Event lost is not worth a retry of the object's other writes.
            if let Err(e) = client
                .event(regarding, *warning, reason, "Allocate", note)
                .await
            {
                warn!("controller: event {reason} on {}: {e}", regarding.name);
            }
            Ok(())
        }
    }
}

/// Default timings for tests that want a quick failover.
pub fn quick_timings(lease: Duration) -> Timings {
    Timings {
        lease_duration: lease,
        renew_deadline: lease * 2 / 3,
        retry_period: lease / 5,
    }
}
