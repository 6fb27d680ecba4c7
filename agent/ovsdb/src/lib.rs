//! A small OVSDB client (RFC 7047 JSON-RPC over tokio) for what kovs needs from
//! `ovsdb-server`: its bridges and ports (tunnels, patch ports, uplinks with their VLAN
//! trunks, bridges' `external_ids`), `other_config:flow-restore-wait`, waiting for
//! ovs-vswitchd to apply a change, and a live view of the Interface table
//! (`external_ids:iface-id` → `ofport`). It knows Open vSwitch, not Kubernetes.
//!
//! Layers, bottom up:
//! - [`framing`]: splits the stream of concatenated JSON objects into messages;
//! - [`Client`]: one connection — request ids, replies matched to requests, server `echo`s
//!   answered, `update`/`update2`/`update3` notifications on a channel;
//! - [`value`], [`schema`], [`rows`]: OVSDB's value encoding, the schema (needed to apply
//!   `update2` diffs), typed rows with only the columns kovs uses;
//! - [`Vswitch`]: idempotent one-transaction operations that only touch what kovs owns
//!   (`external_ids:kovs-owner=kovs`);
//! - [`Watch`]: a monitor that reconnects with backoff and restarts with a fresh snapshot.
//!
//! Nothing here calls `ovs-vsctl`: the agent must not depend on a process per change, and it
//! needs monitor notifications that a CLI cannot give.

pub mod conn;
pub mod framing;
pub mod ops;
pub mod rows;
pub mod schema;
pub mod value;
pub mod watch;

use std::collections::BTreeMap;

use serde_json::Value;

pub use conn::{Client, Notification};
pub use ops::{BridgeSpec, Ensured, PortSpec, Vswitch, DATAPATH_ID_KEY, OWNER_KEY, OWNER_VALUE};
pub use rows::{Bridge, Interface, OpenVSwitch, Port, Row};
pub use schema::{ColumnType, DbSchema, TableSchema};
pub use value::{Atom, Uuid};
pub use watch::{Watch, WatchEvent, WatchOptions};

/// The database ovs-vswitchd uses.
pub const DB: &str = "Open_vSwitch";

/// Everything that can go wrong talking to ovsdb-server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad OVSDB target {0:?}: want unix:PATH or tcp:HOST:PORT")]
    BadTarget(String),
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection is gone; pending and later requests fail with this.
    #[error("OVSDB connection closed: {0}")]
    Disconnected(String),
    #[error("OVSDB protocol error: {0}")]
    Protocol(String),
    #[error("cannot decode OVSDB value: {0}")]
    Decode(String),
    /// A JSON-RPC request failed as a whole (e.g. unknown database or method).
    #[error("OVSDB {method} failed: {error}")]
    Rpc { method: String, error: Value },
    /// One operation of a transaction failed (RFC 7047 §5.2); `index` is past the last
    /// operation when the commit itself failed (e.g. a constraint violation).
    #[error("OVSDB transaction failed at operation {index}: {error}: {details}")]
    Transaction {
        index: usize,
        error: String,
        details: String,
    },
    /// The row exists but lacks `external_ids:kovs-owner=kovs`: kovs leaves it alone.
    #[error("{kind} {name:?} is owned by someone else (external_ids {external_ids:?}); kovs leaves it alone")]
    NotOwned {
        kind: &'static str,
        name: String,
        external_ids: BTreeMap<String, String>,
    },
    #[error("{0}")]
    NotFound(String),
    /// The database is not in a shape kovs can fix without touching foreign rows, or kept
    /// changing under us.
    #[error("{0}")]
    Conflict(String),
}

impl Error {
    pub(crate) fn decode(msg: impl Into<String>) -> Error {
        Error::Decode(msg.into())
    }

    /// Adds the column name to a decode error.
    pub(crate) fn in_column(self, col: &str) -> Error {
        match self {
            Error::Decode(m) => Error::Decode(format!("column {col}: {m}")),
            other => other,
        }
    }

    /// A `wait` operation's condition no longer held: someone changed the rows we read, so
    /// the caller should read again and retry.
    pub fn is_wait_failure(&self) -> bool {
        matches!(self, Error::Transaction { error, .. } if error == "timed out")
    }
}
