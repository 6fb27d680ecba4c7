//! The kovs flow compiler: cluster model in, OpenFlow flows out. Pure: no I/O (flowlib is used
//! without its tokio connection).
//!
//! ```text
//! YAML/JSON, watch events
//!   -> model::load        raw objects (ObjectSet) and Changes
//!   -> model::validate    ClusterState: valid objects by kind, an error per rejected object
//!                         (model::incremental applies a pod change without revalidating)
//!   -> plan               Plan: subnet keys, VPC ids, the join subnet, provider networks here
//!                         (+ config: NodeConfig, this node's name, tunnel type and ofports)
//!   -> compile            per owner (global, subnet, node, provider network, pod): which flows
//!                         it gets on this node, built by stages/{classifier, arp, l3, l2,
//!                         tunnel, provider} (one module per table group; docs/pipeline.md)
//!   -> flowset            CompactFlows keyed by (bridge, table, priority, match); Delta
//!   -> intent             NodeIntent: bridges, patch ports, node port the flows need
//! ```
//!
//! [`Compiler`] runs this incrementally: it takes [`model::Change`]s and returns the flow
//! [`Delta`] and the current [`NodeIntent`]. `tables` holds the fixed numbers (tables,
//! registers, cookies, port names) the agent and the tests rely on; `ids` the stable hashes
//! (subnet keys, router and node MACs, cookie objects).

pub mod compile;
pub mod compiler;
pub mod config;
pub mod flowset;
pub mod ids;
pub mod intent;
pub mod model;
pub mod plan;
mod stages;
pub mod tables;

pub use compile::{Bridges, Owner};
pub use compiler::{compile_all, Compiler};
pub use config::{NodeConfig, PortMap, TunnelType};
pub use flowset::{CompactFlow, Delta, FlowCounts, FlowSet};
pub use intent::NodeIntent;
pub use plan::Plan;
