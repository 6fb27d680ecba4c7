//! What produces the agent's inputs: the state (files, or the Kubernetes API), and the OVSDB
//! Interface table's ofports.

pub mod files;
pub mod kube;
pub mod ovsdb_ports;
