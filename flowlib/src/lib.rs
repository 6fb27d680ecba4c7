//! OpenFlow 1.3 with Nicira/ONF extensions: typed flows, wire codec, bundles, switch connection.
//!
//! `wire` is the sans-I/O core (pure encode/decode, the only place that knows byte layouts);
//! `batch` packs encoded messages for a bundle; `conn` (feature `conn`, on by default) puts them
//! on a tokio socket and `client` makes typed requests over it. Without `conn` the crate does no
//! I/O and links no async runtime.

pub mod batch;
#[cfg(feature = "conn")]
pub mod client;
#[cfg(feature = "conn")]
pub mod conn;
pub mod wire;
