//! OpenFlow 1.3 with Nicira/ONF extensions: typed flows, wire codec, bundles, switch connection.
//!
//! `wire` is the sans-I/O core (pure encode/decode); `conn` puts it on a tokio socket.

pub mod batch;
pub mod client;
pub mod conn;
pub mod wire;
