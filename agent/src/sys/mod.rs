//! I/O clients with no policy of their own.

pub mod netlink;
