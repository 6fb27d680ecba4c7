//! Real-OVS sandbox harness shared by the integration tests, benchmarks and the quickstart.
//!
//! [`OvsSandbox`] runs a private ovsdb-server and ovs-vswitchd (userspace datapath) in a temp
//! dir and, by default, its own network namespace, so tests run in parallel and never touch
//! the system's OVS. [`Netns`], [`ip`] and [`unique_name`] build the hosts around it.
//! [`KubeCluster`] is a private etcd + kube-apiserver for the Kubernetes layer's tests;
//! [`deploy`] runs the real helm and reads manifests as objects.
//! Everything is cleaned up on drop; [`cleanup_stale`] removes what killed test processes left.

pub mod agent;
pub mod cni;
pub mod deploy;
mod forward;
pub mod kube;
mod names;
mod netns;
mod sandbox;
pub mod topology;
mod util;

pub use agent::{assert_sync_order, check_sync_order, AgentProcess};
pub use forward::LoopbackForward;
pub use kube::KubeCluster;
pub use names::{cleanup_stale, unique_name};
pub use netns::{ip, Netns};
pub use sandbox::{OvsSandbox, SandboxOptions};
pub use topology::{BackgroundPing, Node, NodeSpec, PingStats, Pod, PodSpec, Topology};
