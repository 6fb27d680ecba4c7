//! What produces the agent's inputs.

pub mod files;
