//! What operators see: Prometheus metrics, the HTTP endpoints serving them, and `/status`.

pub mod http;
pub mod metrics;
pub mod status;
