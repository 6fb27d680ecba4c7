//! I/O clients with no policy of their own.

pub mod container;
pub mod netlink;
pub mod netns;
pub mod veth;
