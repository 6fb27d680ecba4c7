//! The flows of each bridge: kept equal to the compiler's desired set with atomic bundles.

pub mod sync;
