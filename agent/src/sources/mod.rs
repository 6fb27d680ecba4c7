//! What produces the agent's inputs: the state files, and the OVSDB Interface table's ofports.

pub mod files;
pub mod ovsdb_ports;
