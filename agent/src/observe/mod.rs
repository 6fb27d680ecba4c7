//! What operators see: Prometheus metrics and the HTTP endpoints serving them.

pub mod http;
pub mod metrics;
