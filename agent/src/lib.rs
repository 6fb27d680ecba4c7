//! kovs-agent: keeps one node's Open vSwitch, and the host side of it, in the state the cluster
//! asks for.
//!
//! The modules follow the data, left to right:
//!
//! ```text
//! sources ──changes──▶ daemon ──Delta──▶ reconcile::flows ──bundles──▶ ovs-vswitchd (OpenFlow)
//!  files (YAML)         the loop:           per bridge: full sync,
//!  OVSDB Interface      compiler            deltas, flow monitor
//!  rows (ofports)       (pipelines)  ──NodeIntent──▶ reconcile::{provider, node_port}
//!                                                   ──▶ ovsdb-server, rtnetlink (sys)
//!                       observe: metrics, /healthz, /readyz, /status
//! ```
//!
//! * [`sources`]: what produces inputs (state files; the OVSDB Interface table's ofports).
//! * [`daemon`]: the `run` loop: drains inputs, feeds the compiler, hands its output on.
//! * [`reconcile`]: desired vs actual, one module per actuator (flows per bridge, provider
//!   networks, the node port).
//! * [`ovsdb`], [`sys`]: I/O clients with no policy (OVSDB JSON-RPC, rtnetlink).
//! * [`observe`]: metrics and the HTTP endpoints.
//! * [`cmd`]: one module per subcommand: arguments to a configuration to a library call.

pub mod cmd;
pub mod cni;
pub mod daemon;
pub mod observe;
/// The OVSDB client, its own crate (`agent/ovsdb`).
pub use kovs_ovsdb as ovsdb;
pub mod reconcile;
pub mod sources;
pub mod sys;
