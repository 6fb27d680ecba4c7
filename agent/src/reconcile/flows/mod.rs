//! The flows of each bridge: [`session`] decides what a bridge's connection gets and when (a
//! state machine without I/O); [`sync`] does it (dump and diff, atomic bundles).

pub mod session;
pub mod sync;
