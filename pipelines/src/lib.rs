//! The kovs flow compiler: cluster model in, OpenFlow flows out. Pure: no I/O.
//!
//! `model` loads and validates Kubernetes objects; `compile` turns one node's view of them into
//! flows (`docs/pipeline.md` is the table map); `compiler` does it incrementally; `flowset` keeps
//! the result compact and diffs it.

pub mod compile;
pub mod compiler;
pub mod config;
pub mod flowset;
pub mod ids;
pub mod model;
pub mod plan;
mod stages;
pub mod tables;

pub use compile::{Bridges, Owner};
pub use compiler::{compile_all, Compiler};
pub use config::{NodeConfig, PortMap, TunnelType};
pub use flowset::{CompactFlow, Delta, FlowCounts, FlowSet};
pub use plan::Plan;
