//! The switch connection: tokio at the edge of the sans-I/O codec.
//!
//! Works on raw OpenFlow 1.3 frames (a parsed [`Header`](crate::wire::Header) + the message's
//! bytes), so it is independent of the typed flow codec.
//!
//! * [`Connection`] — one OpenFlow session over `unix:PATH` or `tcp:HOST:PORT`: HELLO with a
//!   version bitmap (1.3 only), FEATURES, echo keepalive both ways, xid allocation, request/reply
//!   matching (single replies, barriers, multipart replies assembled from every part), errors
//!   routed to the request whose xid they carry, and asynchronous messages (PORT_STATUS,
//!   PACKET_IN, FLOW_REMOVED, flow monitor updates, unsolicited errors) delivered as [`Event`]s.
//!   A dedicated writer task and a dedicated reader task own the socket halves; the write queue
//!   and the event queue are bounded.
//! * [`Connection::commit_bundle`] — one atomic transaction: ONF bundle OPEN, one BUNDLE_ADD per
//!   message, COMMIT, BARRIER, streamed in ~64 KB chunks; every error OVS sends is mapped back to
//!   the index of the message in the batch ([`BundleOutcome`]). [`Connection::send_batch`] is the
//!   same without a bundle (meter mods, port mods).
//! * [`Switch`] — reconnects with exponential backoff, exposes the connection state on a watch
//!   channel, hands out the current connection, and announces each new connection with
//!   [`Event::Connected`] so the user can resync.

mod connection;
mod frame;
mod switch;
mod transport;
mod txn;

#[cfg(test)]
mod tests;

pub use connection::{ConnOptions, Connection, Features};
pub use frame::{Event, Frame, OfError};
pub use switch::{ConnState, Switch, SwitchOptions};
pub use transport::Target;
pub use txn::{BatchOutcome, BundleOptions, BundleOutcome, CommitMode, Rejected};

use std::sync::Arc;
use std::time::Duration;

use crate::wire::DecodeError;

/// Why a connection operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The target string is not `unix:PATH` or `tcp:HOST[:PORT]`.
    #[error("bad target {0:?}: expected unix:PATH or tcp:HOST[:PORT]")]
    BadTarget(String),
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// Connecting (socket + HELLO + FEATURES) took longer than `ConnOptions::connect_timeout`.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The switch does not offer OpenFlow 1.3.
    #[error("the switch does not offer OpenFlow 1.3 (it offers {offered})")]
    VersionMismatch { offered: String },
    /// The switch broke the protocol (bad framing, unexpected message during the handshake...).
    #[error("OpenFlow protocol error: {0}")]
    Protocol(String),
    /// Bytes from the switch could not be decoded.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// No message from the switch within the echo timeout after an echo request.
    #[error("no message from the switch for {0:?} (echo keepalive)")]
    KeepaliveTimeout(Duration),
    /// The switch answered a request with an `OFPT_ERROR`.
    #[error("switch error: {0}")]
    Switch(OfError),
    /// A message given to send is malformed (index within the batch, 0 for single messages).
    #[error("invalid message #{index}: {source}")]
    InvalidMessage { index: usize, source: DecodeError },
    /// The switch closed the connection.
    #[error("the switch closed the connection")]
    Eof,
    /// [`Connection::close`] was called or every handle was dropped.
    #[error("connection closed locally")]
    ClosedLocally,
    /// The operation could not complete because the connection is closed; the reason inside.
    #[error("connection closed: {0}")]
    Closed(Arc<Error>),
    /// The [`Switch`] was stopped.
    #[error("switch handle stopped")]
    Stopped,
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
