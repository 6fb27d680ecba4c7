//! kovs-agent: keeps one node's Open vSwitch, and the host side of it, in the state the cluster
//! asks for.
//!
//! The modules follow the data, left to right:
//!
//! ```text
//! sources ──changes──▶ daemon ──Delta──▶ reconcile::flows ──bundles──▶ ovs-vswitchd (OpenFlow)
//!  files (YAML), or     the loop:           per bridge: full sync,
//!  the Kubernetes API   compiler            deltas, flow monitor
//!  OVSDB Interface      (pipelines)  ──NodeIntent──▶ reconcile::{provider, node_port}
//!  rows (ofports)                                   ──▶ ovsdb-server, rtnetlink (sys)
//!                       observe: metrics, /healthz, /readyz, /status
//!                       kube source ──▶ node labels, Events (API server)
//! ```
//!
//! * [`sources`]: what produces inputs (state files or the Kubernetes API, through the
//!   `kovs-kube` crate; the OVSDB Interface table's ofports).
//! * [`daemon`]: the `run` loop: drains inputs, feeds the compiler, hands its output on.
//! * [`reconcile`]: desired vs actual, one module per actuator (flows per bridge, provider
//!   networks, the node port).
//! * [`ovsdb`], [`sys`]: I/O clients with no policy (OVSDB JSON-RPC, rtnetlink).
//! * [`observe`]: metrics and the HTTP endpoints.
//! * [`controller`]: `kovs-agent controller`, the cluster's one allocator of addresses
//!   (Kube-OVN's controller contract: annotations, IP objects, subnet status), a Deployment.
//! * [`cmd`]: one module per subcommand: arguments to a configuration to a library call.

pub mod cmd;
pub mod cni;
pub mod controller;
pub mod daemon;
pub mod observe;
/// The OVSDB client, its own crate (`agent/ovsdb`).
pub use kovs_ovsdb as ovsdb;
pub mod reconcile;
pub mod sources;
pub mod sys;
