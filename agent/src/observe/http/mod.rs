//! The agent's HTTP/1 server (hyper), on TCP or a unix socket, and its observability endpoints.
//!
//! | request          | response                                              |
//! |------------------|-------------------------------------------------------|
//! | `GET /metrics`   | 200, the metrics in the OpenMetrics text format       |
//! | `GET /healthz`   | 200 `ok` while the process runs                       |
//! | `GET /readyz`    | 200 `ready` once [`HttpState::set_ready`], else 503   |
//! | `GET /status`    | 200, the JSON document of [`HttpState::set_status`]   |
//! | other `GET`      | 404                                                   |
//! | any other method | 405 with `Allow: GET`                                 |
//!
//! Connections are kept alive (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
//! `Connection: keep-alive`); a request body no handler reads is drained, or the connection
//! closed after the reply. [`Limits`] bounds the request head's size, the time to send it and
//! the connections served at once. Other routes (the CNI API) are added by serving a [`Router`]
//! that merges [`endpoints`] with them.

mod router;
mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use hyper::{Method, StatusCode};

pub use router::{response, text, Request, Response, Router, JSON_CONTENT_TYPE, TEXT_CONTENT_TYPE};
pub use server::{bind, bind_unix, Limits, Server};

use crate::observe::metrics::Metrics;

/// Content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoints serve. Clones share everything.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub metrics: Metrics,
    /// Whether `/readyz` answers 200; prefer [`HttpState::set_ready`], which
    /// also sets the `kovs_ready` gauge.
    pub ready: Arc<AtomicBool>,
    /// The document `/status` serves.
    pub status: Arc<RwLock<serde_json::Value>>,
}

impl HttpState {
    /// Not ready, with an empty JSON object as status.
    pub fn new(metrics: Metrics) -> Self {
        HttpState {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            status: Arc::new(RwLock::new(serde_json::Value::Object(Default::default()))),
        }
    }

    /// Marks the agent ready (or not) for `/readyz` and `kovs_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.metrics.set_ready(ready);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Replaces the document `/status` serves.
    pub fn set_status(&self, status: serde_json::Value) {
        *self.status.write().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

/// `/metrics`, `/healthz`, `/readyz` and `/status`, served from `state`.
pub fn endpoints(state: &HttpState) -> Router {
    let from_state = |answer: fn(&HttpState) -> Response| {
        let state = state.clone();
        move |_: Request| std::future::ready(answer(&state))
    };
    Router::new()
        .route(Method::GET, "/metrics", from_state(metrics))
        .route(
            Method::GET,
            "/healthz",
            from_state(|_| text(StatusCode::OK, "ok")),
        )
        .route(Method::GET, "/readyz", from_state(readyz))
        .route(Method::GET, "/status", from_state(status))
}

fn metrics(state: &HttpState) -> Response {
    response(
        StatusCode::OK,
        OPENMETRICS_CONTENT_TYPE,
        state.metrics.encode(),
    )
}

fn readyz(state: &HttpState) -> Response {
    match state.is_ready() {
        true => text(StatusCode::OK, "ready"),
        false => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
    }
}

fn status(state: &HttpState) -> Response {
    let status = state.status.read().unwrap_or_else(PoisonError::into_inner);
    match serde_json::to_vec(&*status) {
        Ok(mut body) => {
            body.push(b'\n');
            response(StatusCode::OK, JSON_CONTENT_TYPE, body)
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "status is not serializable",
        ),
    }
}

#[cfg(test)]
mod tests;
