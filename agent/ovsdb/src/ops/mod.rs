//! The Open_vSwitch operations kovs needs, each idempotent and each one write transaction.
//!
//! Every operation reads the rows it cares about, decides, and commits one transaction
//! guarded by `wait` operations or `where` clauses that re-check what was read (optimistic
//! concurrency: if someone changed those rows meanwhile, the transaction is a no-op or fails
//! and the operation reads again). Nothing is written when the database already matches, so
//! repeated reconciles cause no updates for ovs-vswitchd or monitors.
//!
//! Ownership: rows kovs creates carry `external_ids:kovs-owner=kovs`. Bridges and ports
//! without it belong to someone else (an operator, another CNI) and are never modified.
//!
//! [`Vswitch`]'s operations on the Open_vSwitch row are here; those on bridges in `bridge.rs`,
//! on ports in `port.rs`.

mod bridge;
mod port;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

pub use bridge::{BridgeSpec, DATAPATH_ID_KEY};
pub use port::PortSpec;

use crate::conn::Client;
use crate::rows::{from_selected, OpenVSwitch, Row};
use crate::value::{cond, map_to_json, str_map, Uuid};
use crate::{Error, DB};

/// `external_ids` key marking rows kovs created (and may therefore change or delete).
pub const OWNER_KEY: &str = "kovs-owner";
pub const OWNER_VALUE: &str = "kovs";

/// How often an operation re-reads and retries when the rows changed under it.
const ATTEMPTS: usize = 5;

/// Builders for RFC 7047 §5.2 operations (`wait`s use timeout 0: fail now, never block).
pub mod op {
    use serde_json::{json, Value};

    pub fn select(table: &str, where_: Vec<Value>, columns: &[&str]) -> Value {
        json!({"op": "select", "table": table, "where": where_, "columns": columns})
    }

    /// `uuid_name` lets later operations of the same transaction refer to the new row.
    pub fn insert(table: &str, row: Value, uuid_name: Option<&str>) -> Value {
        let mut op = json!({"op": "insert", "table": table, "row": row});
        if let Some(n) = uuid_name {
            op["uuid-name"] = json!(n);
        }
        op
    }

    pub fn update(table: &str, where_: Vec<Value>, row: Value) -> Value {
        json!({"op": "update", "table": table, "where": where_, "row": row})
    }

    pub fn mutate(table: &str, where_: Vec<Value>, mutations: Vec<Value>) -> Value {
        json!({"op": "mutate", "table": table, "where": where_, "mutations": mutations})
    }

    /// `[column, mutator, value]`; mutators: `insert`, `delete`, `+=`, ...
    pub fn mutation(column: &str, mutator: &str, value: Value) -> Value {
        json!([column, mutator, value])
    }

    /// Aborts the transaction unless the rows matching `where_`, projected on `columns`,
    /// are (`until` = `==`) or are not (`!=`) exactly `rows`.
    pub fn wait(
        table: &str,
        where_: Vec<Value>,
        columns: &[&str],
        until: &str,
        rows: Value,
    ) -> Value {
        json!({"op": "wait", "timeout": 0, "table": table, "where": where_,
               "columns": columns, "until": until, "rows": rows})
    }

    /// Shows up in ovsdb-server's log, naming who changed what.
    pub fn comment(text: &str) -> Value {
        json!({"op": "comment", "comment": text})
    }
}

/// Outcome of an `ensure_*` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// kovs owned it and these columns were fixed.
    Updated(Vec<&'static str>),
    Unchanged,
    /// Someone else's bridge: left alone; these columns differ from what kovs wanted.
    Foreign {
        mismatched: Vec<&'static str>,
    },
}

fn owned(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(OWNER_KEY).map(String::as_str) == Some(OWNER_VALUE)
}

fn with_owner(ids: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut ids = ids.clone();
    ids.insert(OWNER_KEY.to_string(), OWNER_VALUE.to_string());
    ids
}

/// `where` clause element matching rows that carry the owner marker.
fn owner_cond() -> Value {
    cond(
        "external_ids",
        "includes",
        map_to_json(&str_map([(OWNER_KEY, OWNER_VALUE)])),
    )
}

fn uuid_is(u: &Uuid) -> Value {
    cond("_uuid", "==", u.to_json())
}

fn name_is(name: &str) -> Value {
    cond("name", "==", json!(name))
}

/// Columns to select: `R::COLUMNS` plus `_uuid`.
fn columns<R: Row>() -> Vec<&'static str> {
    let mut c = vec!["_uuid"];
    c.extend_from_slice(R::COLUMNS);
    c
}

/// The rows of a `select` result.
fn rows<R: Row>(result: &Value) -> Result<Vec<R>, Error> {
    result
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Protocol(format!("select result without rows: {result}")))?
        .iter()
        .map(from_selected)
        .collect()
}

fn first<R: Row>(result: &Value) -> Result<Option<R>, Error> {
    Ok(rows(result)?.into_iter().next())
}

/// The `count` of an update/mutate result.
fn count(result: &Value) -> u64 {
    result.get("count").and_then(Value::as_u64).unwrap_or(0)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Ok(None): the rows changed between read and write; read again.
type Attempt<T> = Result<Option<T>, Error>;

/// kovs's handle on the Open_vSwitch database. Clones share one connection. When it has ended
/// (ovsdb-server restarted), the next transaction connects again first; a transaction cut off
/// by the end is not repeated (whether it was applied is unknown), its caller sees the error.
#[derive(Debug, Clone)]
pub struct Vswitch {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Where to reconnect; `None` for a client made by the caller ([`Vswitch::new`]).
    target: Option<String>,
    client: Mutex<Client>,
}

impl Vswitch {
    /// Connects to `unix:PATH` or `tcp:HOST:PORT`. This connection never monitors, so its
    /// notification channel is dropped.
    pub async fn connect(target: &str) -> Result<Vswitch, Error> {
        let (client, _notes) = Client::connect(target).await?;
        Ok(Vswitch::with_target(client, Some(target.to_string())))
    }

    /// Wraps a connected client; it is not replaced when it ends.
    pub fn new(client: Client) -> Vswitch {
        Vswitch::with_target(client, None)
    }

    fn with_target(client: Client, target: Option<String>) -> Vswitch {
        Vswitch {
            shared: Arc::new(Shared {
                target,
                client: Mutex::new(client),
            }),
        }
    }

    /// The connection in use now.
    pub fn client(&self) -> Client {
        self.shared
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connection is up (as far as is known without asking).
    pub fn is_connected(&self) -> bool {
        self.client().close_reason().is_none()
    }

    /// Connects again if the connection has ended.
    pub async fn ensure_connected(&self) -> Result<(), Error> {
        self.live_client().await.map(|_| ())
    }

    /// The connection, connected again first if it has ended.
    async fn live_client(&self) -> Result<Client, Error> {
        let client = self.client();
        let Some(target) = &self.shared.target else {
            return Ok(client);
        };
        if client.close_reason().is_none() {
            return Ok(client);
        }
        let (fresh, _notes) = Client::connect(target).await?;
        *self.shared.client.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    async fn transact(&self, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        self.live_client().await?.transact(DB, ops).await
    }

    /// All rows of `R`'s table matching `where_`.
    pub async fn select<R: Row>(&self, where_: Vec<Value>) -> Result<Vec<R>, Error> {
        let r = self
            .transact(vec![op::select(R::TABLE, where_, &columns::<R>())])
            .await?;
        rows(&r[0])
    }

    /// The row named `name` of a table indexed by name (Bridge, Port, Interface).
    pub async fn by_name<R: Row>(&self, name: &str) -> Result<Option<R>, Error> {
        Ok(self.select(vec![name_is(name)]).await?.into_iter().next())
    }

    /// The Open_vSwitch row; an error if the database was never initialised.
    pub async fn open_vswitch(&self) -> Result<OpenVSwitch, Error> {
        self.select(vec![])
            .await?
            .into_iter()
            .next()
            .ok_or_else(no_root)
    }

    /// Sets `Open_vSwitch.other_config:key=value` (e.g. `flow-restore-wait=true` while the
    /// agent reinstalls flows after a restart). Delete-then-insert in one transaction:
    /// OVSDB drops rows whose value did not change, so a repeat is not an update.
    pub async fn set_other_config(&self, key: &str, value: &str) -> Result<(), Error> {
        let r = self
            .transact(vec![op::mutate(
                OpenVSwitch::TABLE,
                vec![],
                vec![
                    op::mutation("other_config", "delete", json!(["set", [key]])),
                    op::mutation(
                        "other_config",
                        "insert",
                        map_to_json(&str_map([(key, value)])),
                    ),
                ],
            )])
            .await?;
        if count(&r[0]) == 0 {
            return Err(no_root());
        }
        Ok(())
    }

    /// Removes `Open_vSwitch.other_config:key`; absent is fine.
    pub async fn remove_other_config(&self, key: &str) -> Result<(), Error> {
        let r = self
            .transact(vec![op::mutate(
                OpenVSwitch::TABLE,
                vec![],
                vec![op::mutation(
                    "other_config",
                    "delete",
                    json!(["set", [key]]),
                )],
            )])
            .await?;
        if count(&r[0]) == 0 {
            return Err(no_root());
        }
        Ok(())
    }

    /// Waits until ovs-vswitchd has applied every change committed so far (`ovs-vsctl`'s
    /// wait: bump `next_cfg`, wait for `cur_cfg` to reach it). `Ok(false)` on timeout (e.g.
    /// ovs-vswitchd is not running).
    pub async fn wait_applied(&self, timeout: Duration) -> Result<bool, Error> {
        let r = self
            .transact(vec![
                op::mutate(
                    OpenVSwitch::TABLE,
                    vec![],
                    vec![op::mutation("next_cfg", "+=", json!(1))],
                ),
                op::select(OpenVSwitch::TABLE, vec![], &["next_cfg"]),
            ])
            .await?;
        let Some(target) = r[1]["rows"]
            .get(0)
            .and_then(|row| row.get("next_cfg"))
            .and_then(Value::as_i64)
        else {
            return Err(Error::NotFound("no Open_vSwitch row".into()));
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self
                .transact(vec![op::select(OpenVSwitch::TABLE, vec![], &["cur_cfg"])])
                .await?;
            let cur = r[0]["rows"]
                .get(0)
                .and_then(|row| row.get("cur_cfg"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if cur >= target {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn no_root() -> Error {
    Error::NotFound("no Open_vSwitch row: the database is not initialised (ovs-vsctl init)".into())
}

fn changing(kind: &str, name: &str) -> Error {
    Error::Conflict(format!(
        "{kind} {name:?}: the database kept changing during {ATTEMPTS} attempts"
    ))
}
