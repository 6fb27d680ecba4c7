//! A table monitor that survives ovsdb-server restarts.
//!
//! [`Watch`] runs a task that connects, fetches the schema (needed to apply `update2` diffs),
//! starts `monitor_cond` on one table, delivers the initial rows as a [`WatchEvent::Snapshot`]
//! and then every change. When the connection drops (or stops answering probes) it says so
//! ([`WatchEvent::Disconnected`]), reconnects with exponential backoff, and delivers a fresh
//! snapshot with `resync: true`: changes made while it was away are never replayed, so the
//! consumer must replace its whole view with the snapshot.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

use crate::conn::{Client, Notification};
use crate::rows::Row;
use crate::schema::TableSchema;
use crate::value::Uuid;
use crate::{Error, DB};

/// Where and how to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// `unix:PATH` or `tcp:HOST:PORT`.
    pub target: String,
    pub db: String,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Send an `echo` after this long without traffic, and reconnect if it is not answered
    /// within the same time: catches a server that hangs or a TCP peer that vanished.
    pub probe_interval: Option<Duration>,
}

impl WatchOptions {
    pub fn new(target: &str) -> WatchOptions {
        WatchOptions {
            target: target.to_string(),
            db: DB.to_string(),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            probe_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// What a [`Watch`] reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<R> {
    /// The whole table: on the first connection (`resync: false`) and after every reconnect
    /// (`resync: true`). Replace all state with it.
    Snapshot {
        rows: BTreeMap<Uuid, R>,
        resync: bool,
    },
    Insert(R),
    /// `old` is the full previous row (from the watch's cache, not just changed columns).
    Modify {
        old: R,
        new: R,
    },
    Delete(R),
    /// The connection is gone; a `Snapshot { resync: true }` follows once it is back.
    Disconnected(String),
}

/// A live view of one table's changes; dropping it stops the task and closes the connection.
pub struct Watch<R> {
    rx: mpsc::UnboundedReceiver<WatchEvent<R>>,
    task: JoinHandle<()>,
    _row: PhantomData<R>,
}

impl<R> Drop for Watch<R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<R: Row> Watch<R> {
    /// Starts watching `R`'s table (columns `R::MONITOR_COLUMNS`); needs a tokio runtime.
    pub fn spawn(opts: WatchOptions) -> Watch<R> {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run::<R>(opts, tx));
        Watch {
            rx,
            task,
            _row: PhantomData,
        }
    }

    /// The next event; `None` only if the task ended (it does not on its own).
    pub async fn next(&mut self) -> Option<WatchEvent<R>> {
        self.rx.recv().await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<WatchEvent<R>> {
        self.rx.try_recv().ok()
    }
}

type Tx<R> = mpsc::UnboundedSender<WatchEvent<R>>;

/// How a session ended.
enum End {
    /// The consumer dropped the [`Watch`].
    Gone,
    /// Never got to a snapshot.
    Failed(Error),
    /// Was delivering updates, then lost the connection.
    Lost(String),
}

async fn run<R: Row>(opts: WatchOptions, tx: Tx<R>) {
    let mut resync = false;
    let mut backoff = opts.backoff_min;
    loop {
        match session::<R>(&opts, &tx, resync).await {
            End::Gone => return,
            End::Lost(reason) => {
                tracing::warn!(table = R::TABLE, %reason, "ovsdb monitor lost its connection");
                if tx.send(WatchEvent::Disconnected(reason)).is_err() {
                    return;
                }
                resync = true;
                backoff = opts.backoff_min;
                // Not zero: a server that accepts and then drops us must not cause a busy loop.
                sleep(backoff).await;
            }
            End::Failed(e) => {
                tracing::debug!(table = R::TABLE, error = %e, ?backoff, "ovsdb monitor (re)connect failed");
                sleep(backoff).await;
                backoff = (backoff * 2).min(opts.backoff_max);
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Monitor id; one monitor per connection, so a constant will do.
fn monitor_id<R: Row>() -> Value {
    json!(format!("kovs-{}", R::TABLE))
}

async fn session<R: Row>(opts: &WatchOptions, tx: &Tx<R>, resync: bool) -> End {
    let (client, mut notes) = match Client::connect(&opts.target).await {
        Ok(c) => c,
        Err(e) => return End::Failed(e),
    };
    let setup = async {
        let schema = client.get_schema(&opts.db).await?;
        let table = schema
            .tables
            .get(R::TABLE)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("no table {} in {}", R::TABLE, opts.db)))?;
        let req = json!({ R::TABLE: [{"columns": R::MONITOR_COLUMNS}] });
        let initial = client
            .monitor_cond(&opts.db, monitor_id::<R>(), req)
            .await?;
        Ok::<_, Error>((table, initial))
    };
    let setup = match opts.probe_interval {
        Some(t) => timeout(t * 2, setup)
            .await
            .unwrap_or_else(|_| Err(Error::Disconnected("monitor setup timed out".into()))),
        None => setup.await,
    };
    let (table, initial) = match setup {
        Ok(s) => s,
        Err(e) => return End::Failed(e),
    };

    let mut cache: BTreeMap<Uuid, Map<String, Value>> = BTreeMap::new();
    let mut events = Vec::new();
    if let Err(e) = apply::<R>(&table, &mut cache, &initial, &mut events) {
        return End::Failed(e);
    }
    let rows = cache
        .iter()
        .filter_map(|(u, r)| decode::<R>(u, r))
        .map(|r| (r.uuid().clone(), r))
        .collect();
    if tx.send(WatchEvent::Snapshot { rows, resync }).is_err() {
        return End::Gone;
    }

    let probe = opts.probe_interval;
    let mut idle_deadline = probe.map(|p| Instant::now() + p);
    loop {
        let idle = async {
            match idle_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            note = notes.recv() => {
                let Some(note) = note else {
                    return End::Lost(client.close_reason().unwrap_or_else(|| "closed".into()));
                };
                idle_deadline = probe.map(|p| Instant::now() + p);
                let updates = match note {
                    Notification::Update2 { monitor_id: id, updates }
                        if id == monitor_id::<R>() => updates,
                    _ => continue,
                };
                events.clear();
                if let Err(e) = apply::<R>(&table, &mut cache, &updates, &mut events) {
                    // Our cache no longer matches the server: start over with a snapshot.
                    return End::Lost(e.to_string());
                }
                for ev in events.drain(..) {
                    if tx.send(ev).is_err() {
                        return End::Gone;
                    }
                }
            }
            _ = idle => {
                let p = probe.unwrap_or_default();
                match timeout(p, client.echo()).await {
                    Ok(Ok(())) => idle_deadline = Some(Instant::now() + p),
                    Ok(Err(e)) => return End::Lost(e.to_string()),
                    Err(_) => return End::Lost(format!("no echo reply within {p:?}")),
                }
            }
            _ = tx.closed() => return End::Gone,
        }
    }
}

fn decode<R: Row>(uuid: &Uuid, row: &Map<String, Value>) -> Option<R> {
    match R::from_row(uuid.clone(), row) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(table = R::TABLE, %uuid, error = %e, "cannot decode monitored row; skipped");
            None
        }
    }
}

/// Applies a `<table-updates2>` (the initial reply of `monitor_cond`, or an `update2`) to
/// `cache` (the watched table's rows as the server sent them), appending the resulting events:
/// what the rows that decode as `R` became. On an error the cache no longer matches the
/// server, and the watch starts over with a fresh snapshot.
pub fn apply<R: Row>(
    table: &TableSchema,
    cache: &mut BTreeMap<Uuid, Map<String, Value>>,
    updates: &Value,
    events: &mut Vec<WatchEvent<R>>,
) -> Result<(), Error> {
    let Some(rows) = updates.get(R::TABLE).and_then(Value::as_object) else {
        return Ok(());
    };
    for (uuid, update) in rows {
        let uuid = Uuid(uuid.clone());
        let Some((kind, body)) = update.as_object().and_then(|o| o.iter().next()) else {
            return Err(Error::Protocol(format!("bad row update {update}")));
        };
        let body_obj = || {
            body.as_object()
                .cloned()
                .ok_or_else(|| Error::Protocol(format!("bad {kind} row {body}")))
        };
        match kind.as_str() {
            "initial" | "insert" => {
                let row = body_obj()?;
                let new = decode::<R>(&uuid, &row);
                let old = cache.insert(uuid.clone(), row);
                match (old.and_then(|o| decode::<R>(&uuid, &o)), new) {
                    (Some(old), Some(new)) => events.push(WatchEvent::Modify { old, new }),
                    (Some(old), None) => events.push(WatchEvent::Delete(old)),
                    (None, Some(new)) => events.push(WatchEvent::Insert(new)),
                    (None, None) => {}
                }
            }
            "modify" => {
                let Some(row) = cache.get_mut(&uuid) else {
                    return Err(Error::Protocol(format!("modify of unknown row {uuid}")));
                };
                let old = decode::<R>(&uuid, row);
                table.apply_row_diff(row, &body_obj()?)?;
                // A row that cannot be decoded does not exist for the consumer.
                match (old, decode::<R>(&uuid, row)) {
                    (Some(old), Some(new)) => events.push(WatchEvent::Modify { old, new }),
                    (Some(old), None) => events.push(WatchEvent::Delete(old)),
                    (None, Some(new)) => events.push(WatchEvent::Insert(new)),
                    (None, None) => {}
                }
            }
            "delete" => {
                if let Some(old) = cache.remove(&uuid) {
                    if let Some(old) = decode::<R>(&uuid, &old) {
                        events.push(WatchEvent::Delete(old));
                    }
                }
            }
            other => return Err(Error::Protocol(format!("unknown row update kind {other}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Interface;
    use crate::schema::DbSchema;

    fn iface_table() -> TableSchema {
        let schema = json!({"name": "Open_vSwitch", "version": "1", "tables": {"Interface": {"columns": {
            "name": {"type": "string"},
            "ofport": {"type": {"key": "integer", "min": 0, "max": 1}},
            "external_ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}
        }}}});
        DbSchema::from_json(&schema).unwrap().tables["Interface"].clone()
    }

    #[test]
    fn update2_insert_modify_delete() {
        let t = iface_table();
        let mut cache = BTreeMap::new();
        let mut ev: Vec<WatchEvent<Interface>> = Vec::new();
        apply(
            &t,
            &mut cache,
            &json!({"Interface": {"u1": {"initial": {"name": "a", "ofport": ["set", []]}}}}),
            &mut ev,
        )
        .unwrap();
        assert!(matches!(&ev[0], WatchEvent::Insert(i) if i.ofport.is_none()));
        ev.clear();
        let diff = json!({"Interface": {"u1": {"modify": {"ofport": 3, "external_ids": ["map", [["iface-id", "p"]]]}}}});
        apply(&t, &mut cache, &diff, &mut ev).unwrap();
        match &ev[0] {
            WatchEvent::Modify { old, new } => {
                assert_eq!(old.ofport, None);
                assert_eq!(new.ofport, Some(3));
                assert_eq!(new.iface_id(), Some("p"));
                assert_eq!(new.name, "a");
            }
            other => panic!("{other:?}"),
        }
        ev.clear();
        apply(
            &t,
            &mut cache,
            &json!({"Interface": {"u1": {"modify": {"ofport": 9}}}}),
            &mut ev,
        )
        .unwrap();
        assert!(matches!(&ev[0], WatchEvent::Modify { new, .. } if new.ofport == Some(9)));
        ev.clear();
        apply(
            &t,
            &mut cache,
            &json!({"Interface": {"u1": {"delete": null}}}),
            &mut ev,
        )
        .unwrap();
        assert!(matches!(&ev[0], WatchEvent::Delete(i) if i.ofport == Some(9)));
        assert!(cache.is_empty());
        assert!(apply(
            &t,
            &mut cache,
            &json!({"Interface": {"u2": {"modify": {}}}}),
            &mut ev
        )
        .is_err());
    }
}
