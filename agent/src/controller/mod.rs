//! `kovs-agent controller`: Kube-OVN's controller contract without OVN — IP allocation for
//! pods and nodes, subnet formatting and status, namespace bindings, install-time defaults —
//! so a cluster needs nothing but kovs.
//!
//! ```text
//! API server ──watch (kovs_kube::control)──▶ core::Core ──Chains of writes──▶ run: executes
//!    ▲  Lease (kovs_kube::lease): one leader;     pure: objects in,           them (create,
//!    │  standbys wait, the new leader lists        writes out                 merge patch,
//!    │  everything and rebuilds before it                                     status, Events)
//!    └─────────────────────────── writes ◀────────────────────────────────────┘
//! ```
//!
//! * [`config`]: Kube-OVN's install variables.
//! * [`core`]: the state and decisions (no I/O), allocation through the model's
//!   [`pipelines::model::ipam::SubnetPool`].
//! * [`pod`], [`subnet`], [`defaults`]: what is read of and written to pods and IP objects,
//!   subnets, and the install-time objects.
//! * [`run`]: leader election, the watch loop, the writes.

pub mod config;
pub mod core;
pub mod defaults;
pub mod pod;
pub mod run;
pub mod subnet;

pub use config::{Config, NetworkType};
pub use core::{Chain, Core, Key, Write};
